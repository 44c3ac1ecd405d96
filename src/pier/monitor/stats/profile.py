"""Mergeable profiles of tabular data: per column, its type and a summary of its values.

A :class:`DatasetProfile` is built from a DataFrame or from batches (DataFrames, Arrow record
batches or tables), merges with the profile of other rows of the same data (hours, instances)
and serializes to JSON, so it can be stored and rolled up later. Statistics files
(:mod:`pier.monitor.stats.baseline`) and drift (:mod:`pier.monitor.stats.drift`) are computed
from it.

Types are inferred as SageMaker's analyzer (Deequ) does: every present value is Integral,
Fractional or String; a column with any String value is String, else with any Fractional
value Fractional, else Integral; a column with no value at all is Unknown. Values of numeric
dtypes take their dtype's kind; text is classified by Deequ's patterns (``"3"`` Integral,
``"3.5"`` and ``"1e-3"`` Fractional). Booleans, dates and infinities count as String. In text
columns an empty (or blank) string counts as missing, as an empty CSV field does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pier.monitor.errors import MonitorError
from pier.monitor.stats.sketches import DEFAULT_KLL_K, new_kll
from pier.monitor.stats.summaries import DEFAULT_STRING_CAP, NumericSummary, StringSummary

FORMAT = "pier.monitor.stats.profile/1"
# Deequ's patterns for numbers written as text (an optional sign, then one optional space).
_INTEGRAL = re.compile(r"[+-]? ?\d+")
_FRACTIONAL = re.compile(r"[+-]? ?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


class InferredType(StrEnum):
    """SageMaker's ``inferred_type`` values."""

    INTEGRAL = "Integral"
    FRACTIONAL = "Fractional"
    STRING = "String"
    UNKNOWN = "Unknown"


@dataclass
class FeatureProfile:
    """One column: how many values of each kind, and summaries of them.

    ``numeric`` summarises the Integral and Fractional values (from numeric columns, or
    numbers written as text); ``strings`` counts every present value of a text column as text.
    A numeric column has no ``strings``: a merged profile whose parts disagree keeps the text
    counts of the text parts only.
    """

    name: str
    kll_k: int = DEFAULT_KLL_K
    string_cap: int = DEFAULT_STRING_CAP
    num_missing: int = 0
    integral: int = 0
    fractional: int = 0
    string: int = 0
    numeric: NumericSummary | None = None
    strings: StringSummary | None = None

    @property
    def num_present(self) -> int:
        return self.integral + self.fractional + self.string

    @property
    def inferred_type(self) -> InferredType:
        if self.string:
            return InferredType.STRING
        if self.fractional:
            return InferredType.FRACTIONAL
        if self.integral:
            return InferredType.INTEGRAL
        return InferredType.UNKNOWN

    @property
    def completeness(self) -> float:
        """The share of rows with a value (1.0 for a column of no rows)."""
        rows = self.num_present + self.num_missing
        return self.num_present / rows if rows else 1.0

    def _numeric(self) -> NumericSummary:
        if self.numeric is None:
            self.numeric = NumericSummary(self.kll_k)
        return self.numeric

    def _strings(self) -> StringSummary:
        if self.strings is None:
            self.strings = StringSummary(self.string_cap)
        return self.strings

    def update(self, column: pd.Series[Any]) -> None:
        """Add a batch of this column's values."""
        dtype = column.dtype
        if pd.api.types.is_bool_dtype(dtype):
            self._update_text(column.map({True: "true", False: "false"}, na_action="ignore"))
        elif pd.api.types.is_integer_dtype(dtype):
            values = column.dropna().to_numpy(dtype=np.float64)
            self.num_missing += len(column) - len(values)
            self.integral += len(values)
            self._numeric().update(values)
        elif pd.api.types.is_float_dtype(dtype):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.isfinite(values)
            nan = np.isnan(values)
            self.num_missing += int(nan.sum())
            self.fractional += int(finite.sum())
            self._numeric().update(values[finite])
            infinite = ~(finite | nan)
            if infinite.any():
                self._update_text(pd.Series(values[infinite]).map(repr))
        else:
            self._update_text(column)

    def _update_text(self, column: pd.Series[Any]) -> None:
        # Classify the distinct values, not the rows: a categorical column has few.
        present = column.dropna()
        if present.dtype == object:
            present = present.map(_as_text)
        counts = present.value_counts(sort=False)
        kept: dict[str, int] = {}
        numbers: list[float] = []
        repeats: list[int] = []
        for key, count in zip(counts.index.astype(str).tolist(), counts.tolist(), strict=True):
            if count == 0 or not key.strip():
                continue  # an unused category; an empty field is missing, as in a CSV
            kept[key] = kept.get(key, 0) + count
            if _INTEGRAL.fullmatch(key):
                self.integral += count
            elif _FRACTIONAL.fullmatch(key):
                self.fractional += count
            else:
                self.string += count
                continue
            numbers.append(float(key.replace(" ", "")))
            repeats.append(count)
        self.num_missing += len(column) - sum(kept.values())
        if numbers:
            values = np.repeat(np.array(numbers, dtype=np.float64), repeats)
            self._numeric().update(values[np.isfinite(values)])
        if kept:
            self._strings().update(kept)

    def merge_into(self, target: FeatureProfile) -> None:
        """Add this profile's counts and summaries to ``target`` (this one is left as is)."""
        target.num_missing += self.num_missing
        target.integral += self.integral
        target.fractional += self.fractional
        target.string += self.string
        if self.numeric is not None:
            target._numeric().merge(self.numeric)
        if self.strings is not None:
            target._strings().merge(self.strings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_missing": self.num_missing,
            "integral": self.integral,
            "fractional": self.fractional,
            "string": self.string,
            "numeric": None if self.numeric is None else self.numeric.to_dict(),
            "strings": None if self.strings is None else self.strings.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], kll_k: int, string_cap: int) -> FeatureProfile:
        return cls(
            name=str(data["name"]),
            kll_k=kll_k,
            string_cap=string_cap,
            num_missing=int(data["num_missing"]),
            integral=int(data["integral"]),
            fractional=int(data["fractional"]),
            string=int(data["string"]),
            numeric=None if data["numeric"] is None else NumericSummary.from_dict(data["numeric"]),
            strings=None if data["strings"] is None else StringSummary.from_dict(data["strings"]),
        )


