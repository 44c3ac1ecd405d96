"""constraint_violations.json: a window's profile checked against a baseline's constraints.

SageMaker's six check types, each violation naming the feature, what was measured and the
threshold it failed:

- ``missing_column_check`` / ``extra_column_check``: a constraints feature absent from the
  window, or a window column the constraints do not know.
- ``data_type_check``: the share of a feature's values that fit its baseline type is below
  ``datatype_check_threshold`` (1.0 by default: one wrong value is a violation). Integral
  values fit Fractional; every value fits String.
- ``completeness_check``: the share of rows with a value is below the feature's
  ``completeness`` constraint (the baseline's own completeness unless edited).
- ``categorical_values_check``: the share of a string feature's values inside its
  ``string_constraints.domains`` is below ``domain_content_threshold`` (1.0 by default).
- ``baseline_drift_check``: :func:`pier.monitor.stats.drift.compare` says the feature drifted.
"""

from __future__ import annotations

from pathlib import Path

from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import Baseline
from pier.monitor.stats.drift import DriftReport, DriftThresholds, FeatureDrift, compare
from pier.monitor.stats.formats import (
    CheckType,
    ConstraintViolations,
    FeatureConstraints,
    MonitoringConfig,
    Violation,
    dump,
    load,
)
from pier.monitor.stats.profile import DatasetProfile, FeatureProfile, InferredType

VIOLATIONS_FILE = "constraint_violations.json"
_SHOWN_VALUES = 5


def check(
    baseline: Baseline,
    window: DatasetProfile,
    *,
    thresholds: DriftThresholds | None = None,
    drift: DriftReport | None = None,
) -> ConstraintViolations:
    """Every violation of the baseline's constraints by the window: columns, features, drift."""
    if window.item_count == 0:
        raise MonitorError("the window has no rows: nothing to check (was any data captured?)")
    constraints = baseline.constraints
    config = constraints.monitoring_config
    expected = [f.name for f in constraints.features]
    violations: list[Violation] = []
    for name in expected:
        if name not in window.features:
            violations.append(
                _violation(
                    name,
                    CheckType.MISSING_COLUMN,
                    f"Column {name!r} of the baseline constraints is missing from the current "
                    f"dataset (current dataset: {len(window.features)} columns, baseline "
                    f"constraints: {len(expected)} columns).",
                )
            )
    for name in window.features:
        if constraints.feature(name) is None:
            violations.append(
                _violation(
                    name,
                    CheckType.EXTRA_COLUMN,
                    f"Column {name!r} of the current dataset is not in the baseline constraints "
                    f"(current dataset: {len(window.features)} columns, baseline constraints: "
                    f"{len(expected)} columns).",
                )
            )
    for constraint in constraints.features:
        feature = window.features.get(constraint.name)
        feature_config = config.with_overrides(constraint.monitoring_config_overrides)
        if feature is None or feature_config.evaluate_constraints != "Enabled":
            continue
        violations.extend(_check_feature(constraint, feature, feature_config))
    report = drift if drift is not None else compare(baseline, window, thresholds)
    violations.extend(_drift_violation(result) for result in report.drifted)
    return ConstraintViolations(violations=violations)


def _violation(name: str, kind: CheckType, description: str) -> Violation:
    return Violation(feature_name=name, constraint_check_type=kind, description=description)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _check_feature(
    constraint: FeatureConstraints, feature: FeatureProfile, config: MonitoringConfig
) -> list[Violation]:
    found: list[Violation] = []
    name, rows = constraint.name, feature.num_present + feature.num_missing
    present = feature.num_present
    if present:
        expected = constraint.inferred_type
        matching = _matching(expected, feature)
        if matching is not None and matching / present < config.datatype_check_threshold:
            found.append(
                _violation(
                    name,
                    CheckType.DATA_TYPE,
                    f"Data type match requirement is not met for {name!r}: expected "
                    f"{expected} for at least {_pct(config.datatype_check_threshold)} of the "
                    f"values (datatype_check_threshold), observed {_pct(matching / present)} "
                    f"({present - matching} of {present} values are not {expected}; the "
                    f"current data is inferred as {feature.inferred_type}).",
                )
            )
    if rows and feature.completeness < constraint.completeness:
        found.append(
            _violation(
                name,
                CheckType.COMPLETENESS,
                f"Data completeness requirement is not met for {name!r}: expected at least "
                f"{_pct(constraint.completeness)} of rows with a value (completeness "
                f"constraint), observed {_pct(feature.completeness)} ({feature.num_missing} of "
                f"{rows} rows are missing).",
            )
        )
    domains = constraint.string_constraints.domains if constraint.string_constraints else None
    if domains is not None and feature.strings is not None and feature.strings.total:
        allowed = set(domains)
        total = feature.strings.total
        # Beyond the exact cap, counts are the frequent-items sketch's estimates.
        inside = min(total, sum(feature.strings.count_of(v) for v in allowed))
        unknown = [(v, c) for v, c in feature.strings.top() if v not in allowed]
        if inside / total < config.domain_content_threshold:
            shown = ", ".join(f"{v!r} ({c})" for v, c in unknown[:_SHOWN_VALUES])
            more = len(unknown) - _SHOWN_VALUES
            found.append(
                _violation(
                    name,
                    CheckType.CATEGORICAL_VALUES,
                    f"Categorical values requirement is not met for {name!r}: expected at "
                    f"least {_pct(config.domain_content_threshold)} of the values in the "
                    f"baseline domain of {len(allowed)} values (domain_content_threshold), "
                    f"observed {_pct(inside / total)}; values outside it: {shown}"
                    + (f" and {more} more" if more > 0 else "")
                    + ".",
                )
            )
    return found


def _matching(expected: InferredType, feature: FeatureProfile) -> int | None:
    """How many present values fit the baseline type (None: no type to check against)."""
    if expected == InferredType.INTEGRAL:
        return feature.integral
    if expected == InferredType.FRACTIONAL:
        return feature.integral + feature.fractional
    if expected == InferredType.STRING:
        return feature.num_present
    return None


def _drift_violation(result: FeatureDrift) -> Violation:
    name = result.name
    if result.method == "chi_squared":
        measured = (
            f"chi-squared p-value {result.value:.4g} (Benjamini–Hochberg adjusted where several "
            f"features were tested) is below the threshold {result.threshold:g} "
            "(categorical_comparison_threshold)"
        )
    elif result.method == "psi":
        measured = f"PSI {result.value:.4f} reaches the alarm threshold {result.threshold:g}"
    elif result.method == "wasserstein_normalized":
        measured = (
            f"normalized Wasserstein distance {result.value:.4f} reaches the threshold "
            f"{result.threshold:g}"
        )
    else:
        key = (
            "categorical_comparison_threshold"
            if result.kind == "categorical"
            else ("comparison_threshold")
        )
        method = "Robust" if result.method == "linf_robust" else "Simple"
        measured = (
            f"{result.kind} L-infinity distance ({method}) {result.value:.4f} exceeds the "
            f"threshold {result.threshold:g} ({key})"
        )
    return _violation(
        name,
        CheckType.BASELINE_DRIFT,
        f"Baseline drift distance for {name!r}: {measured}; baseline {result.n_baseline} "
        f"values, current {result.n_window} values.",
    )


def write_violations(violations: ConstraintViolations, directory: str | Path) -> Path:
    return dump(violations, Path(directory) / VIOLATIONS_FILE)


def read_violations(path: str | Path) -> ConstraintViolations:
    return load(ConstraintViolations, path)
