"""The SageMaker control API's wire contract (JSON 1.1): target, body and input validation.

Requests are checked against botocore's service model, the contract boto3 itself is built
from, in the two steps AWS's service framework (Coral) takes:

1. Deserialisation. A value of the wrong JSON type stops the request with a
   SerializationException carrying Coral's own message (`class java.lang.String can not be
   converted to an Integer`, `Start of list found where not expected`). Members the model does
   not know, and members set to null, are dropped, as AWS ignores them.
2. Constraints: required members, `enum`, `min`/`max` (value range for numbers, length for
   strings, lists and maps), `pattern` (Java regex, matched against the whole value) and unions.
   Every violation is collected in model order and reported in one ValidationException:
   `2 validation errors detected: Value 'x' at 'productionVariants.1.member.variantName' failed
   to satisfy constraint: ...; ...` (at most 10 listed). Constraints on the items of a list of
   scalars, and on map keys and values, are reported once for the whole list or map, listing
   the item shape's constraints, as AWS does (`Member must satisfy constraint: [...]`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.loaders import Loader

from pier.contract import shape_rules
from pier.contract.aws_patterns import java_pattern
from pier.contract.shape_rules import Rule
from pier.errors import SerializationException, UnknownOperationException, ValidationException

__all__ = [
    "MONITORING_OPERATIONS",
    "SUPPORTED_OPERATIONS",
    "TARGET_PREFIX",
    "operation_from_target",
    "parse_body",
    "pattern_coverage",
    "serialize_output",
    "validate_input",
]

TARGET_PREFIX = "SageMaker."
SUPPORTED_OPERATIONS = frozenset(
    {
        *("CreateModel", "DescribeModel", "ListModels", "DeleteModel", "CreateEndpointConfig"),
        *("DescribeEndpointConfig", "ListEndpointConfigs", "DeleteEndpointConfig"),
        *("CreateEndpoint", "DescribeEndpoint", "ListEndpoints", "DeleteEndpoint"),
        *("UpdateEndpoint", "UpdateEndpointWeightsAndCapacities", "AddTags", "ListTags"),
        "DeleteTags",
    }
)
#: Monitoring schedules (pier.control.monitoring_service), beside the hosting operations.
MONITORING_OPERATIONS = frozenset(
    {
        *("CreateMonitoringSchedule", "DescribeMonitoringSchedule", "ListMonitoringSchedules"),
        *("DeleteMonitoringSchedule", "StopMonitoringSchedule", "StartMonitoringSchedule"),
        "ListMonitoringExecutions",
    }
)
_OPERATIONS = SUPPORTED_OPERATIONS | MONITORING_OPERATIONS
MAX_REPORTED_ERRORS = 10  # Coral stops collecting after ten

_NOT_RECOGNIZED = "The requested operation is not recognized by the service."
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
_CONTAINERS = frozenset({"structure", "list", "map"})

Shape = dict[str, Any]


@functools.cache
def _model() -> dict[str, Any]:
    model: dict[str, Any] = Loader().load_service_model("sagemaker", "service-2")
    return model


def _shape(name: str) -> Shape:
    shape: Shape = _model()["shapes"][name]
    return shape


def _io_shape(operation: str, io: str) -> str:
    name: str = _model()["operations"][operation][io]["shape"]
    return name


# ------------------------------------------------------------------------------ target, body


def operation_from_target(x_amz_target: str | None) -> str:
    """`SageMaker.CreateModel` -> `CreateModel`, for the operations pier implements."""
    prefix, _, operation = (x_amz_target or "").partition(".")
    if prefix + "." == TARGET_PREFIX and operation in _OPERATIONS:
        return operation
    if prefix + "." == TARGET_PREFIX and operation in _model()["operations"]:
        raise UnknownOperationException(
            f"{_NOT_RECOGNIZED} pier implements SageMaker's hosting operations, not {operation}."
        )
    raise UnknownOperationException(_NOT_RECOGNIZED)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is malformed: boto3 always sends {})."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SerializationException(f"Malformed JSON request body: {exc}") from None
    if not isinstance(value, dict):
        raise _unexpected(value, "structure")
    return value


# ------------------------------------------------------------------------------ deserialise


def _unexpected(value: Any, kind: str) -> SerializationException:
    """Coral's message for `value` where the model has a `kind`."""
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