def _as_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


@dataclass
class DatasetProfile:
    """Profiles of every column of a dataset, in column order, and its row count."""

    kll_k: int = DEFAULT_KLL_K
    string_cap: int = DEFAULT_STRING_CAP
    item_count: int = 0
    features: dict[str, FeatureProfile] = field(default_factory=dict)

    def __post_init__(self) -> None:
        new_kll(self.kll_k)  # refuses a k too small, before any data is read
        if self.string_cap < 1:
            raise MonitorError(f"string_cap must be at least 1, got {self.string_cap}")

    def update(self, batch: pd.DataFrame | pa.RecordBatch | pa.Table) -> None:
        """Add a batch of rows. A column missing from the batch counts as missing there."""
        frame = batch.to_pandas() if isinstance(batch, pa.RecordBatch | pa.Table) else batch
        if not isinstance(frame, pd.DataFrame):
            raise MonitorError(f"cannot profile a {type(batch).__name__}: pass a DataFrame")
        if frame.columns.has_duplicates:
            dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise MonitorError(f"duplicate column names: {dupes}")
        for name in frame.columns:
            key = str(name)
            if key not in self.features:
                self.features[key] = self._new_feature(key, missing=self.item_count)
            self.features[key].update(frame[name])
        seen = {str(name) for name in frame.columns}
        for key, feature in self.features.items():
            if key not in seen:
                feature.num_missing += len(frame)
        self.item_count += len(frame)

    def _new_feature(self, name: str, missing: int = 0) -> FeatureProfile:
        return FeatureProfile(name, self.kll_k, self.string_cap, num_missing=missing)

    def merge(self, other: DatasetProfile) -> DatasetProfile:
        """A new profile of both datasets' rows (neither input changes)."""
        return merge_profiles([self, other])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kll_k": self.kll_k,
            "string_cap": self.string_cap,
            "item_count": self.item_count,
            "features": [feature.to_dict() for feature in self.features.values()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def to_bytes(self) -> bytes:
        return self.to_json().encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise MonitorError(f"not a pier profile (expected format {FORMAT!r}, got {found!r})")
        try:
            profile = cls(int(data["kll_k"]), int(data["string_cap"]), int(data["item_count"]))
            for item in data["features"]:
                feature = FeatureProfile.from_dict(item, profile.kll_k, profile.string_cap)
                profile.features[feature.name] = feature
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MonitorError):
                raise
            raise MonitorError(f"malformed pier profile: {exc!r}") from exc
        return profile

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetProfile:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MonitorError(f"a profile must be JSON: {exc}") from exc
        return cls.from_dict(data)

    from_bytes = from_json


def merge_profiles(profiles: Iterable[DatasetProfile]) -> DatasetProfile:
    """One profile of all the profiles' rows, as if the datasets had been concatenated."""
    parts = list(profiles)
    if not parts:
        raise MonitorError("nothing to merge: no profiles given")
    settings = {(p.kll_k, p.string_cap) for p in parts}
    if len(settings) > 1:
        raise MonitorError(
            f"cannot merge profiles built with different (kll_k, string_cap): {sorted(settings)}"
        )
    merged = DatasetProfile(parts[0].kll_k, parts[0].string_cap)
    for part in parts:
        for name in part.features:
            if name not in merged.features:
                merged.features[name] = merged._new_feature(name, missing=merged.item_count)
        for name, feature in merged.features.items():
            if name in part.features:
                part.features[name].merge_into(feature)
            else:
                feature.num_missing += part.item_count
        merged.item_count += part.item_count
    return merged


def profile_frame(
    data: pd.DataFrame | pa.Table | Iterable[pd.DataFrame | pa.RecordBatch | pa.Table],
    *,
    kll_k: int = DEFAULT_KLL_K,
    string_cap: int = DEFAULT_STRING_CAP,
) -> DatasetProfile:
    """Profile a DataFrame, an Arrow table, or an iterator of batches of either."""
    profile = DatasetProfile(kll_k, string_cap)
    single = isinstance(data, pd.DataFrame | pa.Table | pa.RecordBatch)
    batches: Iterator[Any] | list[Any] = [data] if single else iter(data)
    for batch in batches:
        profile.update(batch)
    return profile
