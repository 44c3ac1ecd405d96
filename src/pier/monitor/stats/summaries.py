"""Mergeable summaries of one column: exact moments with a KLL sketch, and string counts.

Each summary is built from batches (``update``), merged with another of the same column
(``merge``, so hourly or per-instance summaries roll up to any window without re-reading
rows) and turned into JSON-safe dicts (sketches as base64 of DataSketches' binary form).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasketches import frequent_items_error_type, frequent_strings_sketch, hll_sketch, hll_union

from pier.monitor.errors import MonitorError
from pier.monitor.stats.sketches import DEFAULT_KLL_K, FloatArray, WeightedSample, new_kll

# Exact counts for up to this many distinct strings per column; beyond, a frequent-items
# sketch (top values, error ≤ 3.5/768 of the count) and HLL (distinct count, ±1.6 %).
DEFAULT_STRING_CAP = 1000
_FREQUENT_LG_MAP = 10
_HLL_LG_K = 12


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


@dataclass
class NumericSummary:
    """Count, sum, mean, population variance (as M2), min and max, exactly; quantiles by KLL.

    Moments merge with Chan et al.'s parallel formula, so merging summaries gives the same
    values as summarising the union, up to floating-point rounding.
    """

    kll_k: int = DEFAULT_KLL_K
    count: int = 0
    total: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    sketch: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sketch is None:
            self.sketch = new_kll(self.kll_k)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std_dev(self) -> float:
        """Population standard deviation (Deequ's, hence SageMaker's)."""
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else math.nan

    def update(self, values: FloatArray) -> None:
        """Add finite values (NaN and infinities must already be filtered out)."""
        if not len(values):
            return
        other = NumericSummary(self.kll_k, sketch=self.sketch)
        other.count = len(values)
        other.total = float(values.sum())
        mean = other.total / other.count
        other.m2 = float(np.square(values - mean).sum())
        other.minimum, other.maximum = float(values.min()), float(values.max())
        self.sketch.update(values)
        self._absorb_moments(other)

    def merge(self, other: NumericSummary) -> None:
        if other.kll_k != self.kll_k:
            raise MonitorError(f"cannot merge KLL sketches of k={self.kll_k} and k={other.kll_k}")
        if other.count:
            self.sketch.merge(other.sketch)
            self._absorb_moments(other)

    def _absorb_moments(self, other: NumericSummary) -> None:
        if self.count == 0:
            self.count, self.total, self.m2 = other.count, other.total, other.m2
        else:
            n = self.count + other.count
            delta = other.mean - self.mean
            self.m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
            self.count, self.total = n, self.total + other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def sample(self) -> WeightedSample:
        return WeightedSample.from_kll(self.sketch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kll_k": self.kll_k,
            "count": self.count,
            "sum": self.total,
            "m2": self.m2,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
            "kll": _b64(bytes(self.sketch.serialize())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSummary:
        from datasketches import kll_doubles_sketch

        sketch = kll_doubles_sketch.deserialize(_unb64(data["kll"]))
        count = int(data["count"])
        if sketch.n != count:
            raise MonitorError(f"numeric summary counts {count} values, its sketch {sketch.n}")
        return cls(
            kll_k=int(data["kll_k"]),
            count=count,
            total=float(data["sum"]),
            m2=float(data["m2"]),
            minimum=math.inf if data["min"] is None else float(data["min"]),
            maximum=-math.inf if data["max"] is None else float(data["max"]),
            sketch=sketch,
        )


@dataclass
class StringSummary:
    """Counts of string values: exact up to ``cap`` distinct values, sketched beyond."""

    cap: int = DEFAULT_STRING_CAP
    counts: dict[str, int] | None = field(default_factory=dict)
    frequent: Any = field(default=None, repr=False)
    distinct: Any = field(default=None, repr=False)

    @property
    def exact(self) -> bool:
        return self.counts is not None

    @property
    def total(self) -> int:
        if self.counts is not None:
            return sum(self.counts.values())
        return int(self.frequent.total_weight)

    def update(self, value_counts: Mapping[str, int]) -> None:
        """Add a batch, given as value → count (``Series.value_counts()``)."""
        if self.counts is not None:
            for value, count in value_counts.items():
                self.counts[value] = self.counts.get(value, 0) + int(count)
            if len(self.counts) > self.cap:
                self._to_sketches()
        else:
            for value, count in value_counts.items():
                self.frequent.update(value, int(count))
                self.distinct.update(value)

    def _to_sketches(self) -> None:
        counts, self.counts = self.counts or {}, None
        self.frequent = frequent_strings_sketch(_FREQUENT_LG_MAP)
        self.distinct = hll_sketch(_HLL_LG_K)
        self.update(counts)

    def merge(self, other: StringSummary) -> None:
        if other.counts is not None:
            self.update(other.counts)
            return
        if self.counts is not None:
            self._to_sketches()
        self.frequent.merge(other.frequent)
        union = hll_union(_HLL_LG_K)
        union.update(self.distinct)
        union.update(other.distinct)
        self.distinct = union.get_result()

    def distinct_count(self) -> int:
        if self.counts is not None:
            return len(self.counts)
        return round(float(self.distinct.get_estimate()))

    def top(self, limit: int | None = None) -> list[tuple[str, int]]:
        """The most frequent values with their (estimated, once sketched) counts."""
        if self.counts is not None:
            items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        else:
            rows = self.frequent.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)
            items = sorted(((r[0], int(r[1])) for r in rows), key=lambda kv: (-kv[1], kv[0]))
        return items if limit is None else items[:limit]

    def count_of(self, value: str) -> int:
        if self.counts is not None:
            return self.counts.get(value, 0)
        return int(self.frequent.get_estimate(value))

    def to_dict(self) -> dict[str, Any]:
        if self.counts is not None:
            return {"cap": self.cap, "counts": self.counts}
        return {
            "cap": self.cap,
            "frequent": _b64(bytes(self.frequent.serialize())),
            "hll": _b64(bytes(self.distinct.serialize_compact())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StringSummary:
        if "counts" in data:
            counts = {str(k): int(v) for k, v in data["counts"].items()}
            return cls(cap=int(data["cap"]), counts=counts)
        return cls(
            cap=int(data["cap"]),
            counts=None,
            frequent=frequent_strings_sketch.deserialize(_unb64(data["frequent"])),
            distinct=hll_sketch.deserialize(_unb64(data["hll"])),
        )