def _decode(value: Any, name: str) -> Any:
    shape = _shape(name)
    kind: str = shape["type"]
    if kind == "structure":
        if not isinstance(value, dict):
            raise _unexpected(value, kind)
        members = shape["members"]
        return {
            key: _decode(item, members[key]["shape"])
            for key, item in value.items()
            if key in members and item is not None
        }
    if kind == "list":
        if not isinstance(value, list):
            raise _unexpected(value, kind)
        member = shape["member"]["shape"]
        return [None if item is None else _decode(item, member) for item in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise _unexpected(value, kind)
        of = shape["value"]["shape"]
        return {key: None if item is None else _decode(item, of) for key, item in value.items()}
    return _decode_scalar(value, kind)


def _decode_scalar(value: Any, kind: str) -> Any:
    if kind not in _JAVA_TYPE:  # a type these operations do not use (document): kept as sent
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string" and isinstance(value, str):
        return value
    if kind in ("integer", "long") and is_number:
        if isinstance(value, float) and not math.isfinite(value):
            raise _unexpected(value, kind)
        return math.floor(value)  # Coral truncates fractions
    if kind in ("float", "double") and is_number:
        return _to_float(value)
    if kind == "timestamp" and is_number:
        return value  # epoch seconds, as botocore sends them
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    if kind == "blob" and isinstance(value, str):
        return _decode_blob(value)
    raise _unexpected(value, kind)


def _to_float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond double range: Java gives Infinity too
        return math.inf if value > 0 else -math.inf


def _decode_blob(value: str) -> bytes:
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


# ------------------------------------------------------------------------------ constraints


#: Where the model lives (ModelDataUrl, ModelDataSource.S3DataSource.S3Uri): AWS allows only
#: https:// and s3://; pier also runs MLflow URIs (models:/, runs:/), local paths and file://,
#: so these shapes skip their pattern (a deliberate difference, docs/hosting.md).
MODEL_LOCATION_SHAPES = frozenset({"Url", "S3ModelUri"})
#: Where data capture writes (DataCaptureConfig.DestinationS3Uri): AWS allows https:// and
#: s3://; pier also writes to a local directory (file://), so the service checks the scheme
#: instead of this pattern (pier.monitor.capture.destination_problem).
CAPTURE_DESTINATION_SHAPES = frozenset({"DestinationS3Uri"})
#: Baselines and monitoring reports (BaselineConfig.*.S3Uri, S3Output.S3Uri): AWS allows
#: https:// and s3://; pier also reads file: and models:/name/version (a baseline stored with a
#: model version), so the monitoring service checks the scheme instead of these patterns.
MONITORING_LOCATION_SHAPES = frozenset({"S3Uri", "MonitoringS3Uri"})


@functools.cache
def _rules(name: str) -> tuple[Rule, ...]:
    """The checkable constraints of a shape, each as (AWS's wording, predicate)."""
    relaxed = (
        name in MODEL_LOCATION_SHAPES
        or name in CAPTURE_DESTINATION_SHAPES
        or name in MONITORING_LOCATION_SHAPES
    )
    return shape_rules.constraints(_shape(name), check_pattern=not relaxed)


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, shown: str, path: str, constraint: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"
            )

    def check(self, value: Any, name: str, path: str) -> None:
        for text, ok in _rules(name):
            if not ok(value):
                self.fail(f"'{_render(value, name)}'", path, text)
        shape = _shape(name)
        kind = shape["type"]
        if kind == "structure":
            self.structure(value, shape, path, name)
        elif kind == "list":
            items = [(f"{path}.{i}.member", item) for i, item in enumerate(value, 1)]
            self.items(items, shape["member"]["shape"], (path, value, name), "Member")
        elif kind == "map":
            keys = [(path, key) for key in value]
            self.items(keys, shape["key"]["shape"], (path, value, name), "Map keys")
            values = [(f"{path}.{key}.member", item) for key, item in value.items()]
            self.items(values, shape["value"]["shape"], (path, value, name), "Map value")

    def structure(self, value: dict[str, Any], shape: Shape, path: str, name: str) -> None:
        if shape.get("union") and len(value) != 1:
            shown = f"'{_render(value, name)}'"
            self.fail(shown, path or name, "Member must have exactly one member set")
        required = set(shape.get("required", ()))
        for member, ref in shape["members"].items():
            at = member[:1].lower() + member[1:]
            at = f"{path}.{at}" if path else at
            if member in value:
                self.check(value[member], ref["shape"], at)
            elif member in required:
                self.fail("null", at, "Member must not be null")

    def items(
        self, items: list[tuple[str, Any]], of: str, whole: tuple[str, Any, str], label: str
    ) -> None:
        """The items of a list, or a map's keys or values, each with its path. Scalars that
        break their shape's constraints make one error for the whole list or map, listing those
        constraints; structures are checked one by one."""
        rules = _rules(of)
        scalar = _shape(of)["type"] not in _CONTAINERS
        if scalar and any(v is not None and not ok(v) for _, v in items for _, ok in rules):
            path, value, name = whole
            listed = ", ".join(text for text, _ in rules)
            self.fail(
                f"'{_render(value, name)}'", path, f"{label} must satisfy constraint: [{listed}]"
            )
        for at, item in items:
            if item is None:
                self.fail("null", at, "Member must not be null")
            elif not scalar:
                self.check(item, of, at)


