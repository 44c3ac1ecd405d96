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
from typing import Any

import orjson
import pandas as pd

from pier.contract import content_types as ct
from pier.contract.content_types import MediaType
from pier.errors import (
    BadRequest,
    InvalidParameterValue,
    ModelLoadError,
    PierError,
    PredictionError,
)
from pier.serving.inputs import Prepared
from pier.serving.schema import FastSchema

log = logging.getLogger("pier.serving")

_MAX_MESSAGE = 2000  # MLflow echoes whole payloads into messages; a 6 MiB echo helps nobody


def _truncate(message: str) -> str:
    if len(message) <= _MAX_MESSAGE:
        return message
    return message[:_MAX_MESSAGE] + f"... ({len(message) - _MAX_MESSAGE} more characters)"


def _from_mlflow(exc: Any) -> PierError:
    """An MlflowException as a PierError with the same status and code, without the trace."""
    code = getattr(exc, "error_code", "INTERNAL_ERROR")
    status = int(exc.get_http_status_code())
    cls: type[PierError] = (
        InvalidParameterValue if code == "INVALID_PARAMETER_VALUE" else BadRequest
    )
    err = cls(_truncate(str(exc.message)))
    err.status, err.code = status, code
    return err


def _params_key(params: Any) -> Any:
    if params is None:
        return None
    try:
        return orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return object()  # unhashable oddities never merge


class MlflowRuntime:
    """Loads one model through MLflow (honours MLFLOW_TRACKING_URI for models:/ and runs:/)."""

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
        self.params_schema = meta.get_params_schema()
        self.fast_schema: FastSchema | None = None
        from_hints = meta._is_signature_from_type_hint() or meta._is_type_hint_from_example()
        if (
            self.input_schema is not None
            and not from_hints
            and not self.input_schema.is_tensor_spec()
        ):
            self.fast_schema = FastSchema.from_signature(self.input_schema.to_dict())
        # What PyFuncModel._predict would pass as params when the request has none.
        self._fast_params = _enforce_params_schema(None, self.params_schema)
        predict_fn = self.model._predict_fn
        param = inspect.signature(predict_fn).parameters.get("params")
        self._fn_takes_params = param is not None and param.kind != inspect.Parameter.VAR_KEYWORD
        self._predict_fn = predict_fn

    # ------------------------------------------------------------------ decoding (plain path)
    def decode(self, body: bytes, media: MediaType) -> Prepared:
        from mlflow.exceptions import MlflowException

        try:
            return self._decode(body, media)
        except MlflowException as exc:
            raise _from_mlflow(exc) from exc

    def _decode(self, body: bytes, media: MediaType) -> Prepared:
        from mlflow.pyfunc import scoring_server as ss

        unwrap = False
        params: Any = None
        if media.mime == ct.JSON:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(
                    f"Ensure that input is a valid UTF-8 encoded string. {exc}"
                ) from exc
            parsed = ss._parse_json_data(text, self.metadata, self.input_schema)
            data, params, unwrap = parsed.data, parsed.params, parsed.is_unified_llm_input
        elif media.mime == ct.CSV:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(
                    f"Ensure that input is a valid UTF-8 encoded string. {exc}"
                ) from exc
            data = self._parse_csv(text)
        else:  # ct.PARQUET
            data = ss.parse_parquet_input(io.BytesIO(body))
        return self._prepared(data, params, unwrap)

    def _parse_csv(self, text: str) -> Any:
        """MLflow's CSV parser, plus SageMaker's headerless CSV when the signature orders columns.

        A first row that names every signature column is a header (MLflow's reading). Otherwise,
        when the signature has named columns and the first row has exactly that many fields,
        the body is read as headerless rows in signature order.
        """
        from mlflow.pyfunc import scoring_server as ss

        schema = self.input_schema
        if schema is not None and schema.has_input_names() and not schema.is_tensor_spec():
            names = schema.input_names()
            fields = next(csv.reader(io.StringIO(text)), None)
            if fields is not None:
                fields = [f.strip() for f in fields]
                if not set(names) <= set(fields) and len(fields) == len(names):
                    text = ",".join(names) + "\n" + text
        return ss.parse_csv_input(io.StringIO(text), schema=schema)

    def _prepared(self, data: Any, params: Any, unwrap: bool) -> Prepared:
        n_rows = len(data) if hasattr(data, "__len__") else 1
        key: tuple[Any, ...] | None = None
        if (
            isinstance(data, pd.DataFrame)
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
        from mlflow.exceptions import MlflowException

        try:
            if prepared.columns is not None:
                assert self.fast_schema is not None
                frame = self.fast_schema.frame(prepared.columns)
                if self._fn_takes_params:
                    return self._predict_fn(frame, params=self._fast_params)
                return self._predict_fn(frame)
            return self.model.predict(prepared.frame, params=prepared.params)
        except MlflowException as exc:
            err = _from_mlflow(exc)
            if prepared.columns is None:
                err.message = _truncate(
                    f"Failed to predict data '{prepared.frame}'. \nError: {exc.message}"
                )
            raise err from exc
        except PierError:
            raise
        except Exception as exc:
            log.exception("predict raised")
            raise PredictionError(
                _truncate(f"Model prediction failed: {type(exc).__name__}: {exc}")
            ) from exc

    def warmup_bodies(self) -> list[tuple[bytes, MediaType]]:
        """The logged serving input example; else one row of neutral values from the signature."""
        example = self.metadata.get_serving_input(self.local_path)
        if example:
            return [(example.encode(), MediaType(ct.JSON))]
        if self.fast_schema is not None:
            neutral = {"double": 0.0, "long": 0, "boolean": False, "string": ""}
            row = {c.name: neutral[c.type] for c in self.fast_schema.columns}
            return [(orjson.dumps({"dataframe_records": [row]}), MediaType(ct.JSON))]
        return []
