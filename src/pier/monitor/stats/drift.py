"""Drift between a baseline (statistics.json) and a window's profile, feature by feature.

Numerical features (both distributions from KLL sketches, so windows of any size cost the
same):

- **L∞** between the two CDFs, SageMaker's (Deequ's) distance. ``Robust`` subtracts the
  sampling noise of two samples of sizes n and m, ``max(0, D − 1.8·sqrt((n+m)/(n·m)))``
  (1.8 is the two-sample KS critical value at α ≈ 0.003); ``Simple`` does not. Threshold 0.1.
- **PSI** over 10 bins cut at the baseline's deciles; 0.1 warns, 0.25 alarms (common practice).
- **Normalized Wasserstein**: the Wasserstein-1 distance divided by the baseline's standard
  deviation (Evidently's default for more than 1000 rows; threshold 0.1). A constant baseline
  has no spread to divide by: the pooled standard deviation of both samples is used instead,
  so a constant that moves or starts to vary is drift and an unchanged constant is 0.

Categorical features: **L∞** between the category proportions (SageMaker's default, with the
same robust correction), or **chi-squared** (homogeneity of the two samples, scipy), whose
p-values are adjusted across features with Benjamini–Hochberg; drift when the adjusted p-value
is below ``categorical_comparison_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats as scipy_stats

from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import Baseline
from pier.monitor.stats.formats import FeatureStatistics, MonitoringConfig
from pier.monitor.stats.profile import DatasetProfile, FeatureProfile, InferredType
from pier.monitor.stats.sketches import WeightedSample

NumericalMetric = Literal["linf", "psi", "wasserstein"]
ROBUST_FACTOR = 1.8  # Deequ: 1.8·sqrt((n+m)/(n·m)), the KS critical value at α ≈ 0.003
PSI_FLOOR = 1e-4  # an empty bin counts as 0.01 % so that log(q/p) stays finite


@dataclass(frozen=True)
class DriftThresholds:
    """What counts as drift. Defaults and their sources:

    - ``comparison_threshold`` 0.1, ``comparison_method`` Robust,
      ``categorical_comparison_threshold`` 0.1, ``categorical_drift_method`` LInfinity:
      SageMaker Model Monitor's ``distribution_constraints`` defaults.
    - ``psi_warn`` 0.1, ``psi_alarm`` 0.25 over ``psi_bins`` 10: common practice (credit
      scoring; also Evidently's PSI threshold 0.1).
    - ``wasserstein_threshold`` 0.1: Evidently's default for numerical columns.
    - ``numerical_metric``: the distance that decides ``baseline_drift_check`` for numbers;
      ``linf`` (SageMaker's) by default, or ``psi`` (drift at the alarm level) or
      ``wasserstein``. All three are always computed and reported.
    """

    comparison_threshold: float = 0.1
    comparison_method: Literal["Simple", "Robust"] = "Robust"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: Literal["LInfinity", "ChiSquared"] = "LInfinity"
    numerical_metric: NumericalMetric = "linf"
    psi_warn: float = 0.1
    psi_alarm: float = 0.25
    psi_bins: int = 10
    wasserstein_threshold: float = 0.1

    @classmethod
    def from_config(cls, config: MonitoringConfig, **changes: object) -> DriftThresholds:
        """SageMaker's ``monitoring_config`` thresholds, then ``changes`` on top."""
        dist = config.distribution_constraints
        base = cls(
            comparison_threshold=dist.comparison_threshold,
            comparison_method=dist.comparison_method,
            categorical_comparison_threshold=dist.categorical_comparison_threshold,
            categorical_drift_method=dist.categorical_drift_method,
        )
        return replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison: the deciding distance, its threshold, and every metric."""

    name: str
    kind: Literal["numerical", "categorical"]
    method: str
    value: float
    threshold: float
    drifted: bool
    n_baseline: int
    n_window: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    psi_warning: bool = False  # PSI at or past ``psi_warn``: worth a look, not yet an alarm


@dataclass(frozen=True)
class SkippedFeature:
    name: str
    reason: str


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    skipped: tuple[SkippedFeature, ...] = ()

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    def feature(self, name: str) -> FeatureDrift | None:
        return next((f for f in self.features if f.name == name), None)


# --- distances between weighted samples ------------------------------------------------------


def _require(sample: WeightedSample, what: str) -> None:
    if not len(sample):
        raise MonitorError(f"cannot compare distributions: the {what} has no values")


def linf_distance(a: WeightedSample, b: WeightedSample) -> float:
    """The largest gap between the two CDFs (the two-sample Kolmogorov–Smirnov statistic)."""
    _require(a, "first sample")
    _require(b, "second sample")
    points = np.union1d(a.values, b.values)
    return float(np.max(np.abs(a.cdf(points) - b.cdf(points))))


def robust_linf(distance: float, n: int, m: int, factor: float = ROBUST_FACTOR) -> float:
    """SageMaker's Robust L∞: the distance less the noise expected from samples of n and m."""
    if n <= 0 or m <= 0:
        raise MonitorError(f"sample sizes must be positive, got n={n}, m={m}")
    return max(0.0, distance - factor * math.sqrt((n + m) / (n * m)))


def wasserstein_distance(a: WeightedSample, b: WeightedSample) -> float:
    """Wasserstein-1 (earth mover's) distance: the area between the two CDFs."""
    _require(a, "first sample")
    _require(b, "second sample")
    points = np.union1d(a.values, b.values)
    gaps = np.abs(a.cdf(points) - b.cdf(points))[:-1]
    return float(np.sum(gaps * np.diff(points)))


def psi(reference: WeightedSample, current: WeightedSample, bins: int = 10) -> float:
    """Population stability index over bins cut at the reference's quantiles."""
    _require(reference, "reference")
    _require(current, "current sample")
    edges = np.unique(reference.quantiles(np.arange(1, bins) / bins))
    ref = np.maximum(np.diff(np.concatenate([[0.0], reference.cdf(edges), [1.0]])), PSI_FLOOR)
    cur = np.maximum(np.diff(np.concatenate([[0.0], current.cdf(edges), [1.0]])), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def pooled_std(n: int, mean_a: float, std_a: float, m: int, mean_b: float, std_b: float) -> float:
    """The population standard deviation of two samples taken together."""
    total = n + m
    mean = (n * mean_a + m * mean_b) / total
    var = (n * (std_a**2 + (mean_a - mean) ** 2) + m * (std_b**2 + (mean_b - mean) ** 2)) / total
    return math.sqrt(max(var, 0.0))


def categorical_linf(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """The largest difference between a category's share in the two samples."""
    n, m = sum(reference.values()), sum(current.values())
    if n <= 0 or m <= 0:
        raise MonitorError("cannot compare categories: a sample has no values")
    keys = set(reference) | set(current)
    return max(abs(reference.get(k, 0) / n - current.get(k, 0) / m) for k in keys)


def chi_squared(
    reference: Mapping[str, float], current: Mapping[str, float]
) -> tuple[float, float]:
    """Chi-squared test that both samples come from one categorical distribution."""
    keys = sorted(
        k for k in set(reference) | set(current) if reference.get(k, 0) + current.get(k, 0)
    )
    if sum(reference.values()) <= 0 or sum(current.values()) <= 0:
        raise MonitorError("cannot compare categories: a sample has no values")
    if len(keys) < 2:
        return 0.0, 1.0
    table = np.array([[reference.get(k, 0) for k in keys], [current.get(k, 0) for k in keys]])
    result = scipy_stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


# --- comparing a window with a baseline ------------------------------------------------------


def compare(
    baseline: Baseline, window: DatasetProfile, thresholds: DriftThresholds | None = None
) -> DriftReport:
    """Compare every feature of the baseline's constraints with the window's profile.

    Thresholds come from the baseline's ``monitoring_config`` (and each feature's
    ``monitoringConfigOverrides``) unless ``thresholds`` is given, which then applies to all.
    """
    if window.item_count == 0:
        raise MonitorError("the window has no rows: nothing to compare (was any data captured?)")
    results: list[FeatureDrift] = []
    skipped: list[SkippedFeature] = []
    config = baseline.constraints.monitoring_config
    for constraint in baseline.constraints.features:
        feature_config = config.with_overrides(constraint.monitoring_config_overrides)
        if feature_config.distribution_constraints.perform_comparison != "Enabled":
            skipped.append(SkippedFeature(constraint.name, "comparison disabled"))
            continue
        limits = thresholds or DriftThresholds.from_config(feature_config)
        stats = baseline.statistics.feature(constraint.name)
        current = window.features.get(constraint.name)
        if stats is None or current is None:  # Baseline has checked that stats exist
            skipped.append(SkippedFeature(constraint.name, "not in the window"))
            continue
        try:
            if stats.numerical_statistics is not None:
                results.append(_numerical(stats, current, limits))
            elif stats.inferred_type == InferredType.STRING:
                results.append(_categorical(stats, current, limits))
            else:
                skipped.append(SkippedFeature(constraint.name, "the baseline has no values"))
        except _Skip as skip:
            skipped.append(SkippedFeature(constraint.name, str(skip)))
    return DriftReport(tuple(_adjust_p_values(results)), tuple(skipped))


class _Skip(Exception):
    pass


def _numerical(
    stats: FeatureStatistics, current: FeatureProfile, t: DriftThresholds
) -> FeatureDrift:
    numerical = stats.numerical_statistics
    if numerical is None:
        raise _Skip("the baseline has no numerical statistics")
    reference = WeightedSample.from_levels(numerical.distribution.kll.sketch.data)
    if not len(reference):
        raise _Skip("the baseline's KLL sketch is empty")
    summary = current.numeric
    if summary is None or summary.count == 0:
        raise _Skip("no numeric values in the window")
    window = summary.sample()
    n, m = numerical.common.num_present or int(reference.total), summary.count
    linf = linf_distance(reference, window)
    robust = robust_linf(linf, n, m)
    wasserstein = wasserstein_distance(reference, window)
    scale = numerical.std_dev
    if not scale > 0:
        scale = pooled_std(n, numerical.mean, 0.0, m, summary.mean, summary.std_dev)
    normalized = wasserstein / scale if scale > 0 else 0.0
    index = psi(reference, window, t.psi_bins)
    metrics = {
        "linf": linf,
        "linf_robust": robust,
        "psi": index,
        "wasserstein": wasserstein,
        "wasserstein_normalized": normalized,
    }
    if t.numerical_metric == "psi":
        method, value, threshold, drifted = "psi", index, t.psi_alarm, index >= t.psi_alarm
    elif t.numerical_metric == "wasserstein":
        threshold = t.wasserstein_threshold
        method, value, drifted = "wasserstein_normalized", normalized, normalized >= threshold
    else:
        value = robust if t.comparison_method == "Robust" else linf
        method = f"linf_{t.comparison_method.lower()}"
        threshold, drifted = t.comparison_threshold, value > t.comparison_threshold
    return FeatureDrift(
        stats.name,
        "numerical",
        method,
        value,
        threshold,
        drifted,
        n,
        m,
        metrics,
        psi_warning=index >= t.psi_warn,
    )


def _categorical(
    stats: FeatureStatistics, current: FeatureProfile, t: DriftThresholds
) -> FeatureDrift:
    strings = stats.string_statistics
    if strings is None:
        raise _Skip("the baseline has no string statistics")
    buckets = strings.distribution.categorical.buckets
    reference = {b.value: float(b.count) for b in buckets}
    if not reference or sum(reference.values()) <= 0:
        raise _Skip("the baseline lists no categories")
    if strings.distinct_count > len(buckets):
        raise _Skip(
            f"the baseline has {strings.distinct_count:g} distinct values and lists "
            f"{len(buckets)}: too many to compare as categories"
        )
    if current.strings is None or current.strings.total == 0:
        raise _Skip("no text values in the window")
    if not current.strings.exact:
        raise _Skip(
            f"more than {current.strings.cap} distinct values in the window: "
            "too many to compare as categories"
        )
    window = {v: float(c) for v, c in current.strings.top()}
    n, m = int(sum(reference.values())), int(sum(window.values()))
    linf = categorical_linf(reference, window)
    robust = robust_linf(linf, n, m)
    metrics = {"linf": linf, "linf_robust": robust}
    if t.categorical_drift_method == "ChiSquared":
        statistic, p_value = chi_squared(reference, window)
        metrics |= {"chi_squared": statistic, "p_value": p_value}
        threshold = t.categorical_comparison_threshold
        return FeatureDrift(
            stats.name,
            "categorical",
            "chi_squared",
            p_value,
            threshold,
            p_value < threshold,
            n,
            m,
            metrics,
        )
    value = robust if t.comparison_method == "Robust" else linf
    method = f"linf_{t.comparison_method.lower()}"
    threshold = t.categorical_comparison_threshold
    return FeatureDrift(
        stats.name, "categorical", method, value, threshold, value > threshold, n, m, metrics
    )


def _adjust_p_values(results: list[FeatureDrift]) -> list[FeatureDrift]:
    """Benjamini–Hochberg across the chi-squared features: many tests, one false-alarm rate."""
    tested = [i for i, r in enumerate(results) if r.method == "chi_squared"]
    if len(tested) < 2:
        return results
    adjusted = scipy_stats.false_discovery_control([results[i].value for i in tested])
    out = list(results)
    for i, p in zip(tested, adjusted, strict=True):
        r = results[i]
        metrics = {**r.metrics, "p_value_adjusted": float(p)}
        out[i] = replace(r, value=float(p), drifted=bool(p < r.threshold), metrics=metrics)
    return out
