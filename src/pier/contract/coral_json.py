"""AWS JSON 1.1 as AWS's service framework (Coral) reads and writes it: the dialect of
pier.contract.aws_model that SageMaker's control API speaks (and Application Auto Scaling's).

A value of the wrong JSON type stops the request with a SerializationException carrying
Coral's own message (`class java.lang.String can not be converted to an Integer`, `Start of
list found where not expected`); Coral names no member path. It reads the strings "true" and
"false" as booleans, base64 text as blobs (with Java's complaints about bad base64), and keeps
timestamps as the epoch seconds botocore sends. A missing required member is one more
constraint violation (`Member must not be null`), reported in the ValidationException.
Outputs carry datetimes as epoch seconds (naive ones are UTC) and bytes as base64.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from pier.contract.aws_model import Dialect, aware
from pier.errors import SerializationException, ValidationException

__all__ = ["JSON_1_1", "unexpected"]

_NUMBER = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber"
_JAVA_TYPE = {
    "string": "an String",  # sic: Coral's grammar
    "integer": "an Integer",
    "long": "an Long",
    "float": "an Float",
    "double": "an Double",
    "boolean": "an Boolean",
    "timestamp": "milliseconds since epoch",
    "blob": "a Blob",
}


def unexpected(value: Any, kind: str, path: str = "") -> SerializationException:
    """Coral's message for `value` where the model has a `kind` (Coral names no path)."""
    if isinstance(value, list):
        return SerializationException("Start of list found where not expected")
    if isinstance(value, dict):
        return SerializationException("Start of structure or map found where not expected.")
    if kind == "structure":
        return SerializationException("Expected null")
    if kind in ("list", "map"):
        return SerializationException(f"Expected {kind} or null")
    if isinstance(value, bool):
        source = "class java.lang.Boolean"
    elif isinstance(value, int | float):
        source = _NUMBER
    elif kind == "boolean":
        source = f"'{str(value).upper()}'"
    else:
        source = "class java.lang.String"
    return SerializationException(f"{source} can not be converted to {_JAVA_TYPE[kind]}")


def _read_timestamp(value: Any, path: str) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # epoch seconds, as botocore sends them
    return None


def _read_blob(value: str, path: str) -> bytes:
    prefix = f"'{value}' can not be converted to a Blob: "
    if len(value) % 4:
        raise SerializationException(
            f"{prefix}Base64 encoded length is expected a multiple of 4 bytes but found: "
            f"{len(value)}"
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        bad = next((c for c in value if not (c.isascii() and (c.isalnum() or c in "+/="))), "=")
        raise SerializationException(f"{prefix}Invalid Base64 character: '{bad}'") from None


def _write_scalar(value: Any, kind: str) -> Any:
    if kind == "timestamp" and isinstance(value, datetime):
        return aware(value).timestamp()
    if kind == "blob" and isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return value


JSON_1_1 = Dialect(
    wrong_type=unexpected,
    read_timestamp=_read_timestamp,
    read_blob=_read_blob,
    write_scalar=_write_scalar,
    invalid=ValidationException,
    string_booleans=True,
    java_integers=True,
)
