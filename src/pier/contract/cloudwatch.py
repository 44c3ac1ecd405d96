"""CloudWatch's wire contract: operations, bodies, input validation, outputs and errors.

boto3's `cloudwatch` client speaks Smithy RPC v2 CBOR (botocore's service model lists
`smithy-rpc-v2-cbor` first): `POST /service/GraniteServiceVersion20100801/operation/<Op>`,
header `smithy-protocol: rpc-v2-cbor`, a CBOR map as body, timestamps as CBOR tag 1 (epoch
seconds). The same operations are also accepted in AWS JSON 1.0 (`POST /`,
`X-Amz-Target: GraniteServiceVersion20100801.<Op>`, timestamps as epoch seconds), which older
SDKs and hand-written clients use.

Inputs are checked against botocore's service model, as pier.contract.sagemaker does for
SageMaker, with CloudWatch's error codes (it is an `awsQueryCompatible` service, so boto3
reads the code from the `x-amzn-query-error` header):

- a value of the wrong type: SerializationException;
- a required member missing: MissingParameter, `The parameter MetricData.member.1.MetricName
  is required.` (the query protocol's member path, as CloudWatch words it);
- `enum`, `min`/`max` and `pattern`: ValidationError, `1 validation error detected: Value
  'x' at 'metricDataQueries.1.member.metricStat.stat' failed to satisfy constraint: ...`;
- the operations' own rules (pier.control.metrics_service): InvalidParameterValue,
  InvalidParameterCombination.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from botocore.loaders import Loader

from pier.contract import shape_rules
from pier.contract.shape_rules import Rule
from pier.errors import AwsError, SerializationException, UnknownOperationException

__all__ = [
    "RPC_PATH_PREFIX",
    "TARGET_PREFIX",
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
MAX_REPORTED_ERRORS = 10
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


class InternalServiceError(CloudWatchError):
    status = 500
    shape = "InternalServiceFault"
    code = "InternalServiceError"


# ------------------------------------------------------------------------------------ model


@functools.cache
def _model() -> dict[str, Any]:
    model: dict[str, Any] = Loader().load_service_model("cloudwatch", "service-2")
    return model


def _shape(name: str) -> dict[str, Any]:
    shape: dict[str, Any] = _model()["shapes"][name]
    return shape


def operation_names() -> list[str]:
    """Every operation of CloudWatch's API, as botocore's model lists them."""
    return list(_model()["operations"])


def is_operation(name: str) -> bool:
    """An operation of CloudWatch's API (implemented by pier or not)."""
    return name in _model()["operations"]


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
        try:
            value = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise SerializationException(f"Malformed JSON request body: {exc}") from None
    if not isinstance(value, dict):
        raise SerializationException("The request body must be a map (a structure).")
    return value


def _is_null(value: Any) -> bool:
    return value is None or type(value).__name__ == "UndefinedType"  # CBOR's undefined


def _wrong(value: Any, kind: str, path: str) -> SerializationException:
    shown = type(value).__name__
    return SerializationException(
        f"Expected {kind} at '{path or 'input'}', found a value of type {shown}."
    )


