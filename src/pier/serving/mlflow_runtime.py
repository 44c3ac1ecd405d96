"""A Runtime over an MLflow pyfunc model.

The plain path hands the body to MLflow's own scoring-server parsers and to
``PyFuncModel.predict`` (full schema enforcement), so MLflow decides what is accepted, cast or
refused. The fast path (see schema.py) builds the DataFrame that enforcement would have produced
and calls the flavor's predict function directly, skipping the per-call enforcement cost.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pandas as pd

from pier.contract import content_types as ct
from pier.contract import json_depth
from pier.contract.content_types import MediaType
from pier.errors import (
    BadRequest,
    InvalidModelInput,
    ModelLoadError,
    PierError,
    PredictionError,
)
from pier.serving.inputs import Prepared
from pier.serving.quickload import QuickModel, try_quick_load
from pier.serving.schema import FastSchema

log = logging.getLogger("pier.serving")

_MAX_MESSAGE = 2000  # MLflow echoes whole payloads into messages; a 6 MiB echo helps nobody


def _truncate(message: str) -> str:
    if len(message) <= _MAX_MESSAGE:
        return message
    return message[:_MAX_MESSAGE] + f"... ({len(message) - _MAX_MESSAGE} more characters)"


_QUOTED = 60  # characters of a payload an error message quotes


def _refuse_json_as_csv(text: str) -> None:
    """A JSON document sent as text/csv: say so, quoting a short prefix. (MLflow would read it
    as a CSV header and quote the whole payload, twice, in a schema error.)"""
    text = text.strip()
    if text[:1] not in ("{", "["):
        return
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return
    prefix = text[:_QUOTED] + ("..." if len(text) > _QUOTED else "")
    raise BadRequest(
        f"The body is sent as text/csv but is a JSON document ({prefix}); "
        "send it with Content-Type: application/json."
    )


def _from_mlflow(exc: Any) -> PierError:
    """An MlflowException as a PierError with the same status and code, without the trace."""
    code = getattr(exc, "error_code", "INTERNAL_ERROR")
    status = int(exc.get_http_status_code())
    cls: type[PierError] = InvalidModelInput if code == "INVALID_PARAMETER_VALUE" else BadRequest
    err = cls(_truncate(str(exc.message)))
    err.status, err.code = status, code
    err.error_class = getattr(exc, "error_class", None)
    err.sqlstate = getattr(exc, "sqlstate", None)
    return err


def _is_mlflow_error(exc: BaseException) -> bool:
    """An MlflowException, recognised without importing MLflow (the fast path may run while
    MLflow is still being imported by the background loader; two threads importing the same
    package deadlock on its module locks)."""
    return type(exc).__module__.startswith("mlflow") and hasattr(exc, "get_http_status_code")


def _beyond_parser_limits(exc: BaseException) -> bool:
    """Whether `exc` is a JSON parser refusing a well-formed body that exceeds its limits.

    Nesting is refused before parsing (`json_depth`, the same limit on every Python); a
    RecursionError can still come from a recursive walk of a parsed body. Python's json
    raises ValueError for an integer of more than sys.get_int_max_str_digits() digits
    (4,300); MLflow's parser lets both through. Both are
    the client's input, not a bug of ours: a 400, never a logged 500. The ValueError is told
    apart by CPython's message (the same in 3.11 to 3.13), as it has no type of its own.
    """
    if isinstance(exc, RecursionError):
        return True
    return isinstance(exc, ValueError) and "for integer string conversion" in str(exc)


_NUMERIC = {"double", "float", "long", "integer"}


def _is_data_row(fields: list[str], spec: list[dict[str, Any]]) -> bool:
    """Whether a CSV first row is data for signature `spec` rather than a header.

    Data only on evidence: one field per column, none naming a column (case aside), every
    numeric column's field a number, and at least one numeric column with a number in it. A
    header cannot hold a number where a number goes; without such a column (a string-only
    signature: `Text,Review` for `text, review`) a header and a data row look alike, and the
    row is left to MLflow, which reads it as the header (a mismatch is its 400 "missing
    inputs", never a prediction for the header)."""
    if len(fields) != len(spec):
        return False
    names = {str(item.get("name")).casefold() for item in spec}
    evidence = False
    for value, item in zip(fields, spec, strict=True):
        if value.casefold() in names:
            return False
        if item.get("type") in _NUMERIC and value != "":
            try:
                float(value)
            except ValueError:
                return False
            evidence = True
    return evidence


def _params_key(params: Any) -> Any:
    if params is None:
        return None
    try:
        return orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return object()  # unhashable oddities never merge


class _FullModel:
    """The model as MLflow loads it: needed for the plain path and for non-sklearn flavors."""

    def __init__(self, model_uri: str) -> None:
        import mlflow.pyfunc
        from mlflow.pyfunc import _enforce_params_schema
        from mlflow.tracking.artifact_utils import _download_artifact_from_uri

        try:
            self.local_path = _download_artifact_from_uri(artifact_uri=model_uri)
            self.model = mlflow.pyfunc.load_model(self.local_path)
        except Exception as exc:
            raise ModelLoadError(f"Could not load model {model_uri!r}: {exc}") from exc
        meta = self.model.metadata
        self.metadata = meta
        self.input_schema = meta.get_input_schema()
        self.fast_schema: FastSchema | None = None
        from_hints = meta._is_signature_from_type_hint() or meta._is_type_hint_from_example()
        schema = self.input_schema
        if schema is not None and not from_hints and not schema.is_tensor_spec():
            self.fast_schema = FastSchema.from_signature(schema.to_dict())
        # What PyFuncModel._predict passes to the flavor when the request has no params.
        fast_params = _enforce_params_schema(None, meta.get_params_schema())
        predict_fn = self.model._predict_fn
        param = inspect.signature(predict_fn).parameters.get("params")
        if param is not None and param.kind != inspect.Parameter.VAR_KEYWORD:
            self.fast_predict: Callable[[Any], Any] = partial(predict_fn, params=fast_params)
        else:
            self.fast_predict = predict_fn
        example = meta.get_serving_input(self.local_path)
        self.serving_example: bytes | None = example.encode() if example else None


class MlflowRuntime:
    """One model, loaded through MLflow (honours MLFLOW_TRACKING_URI for models:/ and runs:/).

    With a QuickModel (see quickload.py) the fast path serves at once and MLflow loads in a
    background thread, started when first needed: by a plain-path request (which waits for it)
    or by `wait_loaded`, which the server calls once the model is warm. Not before: importing
    MLflow takes the GIL from the warm-up request and /ping for about a second.
    """

    def __init__(self, model_uri: str, quick: QuickModel | None = None) -> None:
        self.model_uri = model_uri
        self._full: _FullModel | None = None
        self._full_error: PierError | None = None
        self._full_loaded = threading.Event()
        self._full_loading: threading.Thread | None = None
        self._start_lock = threading.Lock()
        if quick is None:
            self._load_full()
            if self._full_error is not None:
                raise self._full_error
            full = self._require_full()
            self.fast_schema, self._fast_predict = full.fast_schema, full.fast_predict
            self._serving_example = full.serving_example
        else:
            self.fast_schema = quick.fast_schema
            self._fast_predict = quick.predict
            self._serving_example = quick.serving_example

    @classmethod
    def load(
        cls, model_uri: str, *, quick_load: bool = True, allow_pickle: bool = True
    ) -> MlflowRuntime:
        quick = None
        if quick_load:
            try:
                quick = try_quick_load(model_uri, allow_pickle)
            except Exception as exc:
                raise ModelLoadError(f"Could not load model {model_uri!r}: {exc}") from exc
        return cls(model_uri, quick)

    def _load_full(self) -> None:
        try:
            self._full = _FullModel(self.model_uri)
        except PierError as exc:
            self._full_error = exc
            log.error("MLflow could not load the model: %s", exc.message)
        except Exception as exc:
            log.exception("MLflow could not load the model")
            self._full_error = ModelLoadError(f"MLflow could not load the model: {exc}")
        finally:
            self._full_loaded.set()

    def _start_full_load(self) -> None:
        """Start MLflow's load in the background, once (a no-op when it was loaded at init)."""
        with self._start_lock:
            if self._full_loading is None and not self._full_loaded.is_set():
                self._full_loading = threading.Thread(
                    target=self._load_full, name="pier-mlflow-load", daemon=True
                )
                self._full_loading.start()

    def wait_loaded(self) -> None:
        self._start_full_load()
        self._full_loaded.wait()

    def _require_full(self) -> _FullModel:
        self._start_full_load()
        self._full_loaded.wait()
        if self._full is None:
            assert self._full_error is not None
            raise self._full_error
        return self._full

    # ------------------------------------------------------------------ decoding (plain path)
    def decode(self, body: bytes, media: MediaType) -> Prepared:
        try:
            return self._decode(body, media)
        except Exception as exc:
            if _is_mlflow_error(exc):
                raise _from_mlflow(exc) from exc
            if _beyond_parser_limits(exc):  # MLflow's words for its own JSON errors
                raise BadRequest(
                    "Invalid input. Ensure that the input is a valid JSON-formatted string."
                    f"\nError: {exc!r}"
                ) from None
            raise

    def _decode(self, body: bytes, media: MediaType) -> Prepared:
        from mlflow.pyfunc import scoring_server as ss

        unwrap = False
        params: Any = None
        if media.mime == ct.JSON:
            full = self._require_full()
            if json_depth.too_deep(body):  # refused the same on every Python
                raise BadRequest(
                    "Invalid input. Ensure that the input is a valid JSON-formatted string."
                    f"\nError: {json_depth.refusal()}"
                )
            # Bytes, as MLflow's server passes them: json.loads detects UTF-16/32 and a BOM.
            parsed = ss._parse_json_data(body, full.metadata, full.input_schema)
            data, params, unwrap = parsed.data, parsed.params, parsed.is_unified_llm_input
        elif media.mime == ct.CSV:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(
                    f"Ensure that input is a valid UTF-8 encoded string. {exc}"
                ) from exc
            _refuse_json_as_csv(text)
            data = self._parse_csv(text)
        else:  # ct.PARQUET
            data = ss.parse_parquet_input(io.BytesIO(body))
        return self._prepared(data, params, unwrap)

    def _parse_csv(self, text: str) -> Any:
        """MLflow's CSV parser, plus SageMaker's headerless CSV when the signature orders columns.

        MLflow always reads the first row as a header. pier reads it as data instead only when
        it cannot be a header (`_is_data_row`): it names no signature column, has one field per
        column, each field fits its column's type, and a numeric column holds a number. Then
        the rows are read in signature order. Anything else is left to MLflow, errors included.
        """
        from mlflow.pyfunc import scoring_server as ss

        schema = self._require_full().input_schema
        if schema is not None and schema.has_input_names() and not schema.is_tensor_spec():
            spec = schema.to_dict()
            try:
                fields = next(csv.reader(io.StringIO(text)), None)
            except csv.Error:  # e.g. a bare CR in an unquoted field (Python 3.13): MLflow's say
                fields = None
            if fields is not None and _is_data_row([f.strip() for f in fields], spec):
                header = io.StringIO()
                csv.writer(header, lineterminator="\n").writerow(schema.input_names())
                text = header.getvalue() + text
        return ss.parse_csv_input(io.StringIO(text), schema=schema)

    def _prepared(self, data: Any, params: Any, unwrap: bool) -> Prepared:
        n_rows = len(data) if hasattr(data, "__len__") else 1
        key: tuple[Any, ...] | None = None
        if (
            isinstance(data, pd.DataFrame)
            and n_rows > 0
            and not unwrap
            and isinstance(data.index, pd.RangeIndex)
            and data.index.start == 0
            and data.index.step == 1
        ):
            key = (
                "frame",
                tuple(data.columns),
                tuple(str(t) for t in data.dtypes),
                _params_key(params),
            )
        return Prepared(n_rows, key, params, frame=data, unwrap=unwrap)

    # ---------------------------------------------------------------------------- predicting
    def predict(self, prepared: Prepared) -> Any:
        try:
            if prepared.columns is not None:
                assert self.fast_schema is not None
                return self._fast_predict(self.fast_schema.frame(prepared.columns))
            model = self._require_full().model
            return model.predict(prepared.frame, params=prepared.params)
        except PierError:
            raise
        except Exception as exc:
            if not _is_mlflow_error(exc):
                log.exception("predict raised")
                raise PredictionError(
                    _truncate(f"Model prediction failed: {type(exc).__name__}: {exc}")
                ) from exc
            err = _from_mlflow(exc)
            if prepared.columns is None:
                detail = getattr(exc, "message", exc)
                err.message = _truncate(
                    f"Failed to predict data '{prepared.frame}'. \nError: {detail}"
                )
            raise err from exc

    def warmup_bodies(self) -> list[tuple[bytes, MediaType]]:
        """The logged serving input example; else one row of neutral values from the signature."""
        if self._serving_example:
            return [(self._serving_example, MediaType(ct.JSON))]
        if self.fast_schema is not None:
            neutral = {"double": 0.0, "long": 0, "boolean": False, "string": ""}
            row = {c.name: neutral[c.type] for c in self.fast_schema.columns}
            return [(orjson.dumps({"dataframe_records": [row]}), MediaType(ct.JSON))]
        return []
