"""The constraints of a botocore shape (min, max, pattern, enum) as checks with AWS's wording.

All of pier's AWS APIs (SageMaker's JSON 1.1 and CloudWatch's RPC v2 CBOR / JSON 1.0) check
requests against botocore's service models the way AWS's Coral framework does, in one walk
(pier.contract.aws_model); the checks and their messages are the same in every dialect.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from pier.contract.aws_patterns import java_pattern

Rule = tuple[str, Callable[[Any], bool]]
NUMBERS = frozenset({"integer", "long", "float", "double"})


def _bound(limit: float, length: bool, upper: bool) -> Callable[[Any], bool]:
    if upper:
        return lambda value: (len(value) if length else value) <= limit
    return lambda value: (len(value) if length else value) >= limit


def _matches(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda value: pattern.fullmatch(value) is not None


def _one_of(allowed: frozenset[str]) -> Callable[[Any], bool]:
    return lambda value: value in allowed


def constraints(
    shape: Mapping[str, Any], check_pattern: bool = True, finite: bool = False
) -> tuple[Rule, ...]:
    """The checkable constraints of `shape`, each as (AWS's wording, predicate). Patterns that
    Java's and Python's regular expressions read differently are skipped (aws_patterns).
    `finite`: a float or double must be a finite number (pier's wording: the model has no
    such constraint, AWS's Java reads `1e999` as Infinity)."""
    kind = shape["type"]
    rules: list[Rule] = []
    if finite and kind in ("float", "double"):
        rules.append(("Member must be a finite number", math.isfinite))
    length = kind not in NUMBERS
    unit = "length" if length else "value"
    if kind in NUMBERS or kind in ("string", "blob", "list", "map"):
        if "max" in shape:
            text = f"Member must have {unit} less than or equal to {shape['max']}"
            rules.append((text, _bound(shape["max"], length, upper=True)))
        if "min" in shape and (not length or shape["min"] > 0):  # botocore's model adds min 0
            text = f"Member must have {unit} greater than or equal to {shape['min']}"
            rules.append((text, _bound(shape["min"], length, upper=False)))
    compiled = java_pattern(shape["pattern"]) if "pattern" in shape and check_pattern else None
    if compiled is not None:
        text = f"Member must satisfy regular expression pattern: {shape['pattern']}"
        rules.append((text, _matches(compiled)))
    if "enum" in shape:
        text = f"Member must satisfy enum value set: [{', '.join(shape['enum'])}]"
        rules.append((text, _one_of(frozenset(shape["enum"]))))
    return tuple(rules)