def _decode(value: Any, name: str, path: str) -> Any:
    shape = _shape(name)
    kind: str = shape["type"]
    if kind == "structure":
        if not isinstance(value, dict):
            raise _wrong(value, kind, path)
        members = shape["members"]
        return {
            key: _decode(item, members[key]["shape"], _join(path, key))
            for key, item in value.items()
            if key in members and not _is_null(item)
        }
    if kind == "list":
        if not isinstance(value, list):
            raise _wrong(value, kind, path)
        of = shape["member"]["shape"]
        return [
            None if _is_null(v) else _decode(v, of, f"{path}.member.{i}")
            for i, v in enumerate(value, 1)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise _wrong(value, kind, path)
        of = shape["value"]["shape"]
        return {
            str(k): None if _is_null(v) else _decode(v, of, f"{path}.{k}") for k, v in value.items()
        }
    return _decode_scalar(value, kind, path)


def _decode_scalar(value: Any, kind: str, path: str) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string" and isinstance(value, str):
        return value
    if kind in ("integer", "long") and number and math.isfinite(value):
        return math.floor(value)
    if kind in ("double", "float") and number:
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "timestamp":
        if isinstance(value, datetime):  # CBOR tag 1 (or 0)
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if number and math.isfinite(value):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                raise SerializationException(
                    f"Timestamp out of range at '{path}': {value}"
                ) from None
    if kind == "blob":
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise SerializationException(f"Invalid base64 at '{path}'.") from None
    raise _wrong(value, kind, path)


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


# ------------------------------------------------------------------------------------ checks


@functools.cache
def _rules(name: str) -> tuple[Rule, ...]:
    """A shape's checkable constraints, each as (Coral's wording, predicate)."""
    return shape_rules.constraints(_shape(name))


class _Checker:
    def __init__(self) -> None:
        self.missing: list[str] = []
        self.errors: list[str] = []

    def fail(self, shown: str, at: str, constraint: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                f"Value {shown} at '{at}' failed to satisfy constraint: {constraint}"
            )

    def check(self, value: Any, name: str, at: str, query: str) -> None:
        """`at`: Coral's path (lowerCamel, `.1.member`); `query`: the query protocol's."""
        for text, ok in _rules(name):
            if not ok(value):
                self.fail(f"'{_render(value)}'", at, text)
        shape = _shape(name)
        kind = shape["type"]
        if kind == "structure":
            required = set(shape.get("required", ()))
            for member, ref in shape["members"].items():
                lower = member[:1].lower() + member[1:]
                if member in value:
                    self.check(value[member], ref["shape"], _join(at, lower), _join(query, member))
                elif member in required:
                    self.missing.append(_join(query, member))
        elif kind == "list":
            of = shape["member"]["shape"]
            scalar = _shape(of)["type"] not in ("structure", "list", "map")
            rules = _rules(of)
            if scalar and any(v is not None and not ok(v) for v in value for _, ok in rules):
                listed = ", ".join(text for text, _ in rules)
                self.fail(f"'{_render(value)}'", at, f"Member must satisfy constraint: [{listed}]")
            for i, item in enumerate(value, 1):
                if item is None:
                    self.fail("null", f"{at}.{i}.member", "Member must not be null")
                elif not scalar:
                    self.check(item, of, f"{at}.{i}.member", f"{query}.member.{i}")
        elif kind == "map":
            of = shape["value"]["shape"]
            for key, item in value.items():
                if item is None:
                    self.fail("null", f"{at}.{key}.member", "Member must not be null")
                else:
                    self.check(item, of, f"{at}.{key}.member", f"{query}.{key}")


def _render(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def validate_input(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` as the service reads them (unknown and null members dropped, timestamps as
    aware datetimes, doubles as floats), or CloudWatch's error for them."""
    ref = _model()["operations"][operation].get("input")
    if ref is None:
        return {}
    name = ref["shape"]
    decoded: dict[str, Any] = _decode(params, name, "")
    checker = _Checker()
    checker.check(decoded, name, "", "")
    if checker.missing:
        raise MissingParameter(f"The parameter {checker.missing[0]} is required.")
    if checker.errors:
        n = len(checker.errors)
        raise ValidationError(
            f"{n} validation error{'s' if n > 1 else ''} detected: {'; '.join(checker.errors)}"
        )
    return decoded


# ------------------------------------------------------------------------------------ output


def _encode(value: Any, name: str, protocol: Protocol) -> Any:
    shape = _shape(name)
    kind = shape["type"]
    if kind == "structure":
        members = shape["members"]
        return {
            key: _encode(item, members[key]["shape"], protocol)
            for key, item in value.items()
            if key in members and item is not None
        }
    if kind == "list":
        return [_encode(item, shape["member"]["shape"], protocol) for item in value]
    if kind == "map":
        of = shape["value"]["shape"]
        return {key: _encode(item, of, protocol) for key, item in value.items()}
    if kind == "timestamp":
        when = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return when if protocol is Protocol.CBOR else when.timestamp()
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind == "blob" and protocol is Protocol.JSON:
        return base64.b64encode(value).decode("ascii")
    return value


def encode_output(operation: str, result: Mapping[str, Any], protocol: Protocol) -> bytes:
    """The response body for `result` (members the output shape lacks, and None, left out);
    an operation without output answers an empty body."""
    ref = _model()["operations"][operation].get("output")
    if ref is None:
        return b""
    return _dump(_encode(result, ref["shape"], protocol), protocol)


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
