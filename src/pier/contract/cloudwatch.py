"""CloudWatch's wire contract: operations, bodies, input validation, outputs and errors.

boto3's `cloudwatch` client speaks Smithy RPC v2 CBOR (botocore's service model lists
`smithy-rpc-v2-cbor` first): `POST /service/GraniteServiceVersion20100801/operation/<Op>`,
header `smithy-protocol: rpc-v2-cbor`, a CBOR map as body, timestamps as CBOR tag 1 (epoch
seconds). The same operations are also accepted in AWS JSON 1.0 (`POST /`,
`X-Amz-Target: GraniteServiceVersion20100801.<Op>`, timestamps as epoch seconds), which older
SDKs and hand-written clients use.

Inputs are checked against botocore's service model by pier.contract.aws_model, the walk
SageMaker's API shares, in CloudWatch's dialect (below), with CloudWatch's error codes (it is
an `awsQueryCompatible` service, so boto3 reads the code from the `x-amzn-query-error`
header):

- a value of the wrong type: SerializationException;
- a required member missing: MissingParameter, `The parameter MetricData.member.1.MetricName
  is required.` (the query protocol's member path, as CloudWatch words it);
- `enum`, `min`/`max`, `pattern` and unions: ValidationError, `1 validation error detected: Value
  'x' at 'metricDataQueries.1.member.metricStat.stat' failed to satisfy constraint: ...`;
- the operations' own rules (pier.control.metrics_service): InvalidParameterValue,
  InvalidParameterCombination.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pier.contract import json_depth
from pier.contract.aws_model import Dialect, ServiceModel, aware
from pier.errors import AwsError, SerializationException, UnknownOperationException

__all__ = [
    "RPC_PATH_PREFIX",
    "TARGET_PREFIX",
    "AccessDenied",
    "CloudWatchError",
    "InternalServiceError",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "LimitExceeded",
    "MissingParameter",
    "Protocol",
    "ResourceNotFound",
    "ValidationError",
    "decode_body",
    "encode_error",
    "encode_output",
    "is_operation",
    "operation_from_path",
    "operation_from_target",
    "operation_names",
    "validate_input",
]

TARGET_PREFIX = "GraniteServiceVersion20100801"
RPC_PATH_PREFIX = f"/service/{TARGET_PREFIX}/operation/"
_SMITHY_NAMESPACE = "com.amazonaws.cloudwatch"


class Protocol(Enum):
    CBOR = "rpc-v2-cbor"
    JSON = "json-1.0"

    @property
    def content_type(self) -> bytes:
        return b"application/cbor" if self is Protocol.CBOR else b"application/x-amz-json-1.0"


# ------------------------------------------------------------------------------------ errors


class CloudWatchError(AwsError):
    """An error CloudWatch models: `shape` is its Smithy name (the body's `__type`), `code`
    the query error code boto3 shows (`x-amzn-query-error`)."""

    shape = "InvalidParameterValueException"
    code = "InvalidParameterValue"


class InvalidParameterValue(CloudWatchError):
    pass


class InvalidParameterCombination(CloudWatchError):
    shape = "InvalidParameterCombinationException"
    code = "InvalidParameterCombination"


class MissingParameter(CloudWatchError):
    shape = "MissingRequiredParameterException"
    code = "MissingParameter"


class ValidationError(CloudWatchError):
    shape = "ValidationException"
    code = "ValidationError"


class ResourceNotFound(CloudWatchError):
    status = 404
    shape = "ResourceNotFound"
    code = "ResourceNotFound"


class LimitExceeded(CloudWatchError):
    shape = "LimitExceededFault"
    code = "LimitExceeded"


class AccessDenied(CloudWatchError):
    """A role without the right (pier.platform.access): CloudWatch answers IAM's denials 403
    with the query code AccessDenied, which boto3 shows."""

    status = 403
    shape = "AccessDeniedException"
    code = "AccessDenied"


class InternalServiceError(CloudWatchError):
    status = 500
    shape = "InternalServiceFault"
    code = "InternalServiceError"


# ------------------------------------------------------------------------------------ model


_MODEL = ServiceModel("cloudwatch")


def operation_names() -> list[str]:
    """Every operation of CloudWatch's API, as botocore's model lists them."""
    return list(_MODEL.operations)


def is_operation(name: str) -> bool:
    """An operation of CloudWatch's API (implemented by pier or not)."""
    return name in _MODEL.operations


_NOT_RECOGNIZED = "The requested operation is not recognized by the service."


def operation_from_path(path: str) -> str:
    """`/service/GraniteServiceVersion20100801/operation/GetMetricData` -> `GetMetricData`."""
    operation = path[len(RPC_PATH_PREFIX) :] if path.startswith(RPC_PATH_PREFIX) else ""
    if not is_operation(operation):
        raise UnknownOperationException(_NOT_RECOGNIZED)
    return operation


def operation_from_target(x_amz_target: str | None) -> str:
    """`GraniteServiceVersion20100801.GetMetricData` -> `GetMetricData`."""
    prefix, _, operation = (x_amz_target or "").partition(".")
    if prefix != TARGET_PREFIX or not is_operation(operation):
        raise UnknownOperationException(_NOT_RECOGNIZED)
    return operation


# ------------------------------------------------------------------------------------ bodies


def decode_body(body: bytes, protocol: Protocol) -> dict[str, Any]:
    """The request body as a map (an empty body is an empty input)."""
    if not body:
        return {}
    if protocol is Protocol.CBOR:
        import cbor2

        try:
            value = cbor2.loads(body)
        except (cbor2.CBORError, ValueError, RecursionError) as exc:
            raise SerializationException(f"Malformed CBOR request body: {exc}") from None
    else:
        if json_depth.too_deep(body):
            raise SerializationException(f"Malformed JSON request body: {json_depth.refusal()}")
        try:
            value = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise SerializationException(f"Malformed JSON request body: {exc}") from None
    if not isinstance(value, dict):
        raise SerializationException("The request body must be a map (a structure).")
    return value


# ------------------------------------------------------------------------------------ dialect
# Type errors name the member's query path; timestamps are read as aware datetimes (CBOR's
# tag 1, or epoch seconds); a missing member is MissingParameter, before any other violation.


def _wrong(value: Any, kind: str, path: str) -> SerializationException:
    shown = type(value).__name__
    return SerializationException(
        f"Expected {kind} at '{path or 'input'}', found a value of type {shown}."
    )


def _read_timestamp(value: Any, path: str) -> datetime | None:
    if isinstance(value, datetime):  # CBOR tag 1 (or 0)
        return aware(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and infinities are no instant: a type error
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise SerializationException(f"Timestamp out of range at '{path}': {value}") from None


def _read_blob(value: str, path: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SerializationException(f"Invalid base64 at '{path}'.") from None


def _write_cbor(value: Any, kind: str) -> Any:
    if kind == "timestamp":
        return aware(value)  # CBOR tag 1 (cbor2's datetime_as_timestamp)
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    return value


def _write_json(value: Any, kind: str) -> Any:
    if kind == "timestamp":
        return aware(value).timestamp()
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    return _write_cbor(value, kind)


def _missing(path: str) -> MissingParameter:
    return MissingParameter(f"The parameter {path} is required.")


_CBOR = Dialect(
    wrong_type=_wrong,
    read_timestamp=_read_timestamp,
    read_blob=_read_blob,
    write_scalar=_write_cbor,
    invalid=ValidationError,
    missing=_missing,
)
#: Inputs read the same in both protocols; only outputs differ.
_DIALECTS = {Protocol.CBOR: _CBOR, Protocol.JSON: replace(_CBOR, write_scalar=_write_json)}


def validate_input(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` as the service reads them (unknown and null members dropped, timestamps as
    aware datetimes, doubles as floats), or CloudWatch's error for them."""
    name = _MODEL.io_shape(operation, "input")
    if name is None:
        return {}
    return _MODEL.validate(params, name, _CBOR)


# ------------------------------------------------------------------------------------ output


def encode_output(operation: str, result: Mapping[str, Any], protocol: Protocol) -> bytes:
    """The response body for `result` (members the output shape lacks, and None, left out);
    an operation without output answers an empty body."""
    name = _MODEL.io_shape(operation, "output")
    if name is None:
        return b""
    return _dump(_MODEL.write(result, name, _DIALECTS[protocol]), protocol)


def _dump(value: Any, protocol: Protocol) -> bytes:
    if protocol is Protocol.CBOR:
        import cbor2

        return cbor2.dumps(value, datetime_as_timestamp=True)
    return json.dumps(value, separators=(",", ":"), allow_nan=True).encode()


def encode_error(err: AwsError, protocol: Protocol) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(body, headers) of an error: `__type` and `message`, plus the query error code for
    the errors CloudWatch models (how boto3 tells InvalidParameterValue from the rest)."""
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(err, CloudWatchError):
        kind = f"{_SMITHY_NAMESPACE}#{err.shape}"
        fault = "Sender" if err.status < 500 else "Receiver"
        headers.append((b"x-amzn-query-error", f"{err.code};{fault}".encode()))
    else:
        kind = err.code
    return _dump({"__type": kind, "message": err.message}, protocol), headers
