"""Request decoding for the fast path, and response encoding.

Responses match MLflow's scoring server: ``{"predictions": ...}`` with DataFrames in records
orientation, numpy values as plain JSON numbers, NaN written as ``NaN`` (as Python's json does).
pier also answers ``Accept: text/csv`` (one row per line, no header: SageMaker's convention)
and ``Accept: application/jsonlines`` (one JSON value per input row).

numpy and pandas are imported inside the encoders, never at import: the server binds its
socket before they load (pier.serving.server), and they are loaded with the model before the
first prediction is encoded (an import of a loaded module is a dictionary lookup).
"""

from __future__ import annotations

import base64
import csv
import datetime
import io
import json
import math
from typing import TYPE_CHECKING, Any

import orjson

from pier.contract import content_types as ct
from pier.serving.inputs import Prepared
from pier.serving.schema import FastSchema

if TYPE_CHECKING:
    import numpy as np

_FAST_KEYS = {"dataframe_split", "dataframe_records"}


def decode_json_fast(body: bytes, schema: FastSchema | None) -> Prepared | None:
    """Decode a JSON body on the fast path, or None when MLflow's plain path must decide."""
    if schema is None:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # let MLflow's parser produce its exact error (or accept NaN literals)
    if type(doc) is not dict or len(doc) != 1:
        return None
    key = next(iter(doc))
    if key not in _FAST_KEYS:
        return None
    if key == "dataframe_split":
        columns = schema.check_split(doc[key])
    else:
        columns = schema.check_records(doc[key])
    if columns is None:
        return None
    n_rows = len(next(iter(columns.values())))
    return Prepared(n_rows, ("fast",), None, columns=columns)


# ---------------------------------------------------------------------------------- encoding


def to_jsonable(data: Any) -> Any:
    """MLflow's conversion of a prediction to plain Python (DataFrames as records)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, np.ndarray):
        return data.tolist()
    if isinstance(data, pd.DataFrame):
        return data.to_dict(orient="records")
    if isinstance(data, pd.Series):
        return pd.DataFrame(data).to_dict(orient="records")
    return data


def _fallback(o: Any) -> Any:
    """Types json cannot write, converted as MLflow's NumpyEncoder does."""
    import numpy as np
    import pandas as pd

    if isinstance(o, np.ndarray):
        if o.dtype == object:
            return [_fallback(x) if not _plain(x) else x for x in o.tolist()]
        if o.dtype.kind == "S":
            return [base64.encodebytes(x).decode("ascii") for x in o.tolist()]
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, bytes | bytearray):
        return base64.encodebytes(o).decode("ascii")
    if isinstance(o, np.datetime64):
        return np.datetime_as_string(o)
    if isinstance(o, pd.Timestamp | datetime.date | datetime.datetime | datetime.time):
        return o.isoformat()
    dump = getattr(o, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _plain(x: Any) -> bool:
    return x is None or isinstance(x, str | int | float | bool | list | dict)


def dumps_json(value: Any) -> bytes:
    """JSON text equal in value to MLflow's ``json.dump(..., cls=NumpyEncoder)``."""
    return json.dumps(value, default=_fallback).encode()


def _finite_numeric(arr: np.ndarray) -> bool:
    import numpy as np

    return arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and bool(np.isfinite(arr).all()))


def encode_json(prediction: Any) -> bytes:
    import numpy as np

    # Fast case: a numeric ndarray without NaN/inf (orjson writes NaN as null, MLflow as NaN).
    if isinstance(prediction, np.ndarray) and _finite_numeric(prediction):
        return orjson.dumps({"predictions": prediction.tolist()})
    return dumps_json({"predictions": to_jsonable(prediction)})


def _rows(prediction: Any) -> list[Any]:
    """One entry per input row."""
    import numpy as np
    import pandas as pd

    if isinstance(prediction, pd.DataFrame):
        return prediction.to_dict(orient="records")
    if isinstance(prediction, pd.Series | np.ndarray):
        return prediction.tolist()
    if isinstance(prediction, list):
        return prediction
    return [prediction]


def encode_jsonlines(prediction: Any) -> bytes:
    return b"".join(dumps_json(row) + b"\n" for row in _rows(prediction))


def _csv_cell(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return ""
    return v


def encode_csv(prediction: Any) -> bytes:
    import pandas as pd

    if isinstance(prediction, pd.DataFrame):
        return prediction.to_csv(index=False, header=False, lineterminator="\n").encode()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in _rows(prediction):
        if isinstance(row, dict):
            writer.writerow([_csv_cell(v) for v in row.values()])
        elif isinstance(row, list | tuple):
            writer.writerow([_csv_cell(v) for v in row])
        else:
            writer.writerow([_csv_cell(row)])
    return out.getvalue().encode()


ENCODERS = {ct.JSON: encode_json, ct.CSV: encode_csv, ct.JSONLINES: encode_jsonlines}


def encode(prediction: Any, response_type: str) -> bytes:
    return ENCODERS[response_type](prediction)
