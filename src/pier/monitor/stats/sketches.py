"""KLL quantile sketches as weighted samples: the one shape every distribution takes here.

A KLL sketch keeps a few thousand of the values it saw, in levels: an item on level ``h``
stands for ``2**h`` values. SageMaker's statistics.json stores exactly that (``sketch.data``,
one list per level, lowest first), and Apache DataSketches serializes the same thing in
binary. Both become a :class:`WeightedSample` (sorted values, their weights), from which the
CDF, quantiles, histogram buckets and every distance in :mod:`pier.monitor.stats.drift` are computed
exactly, so a baseline written by SageMaker compares with a window profiled by pier.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from datasketches import kll_doubles_sketch

from pier.monitor.errors import MonitorError

FloatArray = npt.NDArray[np.float64]

DEFAULT_KLL_K = 2048
# k=200 errs by up to 0.015 in KS distance (as large as real drift); k=1024 by 0.0017.
MIN_KLL_K = 1024
# DataSketches' KLL shrinks each level's capacity by 2/3 (Deequ's sketch, SageMaker's, by 0.64):
# the ``c`` written into statistics.json.
KLL_C = 2.0 / 3.0

# DataSketches' KLL serialization (kll_sketch_impl.hpp): an 8-byte preamble, then for a
# sketch of two items or more n, min_k, num_levels, the level offsets, min, max and the items.
_FLAG_EMPTY = 1
_FLAG_SINGLE_ITEM = 4
_PREAMBLE = struct.Struct("<BBBBHBx")
_FULL = struct.Struct("<QHBx")


def new_kll(k: int = DEFAULT_KLL_K) -> Any:
    """An empty DataSketches KLL sketch of doubles; ``k`` below 1024 is refused."""
    if not MIN_KLL_K <= k <= 65535:
        raise MonitorError(
            f"kll_k must be between {MIN_KLL_K} and 65535, got {k}: a smaller sketch errs "
            "by as much as the drift it should detect"
        )
    return kll_doubles_sketch(k)


def kll_levels(sketch: Any) -> list[FloatArray]:
    """The items a DataSketches KLL sketch retains, one array per level (weight ``2**level``).

    Read from the sketch's binary form; the levels' weights are checked to add up to ``n``.
    """
    raw = bytes(sketch.serialize())
    _, _, _, flags, _, _ = _PREAMBLE.unpack_from(raw, 0)
    if flags & _FLAG_EMPTY:
        return []
    if flags & _FLAG_SINGLE_ITEM:
        return [np.frombuffer(raw, dtype="<f8", count=1, offset=_PREAMBLE.size).astype(np.float64)]
    n, _, num_levels = _FULL.unpack_from(raw, _PREAMBLE.size)
    offset = _PREAMBLE.size + _FULL.size
    starts = np.frombuffer(raw, dtype="<u4", count=num_levels, offset=offset).astype(np.int64)
    offset += 4 * num_levels + 16  # level offsets, then min and max
    items = np.frombuffer(raw, dtype="<f8", offset=offset).astype(np.float64)
    bounds = [*(starts - starts[0]).tolist(), len(items)]
    levels = [items[bounds[i] : bounds[i + 1]] for i in range(num_levels)]
    weight = sum(len(level) << h for h, level in enumerate(levels))
    if weight != n or n != sketch.n:
        raise MonitorError(f"unreadable KLL sketch: levels weigh {weight}, the sketch saw {n}")
    return levels


@dataclass(frozen=True)
class WeightedSample:
    """Distinct sorted values and the weight (number of original values) each stands for."""

    values: FloatArray
    weights: FloatArray

    @classmethod
    def from_levels(cls, levels: Sequence[Sequence[float] | FloatArray]) -> WeightedSample:
        """From KLL levels (statistics.json's ``sketch.data`` or :func:`kll_levels`)."""
        parts = [np.asarray(level, dtype=np.float64) for level in levels]
        if not parts:
            return cls.from_values(np.empty(0))
        values = np.concatenate(parts)
        weights = np.concatenate([np.full(len(p), float(1 << h)) for h, p in enumerate(parts)])
        if not np.isfinite(values).all():
            raise MonitorError("a KLL sketch holds NaN or infinite values")
        return cls._collapse(values, weights)

    @classmethod
    def from_kll(cls, sketch: Any) -> WeightedSample:
        return cls.from_levels(kll_levels(sketch))

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> WeightedSample:
        """Every value with weight one: the exact empirical distribution."""
        array = np.asarray(values, dtype=np.float64)
        return cls._collapse(array, np.ones(len(array)))

    @classmethod
    def _collapse(cls, values: FloatArray, weights: FloatArray) -> WeightedSample:
        order = np.argsort(values)
        values, weights = values[order], weights[order]
        if not len(values):
            return cls(values, weights)
        first = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
        return cls(values[first], np.add.reduceat(weights, first).astype(np.float64))

    @property
    def total(self) -> float:
        """How many original values the sample stands for."""
        return float(self.weights.sum())

    def __len__(self) -> int:
        return len(self.values)

    def cdf(self, points: npt.ArrayLike) -> FloatArray:
        """The fraction of the weight at or below each point (right-continuous CDF)."""
        cumulative = np.concatenate([[0.0], np.cumsum(self.weights)])
        index = np.searchsorted(self.values, np.asarray(points, dtype=np.float64), side="right")
        return np.asarray(cumulative[index] / cumulative[-1], dtype=np.float64)

    def quantiles(self, ranks: npt.ArrayLike) -> FloatArray:
        """The smallest value whose CDF reaches each rank in [0, 1] (inverse CDF)."""
        cumulative = np.cumsum(self.weights) / self.total
        index = np.searchsorted(cumulative, np.asarray(ranks, dtype=np.float64), side="left")
        return self.values[np.minimum(index, len(self.values) - 1)]

    def buckets(
        self, lower: float, upper: float, count: int = 10
    ) -> list[tuple[float, float, float]]:
        """``count`` equal-width buckets over [lower, upper] with the weight in each.

        Buckets are (lower, upper] except the first, which also holds ``lower``; the counts add
        up to the sample's total (SageMaker's 10 ``kll.buckets``).
        """
        if upper <= lower:
            return [(lower, upper, self.total)]
        edges = np.linspace(lower, upper, count + 1)
        inner = self.cdf(edges[1:-1]) * self.total
        counts = np.diff(np.concatenate([[0.0], inner, [self.total]]))
        return [
            (float(edges[i]), float(edges[i + 1]), float(round(counts[i], 6))) for i in range(count)
        ]
