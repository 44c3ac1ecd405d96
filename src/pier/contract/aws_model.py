"""One walker over botocore's service models: decode, validate and encode an AWS API's values.

pier's AWS APIs (SageMaker's JSON 1.1, CloudWatch's RPC v2 CBOR and JSON 1.0) check requests
against botocore's service model, the contract boto3 itself is built from, in the two steps
AWS's service framework (Coral) takes:

1. Deserialisation (`ServiceModel.read`). A value of the wrong type stops the request with a
   SerializationException in the dialect's wording. Members the model does not know, and
   members set to null, are dropped, as AWS ignores them; fractional integers are truncated.
2. Constraints (`ServiceModel.validate`): required members, `enum`, `min`/`max` (value range
   for numbers, length for strings, lists and maps), `pattern` (Java regex, matched against the
   whole value: pier.contract.aws_patterns) and unions. Every violation is collected in model
   order and reported in one error: `2 validation errors detected: Value 'x' at
   'productionVariants.1.member.variantName' failed to satisfy constraint: ...; ...` (at most
   10 listed). Constraints on the items of a list of scalars, and on map keys and values, are
   reported once for the whole list or map, listing the item shape's constraints, as AWS does
   (`Member must satisfy constraint: [...]`). Values are shown as Java's toString shows them.

Outputs are encoded by the same walk (`ServiceModel.write`): members the output shape lacks,
and None, are left out.

The walk is the same for every protocol; what really differs is a `Dialect`: the wording of a
type error and the member path it names, how timestamps and blobs are read and written, the
error a constraint raises, and whether a missing required member is a constraint (Coral's
`Member must not be null`) or an error of its own (CloudWatch's query-compatible
`MissingParameter`). pier.contract.coral_json holds AWS JSON 1.1's dialect (SageMaker);
pier.contract.cloudwatch holds CloudWatch's two. A new API is a `ServiceModel` plus a dialect,
never a copy of this walk: Application Auto Scaling speaks JSON 1.1 and reuses coral_json as
it is; REST-JSON lifts the members the model binds to the URI, query string and headers into
the input map before the walk (its body is JSON 1.1's); the query protocol parses its form
(`MetricData.member.1.Value=...`) into the same nested map and reads scalars from strings in
its dialect.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.loaders import Loader

from pier.contract import shape_rules
from pier.contract.shape_rules import Rule
from pier.errors import AwsError, SerializationException

__all__ = ["MAX_REPORTED_ERRORS", "Dialect", "ServiceModel", "aware", "java_float"]

MAX_REPORTED_ERRORS = 10  # Coral stops collecting after ten
_CONTAINERS = frozenset({"structure", "list", "map"})
_SCALARS = frozenset(
    {"string", "integer", "long", "float", "double", "boolean", "timestamp", "blob"}
)

Shape = dict[str, Any]


@dataclass(frozen=True)
class Dialect:
    """What differs between protocols and service frameworks; the walk itself does not.

    Member paths handed to the dialect are the query protocol's (`MetricData.member.1.Value`,
    '' for the whole input): that is what CloudWatch names, and Coral names none.
    """

    #: The error for `value` (as sent) where the model has a `kind` at `path`.
    wrong_type: Callable[[Any, str, str], SerializationException]
    #: A timestamp as the service reads it (value, path), or None when `value` is not one.
    read_timestamp: Callable[[Any, str], Any]
    #: A blob sent as text (base64), as bytes (text, path).
    read_blob: Callable[[str, str], bytes]
    #: A scalar of the output as the wire carries it (value, kind).
    write_scalar: Callable[[Any, str], Any]
    #: The error that reports constraint violations (its message lists them).
    invalid: Callable[[str], AwsError]
    #: The error for the first missing required member (its query path), or None: a missing
    #: member is then one more violation, `Value null at 'x' ... Member must not be null`.
    missing: Callable[[str], AwsError] | None = None
    #: Coral reads the strings "true" and "false" (any case) as booleans.
    string_booleans: bool = False
    #: Coral holds integer and long members in Java's int and long: a number beyond them is
    #: a type error (`... can not be converted to an Integer`), not a huge Python int.
    java_integers: bool = False


class ServiceModel:
    """One service's botocore model (loaded on first use), walked for any dialect."""

    def __init__(
        self,
        service: str,
        relaxed_patterns: frozenset[str] = frozenset(),
        *,
        finite_numbers: bool = False,
        extra_rules: Mapping[str, tuple[Rule, ...]] | None = None,
    ) -> None:
        """`relaxed_patterns`: shapes whose `pattern` pier does not enforce (it accepts more
        than AWS there; the owning module says why). `finite_numbers`: every float and double
        must be finite (a service whose numbers all size or weigh something; CloudWatch takes
        non-finite values to refuse them in its own words). `extra_rules`: constraints AWS
        documents but the model does not carry, by shape name (the owning module says where
        they come from)."""
        self.service = service
        self.relaxed_patterns = relaxed_patterns
        self.finite_numbers = finite_numbers
        self.extra_rules = dict(extra_rules or {})
        self._rules: dict[str, tuple[Rule, ...]] = {}

    @functools.cached_property
    def _model(self) -> dict[str, Any]:
        model: dict[str, Any] = Loader().load_service_model(self.service, "service-2")
        return model

    @property
    def operations(self) -> dict[str, Any]:
        """Every operation of the API, as botocore's model lists them."""
        operations: dict[str, Any] = self._model["operations"]
        return operations

    def shape(self, name: str) -> Shape:
        shape: Shape = self._model["shapes"][name]
        return shape

    def io_shape(self, operation: str, io: str) -> str | None:
        """The name of the operation's `input` or `output` shape (None: it has none)."""
        ref = self.operations[operation].get(io)
        return None if ref is None else str(ref["shape"])

    def rules(self, name: str) -> tuple[Rule, ...]:
        """The checkable constraints of a shape, each as (AWS's wording, predicate)."""
        found = self._rules.get(name)
        if found is None:
            check_pattern = name not in self.relaxed_patterns
            found = shape_rules.constraints(
                self.shape(name), check_pattern=check_pattern, finite=self.finite_numbers
            ) + self.extra_rules.get(name, ())
            self._rules[name] = found
        return found

    # -------------------------------------------------------------------------- decode

    def read(self, value: Any, name: str, dialect: Dialect, path: str = "") -> Any:
        """`value` as the service reads it: unknown and null members dropped, scalars as the
        dialect reads them."""
        shape = self.shape(name)
        kind: str = shape["type"]
        if kind == "structure":
            if not isinstance(value, dict):
                raise dialect.wrong_type(value, kind, path)
            members = shape["members"]
            return {
                key: self.read(item, members[key]["shape"], dialect, _join(path, key))
                for key, item in value.items()
                if key in members and not _is_null(item)
            }
        if kind == "list":
            if not isinstance(value, list):
                raise dialect.wrong_type(value, kind, path)
            of = shape["member"]["shape"]
            return [
                None if _is_null(v) else self.read(v, of, dialect, f"{path}.member.{i}")
                for i, v in enumerate(value, 1)
            ]
        if kind == "map":
            if not isinstance(value, dict):
                raise dialect.wrong_type(value, kind, path)
            of = shape["value"]["shape"]
            return {
                str(k): None if _is_null(v) else self.read(v, of, dialect, f"{path}.{k}")
                for k, v in value.items()
            }
        return _read_scalar(value, kind, dialect, path)

    # -------------------------------------------------------------------------- validate

    def validate(self, params: Any, name: str, dialect: Dialect) -> dict[str, Any]:
        """`params` read as shape `name`, or the dialect's error for them."""
        decoded: dict[str, Any] = self.read(params, name, dialect)
        checker = _Checker(self, dialect)
        checker.check(decoded, name, "", "")
        missing = dialect.missing
        if missing is not None and checker.missing:
            raise missing(checker.missing[0])
        if checker.errors:
            n = len(checker.errors)
            raise dialect.invalid(
                f"{n} validation error{'s' if n > 1 else ''} detected: {'; '.join(checker.errors)}"
            )
        return decoded

    def render(self, value: Any, name: str) -> str:
        """`value` as Java's toString shows it in AWS's messages."""
        if value is None:
            return "null"
        shape = self.shape(name)
        kind = shape["type"]
        if kind == "list":
            of = shape["member"]["shape"]
            return "[" + ", ".join(self.render(v, of) for v in value) + "]"
        if kind == "map":
            of = shape["value"]["shape"]
            return "{" + ", ".join(f"{k}={self.render(v, of)}" for k, v in value.items()) + "}"
        if kind == "structure":
            members = shape["members"]
            shown = (
                f"{m}={self.render(value[m], ref['shape'])}"
                for m, ref in members.items()
                if m in value
            )
            return "{" + ", ".join(shown) + "}"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, float):
            return java_float(value, single=kind == "float")
        if isinstance(value, bytes):
            return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    # -------------------------------------------------------------------------- encode

    def write(self, value: Any, name: str, dialect: Dialect) -> Any:
        """`value` as the wire carries it (before the codec's dump)."""
        shape = self.shape(name)
        kind = shape["type"]
        if kind == "structure":
            members = shape["members"]
            return {
                key: self.write(item, members[key]["shape"], dialect)
                for key, item in value.items()
                if key in members and item is not None
            }
        if kind == "list":
            of = shape["member"]["shape"]
            return [self.write(item, of, dialect) for item in value]
        if kind == "map":
            of = shape["value"]["shape"]
            return {key: self.write(item, of, dialect) for key, item in value.items()}
        return dialect.write_scalar(value, kind)


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _is_null(value: Any) -> bool:
    return value is None or type(value).__name__ == "UndefinedType"  # CBOR's undefined


