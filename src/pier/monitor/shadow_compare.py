"""Production vs shadow on the same requests, from data capture: what `pier compare` shows.

When an endpoint with a shadow variant captures data, the router records both halves of each
copied request with one eventId and pier's `pierStatus` and `pierModelLatencyMicros` keys
(pier.router.mirror). This module pairs the production's and the shadow's records by eventId
and compares, over the pairs only: the model latency percentiles, the error rates (status ≥ 400)
and, where both answered, the predictions: the share that agree (classification) or the
distribution of shadow − production (regression).

Predictions are read from endpointOutput: JSON `{"predictions": [...]}`, a JSON list or scalar,
or CSV (one value per line or comma); one prediction per element, compared element by element.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from pier.storage import Location, S3ClientFactory, child, read_lines, s3_client

PERCENTILES = (50, 90, 99)


@dataclass
class Side:
    """One variant's half of the pairs."""

    variant: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def summary(self, pairs: int) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms, dtype=float)
        return {
            "variant": self.variant,
            "errors": self.errors,
            "error_rate": self.errors / pairs if pairs else None,
            "latency_ms": {
                f"p{p}": float(np.percentile(lat, p)) if lat.size else None for p in PERCENTILES
            },
        }


@dataclass(frozen=True)
class Comparison:
    """What `pier compare` prints (`to_dict` is its --json)."""

    production: dict[str, Any]
    shadow: dict[str, Any]
    pairs: int
    unpaired_production: int
    unpaired_shadow: int
    problem: str  # classification | regression | none (no prediction to compare)
    predictions: dict[str, Any]
    unreadable: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "unpaired": {"production": self.unpaired_production, "shadow": self.unpaired_shadow},
            "production": self.production,
            "shadow": self.shadow,
            "problem": self.problem,
            "predictions": self.predictions,
            "unreadable_records": self.unreadable,
        }


def _records(
    destination: Location, endpoint: str, variant: str, start: float, end: float, s3: Any
) -> tuple[dict[str, dict[str, Any]], int]:
    """eventId -> record of the variant's mirrored requests (those with pierStatus), and the
    number of lines that could not be read."""
    out: dict[str, dict[str, Any]] = {}
    bad = 0
    for line in read_lines(child(destination, endpoint, variant), start, end, s3):
        try:
            record = orjson.loads(line.text)
            meta = record["eventMetadata"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            bad += 1
            continue
        if "pierStatus" in meta and "eventId" in meta:
            out[str(meta["eventId"])] = record
    return out, bad


def predictions_of(record: dict[str, Any]) -> list[Any] | None:
    """The predictions in a record's endpointOutput, or None when there are none to read."""
    payload = (record.get("captureData") or {}).get("endpointOutput")
    if not payload:
        return None
    data = str(payload.get("data", ""))
    encoding = payload.get("encoding")
    try:
        text = base64.b64decode(data).decode() if encoding == "BASE64" else data
    except (ValueError, UnicodeDecodeError):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        cells = [c.strip() for row in text.strip().splitlines() for c in row.split(",")]
        return [_cell(c) for c in cells if c]
    if isinstance(value, dict):
        value = value.get("predictions", value.get("outputs"))
        if value is None:
            return None
    return value if isinstance(value, list) else [value]


def _cell(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _flat(value: Any) -> Any:
    """A prediction as a comparable value (a one-element list is its element)."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return tuple(value) if isinstance(value, list) else value


def _is_real(values: list[Any]) -> bool:
    """Regression when every value is a number and some are real (written with a decimal
    point or exponent: 15.0 is a regression's answer, 15 a class label)."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values) or not numbers:
        return False
    return any(isinstance(v, float) for v in numbers)


def compare(
    destination: Location,
    endpoint: str,
    production: str,
    shadow: str,
    start: float,
    end: float,
    problem: str = "auto",
    s3: S3ClientFactory = s3_client,
) -> Comparison:
    """Compare `shadow` with `production` on the requests both captured in [start, end]."""
    prod, bad_p = _records(destination, endpoint, production, start, end, s3)
    shad, bad_s = _records(destination, endpoint, shadow, start, end, s3)
    paired = sorted(prod.keys() & shad.keys())
    sides = (Side(production), Side(shadow))
    left: list[Any] = []
    right: list[Any] = []
    for event_id in paired:
        answers = []
        for side, record in zip(sides, (prod[event_id], shad[event_id]), strict=True):
            meta = record["eventMetadata"]
            side.latencies_ms.append(float(meta.get("pierModelLatencyMicros") or 0) / 1000.0)
            ok = int(meta["pierStatus"]) < 400
            side.errors += not ok
            answers.append(predictions_of(record) if ok else None)
        a, b = answers
        if a is not None and b is not None and len(a) == len(b):
            left += [_flat(x) for x in a]
            right += [_flat(x) for x in b]
    if problem == "auto":
        problem = "regression" if _is_real([*left, *right]) else "classification"
    if not left:
        problem = "none"
    predictions: dict[str, Any] = {"compared": len(left)}
    if problem == "classification":
        agree = sum(x == y for x, y in zip(left, right, strict=True))
        predictions["agreement"] = agree / len(left)
    elif problem == "regression":
        try:
            diff = np.asarray(right, dtype=float) - np.asarray(left, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                "the predictions are not numbers: compare them with --problem classification"
            ) from None
        predictions["difference"] = {
            "mean": float(diff.mean()),
            "std": float(diff.std()),
            "p5": float(np.percentile(diff, 5)),
            "p50": float(np.percentile(diff, 50)),
            "p95": float(np.percentile(diff, 95)),
            "max_abs": float(np.abs(diff).max()),
        }
        predictions["mean_abs_difference"] = float(np.abs(diff).mean())
        if not math.isfinite(predictions["mean_abs_difference"]):
            predictions["mean_abs_difference"] = None
    n = len(paired)
    return Comparison(
        production=sides[0].summary(n),
        shadow=sides[1].summary(n),
        pairs=n,
        unpaired_production=len(prod) - n,
        unpaired_shadow=len(shad) - n,
        problem=problem,
        predictions=predictions,
        unreadable=bad_p + bad_s,
    )


__all__ = ["Comparison", "compare", "predictions_of"]