def _render(value: Any, name: str) -> str:
    """`value` as Java's toString shows it in AWS's messages."""
    if value is None:
        return "null"
    shape = _shape(name)
    kind = shape["type"]
    if kind == "list":
        return "[" + ", ".join(_render(v, shape["member"]["shape"]) for v in value) + "]"
    if kind == "map":
        of = shape["value"]["shape"]
        return "{" + ", ".join(f"{k}={_render(v, of)}" for k, v in value.items()) + "}"
    if kind == "structure":
        members = shape["members"]
        shown = (
            f"{m}={_render(value[m], ref['shape'])}" for m, ref in members.items() if m in value
        )
        return "{" + ", ".join(shown) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _java_float(value, single=kind == "float")
    if isinstance(value, bytes):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    return str(value)


def _java_float(x: float, single: bool) -> str:
    """Java's Float/Double.toString: shortest digits; scientific outside [1e-3, 1e7)."""
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    digits = repr(x)
    if single:
        try:
            f32 = struct.unpack("f", struct.pack("f", x))[0]
        except OverflowError:
            return "Infinity" if x > 0 else "-Infinity"
        same = (f"{f32:.{p}g}" for p in range(1, 10))
        digits = next(s for s in same if struct.unpack("f", struct.pack("f", float(s)))[0] == f32)
    number = Decimal(digits)
    if number == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if Decimal("1e-3") <= abs(number) < Decimal("1e7"):
        text = format(number.normalize(), "f")
        return text if "." in text else text + ".0"
    sign, coefficient, exponent = number.normalize().as_tuple()
    mantissa = "".join(map(str, coefficient))
    scale = int(exponent) + len(mantissa) - 1
    return f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{scale}"


# ------------------------------------------------------------------------------ public


def _validate(shape_name: str, params: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = _decode(params, shape_name)
    checker = _Checker()
    checker.check(decoded, shape_name, "")
    if checker.errors:
        n = len(checker.errors)
        raise ValidationException(
            f"{n} validation error{'s' if n > 1 else ''} detected: {'; '.join(checker.errors)}"
        )
    return decoded


def validate_input(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` as the service should read them, or AWS's error for them.

    The result drops unknown and null members, truncates fractional integers and turns
    "true"/"false" into booleans and base64 blobs into bytes, as AWS reads them.
    """
    if operation not in _OPERATIONS:
        raise UnknownOperationException(_NOT_RECOGNIZED)
    return _validate(_io_shape(operation, "input"), params)


def serialize_output(operation: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """`result` as boto3 reads the operation's output: datetimes as epoch seconds (naive ones
    are UTC), bytes as base64, None and members the output shape lacks left out."""
    if "output" not in _model()["operations"][operation]:
        return {}  # DeleteEndpoint & co. answer an empty body
    encoded: dict[str, Any] = _encode(result, _io_shape(operation, "output"))
    return encoded


def _encode(value: Any, name: str) -> Any:
    shape = _shape(name)
    kind = shape["type"]
    if kind == "structure":
        members = shape["members"]
        return {
            key: _encode(item, members[key]["shape"])
            for key, item in value.items()
            if key in members and item is not None
        }
    if kind == "list":
        return [_encode(item, shape["member"]["shape"]) for item in value]
    if kind == "map":
        return {key: _encode(item, shape["value"]["shape"]) for key, item in value.items()}
    if kind == "timestamp" and isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if kind == "blob" and isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return value


def pattern_coverage() -> tuple[int, int]:
    """(translated, skipped): the distinct patterns in the supported operations' inputs."""
    patterns: set[str] = set()
    seen: set[str] = set()
    stack = [_io_shape(op, "input") for op in SUPPORTED_OPERATIONS]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = _shape(name)
        if "pattern" in shape:
            patterns.add(shape["pattern"])
        refs = [shape[k] for k in ("member", "key", "value") if k in shape]
        stack.extend(ref["shape"] for ref in [*refs, *shape.get("members", {}).values()])
    translated = sum(java_pattern(p) is not None for p in patterns)
    return translated, len(patterns) - translated