def _read_scalar(value: Any, kind: str, dialect: Dialect, path: str) -> Any:
    if kind not in _SCALARS:  # a type these APIs do not use (document): kept as sent
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string" and isinstance(value, str):
        return value
    if kind in ("integer", "long") and number and not _non_finite(value):
        whole = math.floor(value)  # Coral truncates fractions
        low, high = _JAVA_RANGE[kind]
        if not dialect.java_integers or low <= whole <= high:
            return whole
    if kind in ("float", "double") and number:
        return _to_float(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = value.lower() if isinstance(value, str) else None
        if dialect.string_booleans and text in ("true", "false"):
            return text == "true"
    if kind == "timestamp":
        read = dialect.read_timestamp(value, path)
        if read is not None:
            return read
    if kind == "blob":
        if isinstance(value, bytes):  # CBOR's byte string
            return value
        if isinstance(value, str):
            return dialect.read_blob(value, path)
    raise dialect.wrong_type(value, kind, path)


#: Java's int and long (Coral's Integer and Long), the ranges botocore's integer and long hold.
_JAVA_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _non_finite(value: float) -> bool:
    # Not math.isfinite: it overflows on integers beyond a double's range, which are finite.
    return isinstance(value, float) and not math.isfinite(value)


def _to_float(value: float) -> float:
    """`value` as a double; an integer beyond double range is infinite, as in Java."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def aware(value: datetime | float) -> datetime:
    """A datetime (naive ones are UTC) or epoch seconds, as an aware datetime."""
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def java_float(x: float, single: bool) -> str:
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


class _Checker:
    """Collects a value's constraint violations, walking it with its shape."""

    def __init__(self, model: ServiceModel, dialect: Dialect) -> None:
        self.model = model
        self.dialect = dialect
        self.errors: list[str] = []
        self.missing: list[str] = []  # query paths, when the dialect reports them apart

    def fail(self, shown: str, at: str, constraint: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                f"Value {shown} at '{at}' failed to satisfy constraint: {constraint}"
            )

    def check(self, value: Any, name: str, at: str, query: str) -> None:
        """`at`: Coral's path (lowerCamel, `.1.member`); `query`: the query protocol's."""
        for text, ok in self.model.rules(name):
            if not ok(value):
                self.fail(f"'{self.model.render(value, name)}'", at, text)
        shape = self.model.shape(name)
        kind = shape["type"]
        whole = (at, value, name)
        if kind == "structure":
            self.structure(value, shape, at, query, name)
        elif kind == "list":
            items = [
                (f"{at}.{i}.member", f"{query}.member.{i}", item) for i, item in enumerate(value, 1)
            ]
            self.items(items, shape["member"]["shape"], whole, "Member")
        elif kind == "map":
            keys = [(at, query, key) for key in value]
            self.items(keys, shape["key"]["shape"], whole, "Map keys")
            values = [(f"{at}.{k}.member", f"{query}.{k}", v) for k, v in value.items()]
            self.items(values, shape["value"]["shape"], whole, "Map value")

    def structure(
        self, value: dict[str, Any], shape: Shape, at: str, query: str, name: str
    ) -> None:
        if shape.get("union") and len(value) != 1:
            shown = f"'{self.model.render(value, name)}'"
            self.fail(shown, at or name, "Member must have exactly one member set")
        required = set(shape.get("required", ()))
        for member, ref in shape["members"].items():
            here = _join(at, member[:1].lower() + member[1:])
            there = _join(query, member)
            if member in value:
                self.check(value[member], ref["shape"], here, there)
            elif member in required and self.dialect.missing is not None:
                self.missing.append(there)
            elif member in required:
                self.fail("null", here, "Member must not be null")

    def items(
        self, items: list[tuple[str, str, Any]], of: str, whole: tuple[str, Any, str], label: str
    ) -> None:
        """The items of a list, or a map's keys or values, each with its paths. Scalars that
        break their shape's constraints make one error for the whole list or map, listing those
        constraints; structures are checked one by one."""
        rules = self.model.rules(of)
        scalar = self.model.shape(of)["type"] not in _CONTAINERS
        if scalar and any(v is not None and not ok(v) for _, _, v in items for _, ok in rules):
            at, value, name = whole
            listed = ", ".join(text for text, _ in rules)
            shown = f"'{self.model.render(value, name)}'"
            self.fail(shown, at, f"{label} must satisfy constraint: [{listed}]")
        for at, query, item in items:
            if item is None:
                self.fail("null", at, "Member must not be null")
            elif not scalar:
                self.check(item, of, at, query)
