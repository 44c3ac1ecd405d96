"""Baselines: statistics.json and constraints.json from a dataset, as SageMaker suggests them.

``suggest_baseline(data)`` does what SageMaker's ``DefaultModelMonitor.suggest_baseline``
does for a CSV or Parquet dataset (or a DataFrame, or a profile): per feature, its inferred
type, counts, exact moments, 10 KLL buckets and the sketch itself for numbers, value counts
for strings; and the constraints to check later windows against (completeness,
``is_non_negative``, the domain of low-cardinality strings, ``monitoring_config`` defaults).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pier.monitor.errors import MonitorError
from pier.monitor.stats.formats import (
    CategoricalBucket,
    CategoricalDistribution,
    CommonStatistics,
    Constraints,
    DatasetStatistics,
    FeatureConstraints,
    FeatureStatistics,
    KllBucket,
    KllDistribution,
    KllParameters,
    KllSketch,
    MonitoringConfig,
    NumConstraints,
    NumericalDistribution,
    NumericalStatistics,
    Statistics,
    StringConstraints,
    StringDistribution,
    StringStatistics,
    dump,
    load,
)
from pier.monitor.stats.profile import DatasetProfile, FeatureProfile, InferredType, profile_frame
from pier.monitor.stats.sketches import DEFAULT_KLL_K, KLL_C, WeightedSample, kll_levels
from pier.monitor.stats.summaries import DEFAULT_STRING_CAP

KLL_BUCKETS = 10  # SageMaker's statistics.json: 10 equal-width buckets between min and max
# Deequ's ColumnProfiler keeps histograms (and suggests an IsIn domain) up to 120 distinct values.
DOMAIN_LIMIT = 120
CATEGORICAL_BUCKET_LIMIT = 1000
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
_BATCH_ROWS = 200_000


@dataclass(frozen=True)
class Baseline:
    """A statistics.json and the constraints.json that goes with it."""

    statistics: Statistics
    constraints: Constraints

    def __post_init__(self) -> None:
        for feature in self.constraints.features:
            stats = self.statistics.feature(feature.name)
            if stats is None:
                raise MonitorError(
                    f"baseline mismatch: constraints.json has feature {feature.name!r}, "
                    "statistics.json does not (were they written by the same baseline job?)"
                )
            if stats.inferred_type != feature.inferred_type:
                raise MonitorError(
                    f"baseline mismatch: feature {feature.name!r} is {feature.inferred_type} in "
                    f"constraints.json but {stats.inferred_type} in statistics.json"
                )


def suggest_baseline(
    data: DatasetProfile | pd.DataFrame | pa.Table | str | Path,
    *,
    kll_k: int = DEFAULT_KLL_K,
    string_cap: int = DEFAULT_STRING_CAP,
    monitoring_config: MonitoringConfig | None = None,
    header: bool = True,
) -> Baseline:
    """Statistics and suggested constraints for a dataset (a path, a frame or a profile)."""
    if isinstance(data, DatasetProfile):
        profile = data
    elif isinstance(data, str | Path):
        profile = profile_path(data, kll_k=kll_k, string_cap=string_cap, header=header)
    else:
        profile = profile_frame(data, kll_k=kll_k, string_cap=string_cap)
    if profile.item_count == 0:
        raise MonitorError("the baseline dataset has no rows")
    if not profile.features:
        raise MonitorError("the baseline dataset has no columns")
    return Baseline(
        statistics_from_profile(profile),
        constraints_from_profile(profile, monitoring_config=monitoring_config),
    )


def profile_path(
    path: str | Path,
    *,
    kll_k: int = DEFAULT_KLL_K,
    string_cap: int = DEFAULT_STRING_CAP,
    header: bool = True,
) -> DatasetProfile:
    """Profile a CSV or Parquet file, or a directory of them, reading in batches."""
    return profile_frame(_read_batches(Path(path), header), kll_k=kll_k, string_cap=string_cap)


def _read_batches(path: Path, header: bool) -> Iterator[pd.DataFrame | pa.RecordBatch]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _format(p) is not None)
        if not files:
            raise MonitorError(f"{path}: no .csv or .parquet files in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise MonitorError(f"{path}: no such file or directory")
    for file in files:
        kind = _format(file)
        if kind == "parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(file).iter_batches(batch_size=_BATCH_ROWS)
        elif kind == "csv":
            # Nullable dtypes keep an integer column with gaps Integral, as SageMaker sees it.
            options: dict[str, Any] = {"header": 0} if header else {"header": None}
            with pd.read_csv(
                file, chunksize=_BATCH_ROWS, dtype_backend="numpy_nullable", **options
            ) as chunks:
                for chunk in chunks:
                    if not header:  # Spark's names for headerless CSV, as SageMaker's reports
                        chunk.columns = [f"_c{i}" for i in range(len(chunk.columns))]
                    yield chunk
        else:
            raise MonitorError(f"{file}: expected a .csv or .parquet file")


def _format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    return None


def statistics_from_profile(
    profile: DatasetProfile, *, categorical_limit: int = CATEGORICAL_BUCKET_LIMIT
) -> Statistics:
    """statistics.json for a profile (a baseline's, or a monitoring window's)."""
    return Statistics(
        version=0,
        dataset=DatasetStatistics(item_count=profile.item_count),
        features=[_feature_statistics(f, categorical_limit) for f in profile.features.values()],
    )


def _feature_statistics(feature: FeatureProfile, categorical_limit: int) -> FeatureStatistics:
    kind = feature.inferred_type
    common = CommonStatistics(num_present=feature.num_present, num_missing=feature.num_missing)
    numeric = feature.numeric
    if kind in (InferredType.INTEGRAL, InferredType.FRACTIONAL) and numeric and numeric.count:
        retained = kll_levels(numeric.sketch)
        sample = WeightedSample.from_levels(retained)
        levels = [np.sort(level).tolist() for level in retained]
        return FeatureStatistics(
            name=feature.name,
            inferred_type=kind,
            numerical_statistics=NumericalStatistics(
                common=common,
                mean=numeric.mean,
                sum=numeric.total,
                std_dev=numeric.std_dev,
                min=numeric.minimum,
                max=numeric.maximum,
                distribution=NumericalDistribution(
                    kll=KllDistribution(
                        buckets=[
                            KllBucket(lower_bound=lo, upper_bound=hi, count=n)
                            for lo, hi, n in sample.buckets(
                                numeric.minimum, numeric.maximum, KLL_BUCKETS
                            )
                        ],
                        sketch=KllSketch(
                            parameters=KllParameters(c=KLL_C, k=float(numeric.kll_k)),
                            data=levels,
                        ),
                    )
                ),
            ),
        )
    strings = feature.strings
    top = strings.top(categorical_limit) if strings is not None else []
    return FeatureStatistics(
        name=feature.name,
        inferred_type=kind,
        string_statistics=StringStatistics(
            common=common,
            distinct_count=strings.distinct_count() if strings is not None else 0,
            distribution=StringDistribution(
                categorical=CategoricalDistribution(
                    buckets=[CategoricalBucket(value=v, count=n) for v, n in top]
                )
            ),
        ),
    )


def constraints_from_profile(
    profile: DatasetProfile,
    *,
    domain_limit: int = DOMAIN_LIMIT,
    monitoring_config: MonitoringConfig | None = None,
) -> Constraints:
    """constraints.json as SageMaker suggests it from a baseline profile."""
    features = []
    for feature in profile.features.values():
        kind = feature.inferred_type
        item = FeatureConstraints(
            name=feature.name, inferred_type=kind, completeness=feature.completeness
        )
        if kind in (InferredType.INTEGRAL, InferredType.FRACTIONAL) and feature.numeric:
            item.num_constraints = NumConstraints(
                is_non_negative=bool(feature.numeric.minimum >= 0)
            )
        strings = feature.strings
        if (
            kind == InferredType.STRING
            and strings is not None
            and strings.exact
            and strings.distinct_count() <= domain_limit
        ):
            domains = sorted(v for v, _ in strings.top())
            item.string_constraints = StringConstraints(domains=domains)
        features.append(item)
    return Constraints(
        version=0,
        features=features,
        monitoring_config=monitoring_config or MonitoringConfig(),
    )


def write_baseline(baseline: Baseline, directory: str | Path) -> tuple[Path, Path]:
    """Write statistics.json and constraints.json into ``directory``."""
    folder = Path(directory)
    return (
        dump(baseline.statistics, folder / STATISTICS_FILE),
        dump(baseline.constraints, folder / CONSTRAINTS_FILE),
    )


def read_statistics(path: str | Path) -> Statistics:
    statistics = load(Statistics, path)
    for feature in statistics.features:
        if feature.numerical_statistics is None and feature.string_statistics is None:
            raise MonitorError(
                f"{path}: feature {feature.name!r} has neither numerical_statistics "
                "nor string_statistics"
            )
        numerical = feature.numerical_statistics
        if numerical is not None and not np.isfinite([numerical.mean, numerical.std_dev]).all():
            raise MonitorError(f"{path}: feature {feature.name!r} has a non-finite mean or std_dev")
    return statistics


def read_constraints(path: str | Path) -> Constraints:
    return load(Constraints, path)


def read_baseline(
    directory: str | Path | None = None,
    *,
    statistics: str | Path | None = None,
    constraints: str | Path | None = None,
) -> Baseline:
    """Read a baseline from a directory holding both files, or from the two paths."""
    if directory is not None:
        statistics = statistics or Path(directory) / STATISTICS_FILE
        constraints = constraints or Path(directory) / CONSTRAINTS_FILE
    if statistics is None or constraints is None:
        raise MonitorError("read_baseline needs a directory, or both statistics and constraints")
    return Baseline(read_statistics(statistics), read_constraints(constraints))
