"""constraint_violations.json: each of SageMaker's check types, raised when it should be and
described with the feature, the measured value and the threshold; edge cases fail clearly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import Baseline, suggest_baseline
from pier.monitor.stats.drift import compare
from pier.monitor.stats.formats import CheckType, ConstraintViolations, MonitoringConfig, Statistics
from pier.monitor.stats.profile import profile_frame
from pier.monitor.stats.violations import check
from tests.monitor.data import SHARES, tabular

N = 10_000


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    return suggest_baseline(tabular(np.random.default_rng(100), N))


def window(seed: int = 101, **changes: object) -> pd.DataFrame:
    return tabular(np.random.default_rng(seed), N, **changes)  # type: ignore[arg-type]


def found(violations: ConstraintViolations) -> list[tuple[str, str]]:
    return [(v.feature_name, v.constraint_check_type.value) for v in violations.violations]


def only(violations: ConstraintViolations, kind: CheckType) -> str:
    matching = [v for v in violations.violations if v.constraint_check_type == kind]
    assert len(matching) == 1, found(violations)
    return matching[0].description


def test_an_unchanged_window_has_no_violations(baseline: Baseline) -> None:
    assert check(baseline, profile_frame(window())).violations == []


def test_new_category_is_a_categorical_values_violation(baseline: Baseline) -> None:
    frame = window()
    frame.loc[:299, "colour"] = "purple"
    violations = check(baseline, profile_frame(frame))
    assert found(violations) == [("colour", "categorical_values_check")]
    description = only(violations, CheckType.CATEGORICAL_VALUES)
    assert "'colour'" in description
    assert "observed 97.00%" in description
    assert "at least 100.00%" in description
    assert "domain_content_threshold" in description
    assert "'purple' (300)" in description


def test_domain_content_threshold_allows_a_share_of_unknown_values() -> None:
    config = MonitoringConfig(domain_content_threshold=0.95)
    lenient = suggest_baseline(window(100), monitoring_config=config)
    frame = window()
    frame.loc[:299, "colour"] = "purple"
    assert check(lenient, profile_frame(frame)).violations == []


def test_proportion_shift_is_drift(baseline: Baseline) -> None:
    frame = window(shares=np.array([0.2, 0.3, 0.3, 0.2]))
    violations = check(baseline, profile_frame(frame))
    assert found(violations) == [("colour", "baseline_drift_check")]
    description = only(violations, CheckType.BASELINE_DRIFT)
    assert "'colour'" in description
    assert "categorical L-infinity distance (Robust)" in description
    assert "threshold 0.1 (categorical_comparison_threshold)" in description
    distance = compare(baseline, profile_frame(frame)).feature("colour")
    assert distance is not None
    assert f"{distance.value:.4f}" in description
    assert distance.value == pytest.approx(SHARES[0] - 0.2 - 0.025, abs=0.02)


def test_numerical_drift_names_the_distance_and_threshold(baseline: Baseline) -> None:
    violations = check(baseline, profile_frame(window(shift=1.0)))
    assert found(violations) == [("x0", "baseline_drift_check")]
    description = only(violations, CheckType.BASELINE_DRIFT)
    assert "numerical L-infinity distance (Robust)" in description
    assert "threshold 0.1 (comparison_threshold)" in description
    assert "baseline 10000 values, current 10000 values" in description


def test_missing_and_extra_columns(baseline: Baseline) -> None:
    frame = window().drop(columns=["x2", "colour"])
    frame["new_feature"] = 1.0
    violations = check(baseline, profile_frame(frame))
    assert found(violations) == [
        ("x2", "missing_column_check"),
        ("colour", "missing_column_check"),
        ("new_feature", "extra_column_check"),
    ]
    assert "current dataset: 5 columns, baseline constraints: 6 columns" in (
        violations.violations[0].description
    )


def test_completeness_drop(baseline: Baseline) -> None:
    frame = window()
    frame.loc[: N // 10 - 1, "x1"] = np.nan
    violations = check(baseline, profile_frame(frame))
    assert found(violations) == [("x1", "completeness_check")]
    description = only(violations, CheckType.COMPLETENESS)
    assert "'x1'" in description
    assert "expected at least 100.00%" in description
    assert "observed 90.00%" in description
    assert "1000 of 10000 rows are missing" in description


def test_strings_in_a_numeric_column_are_a_data_type_violation(baseline: Baseline) -> None:
    frame = window()
    column = frame["x3"].astype(object)
    column[:50] = "error"
    frame["x3"] = column
    violations = check(baseline, profile_frame(frame))
    assert ("x3", "data_type_check") in found(violations)
    description = only(violations, CheckType.DATA_TYPE)
    assert "expected Fractional for at least 100.00%" in description
    assert "observed 99.50%" in description
    assert "50 of 10000 values are not Fractional" in description
    assert "inferred as String" in description


def test_integers_fit_a_fractional_baseline_but_not_the_reverse(baseline: Baseline) -> None:
    frame = window()
    frame["x0"] = np.round(frame["x0"] * 1000).astype(int) / 1000  # still floats
    frame["x1"] = frame["x1"].round().astype(int)  # integers in a Fractional column: fine
    frame["count"] = frame["count"] + 0.5  # fractions in an Integral column: not fine
    violations = check(baseline, profile_frame(frame))
    types = [v for v in violations.violations if v.constraint_check_type == CheckType.DATA_TYPE]
    assert [v.feature_name for v in types] == ["count"]


def test_disabled_evaluation_skips_the_feature_checks() -> None:
    config = MonitoringConfig(evaluate_constraints="Disabled")
    quiet = suggest_baseline(window(100), monitoring_config=config)
    frame = window()
    frame.loc[:99, "x1"] = np.nan
    assert check(quiet, profile_frame(frame)).violations == []


def test_empty_window_is_an_error(baseline: Baseline) -> None:
    with pytest.raises(MonitorError, match="the window has no rows"):
        check(baseline, profile_frame(window().iloc[:0]))


def test_all_missing_column(baseline: Baseline) -> None:
    frame = window()
    frame["x0"] = np.nan
    violations = check(baseline, profile_frame(frame))
    assert found(violations) == [("x0", "completeness_check")]
    report = compare(baseline, profile_frame(frame))
    assert [(s.name, s.reason) for s in report.skipped] == [
        ("x0", "no numeric values in the window")
    ]


def test_all_missing_column_in_the_baseline_is_unknown() -> None:
    frame = window(100)
    frame["empty"] = np.nan
    with_empty = suggest_baseline(frame)
    empty = with_empty.statistics.feature("empty")
    assert empty is not None
    assert empty.inferred_type == "Unknown"
    assert empty.string_statistics is not None
    assert empty.string_statistics.common.num_missing == N
    report = compare(with_empty, profile_frame(frame))
    assert [(s.name, s.reason) for s in report.skipped] == [("empty", "the baseline has no values")]
    assert check(with_empty, profile_frame(frame)).violations == []


def test_baseline_and_its_files_must_agree(baseline: Baseline) -> None:
    stats = Statistics.model_validate(baseline.statistics.model_dump())
    stats.features = [f for f in stats.features if f.name != "x1"]
    with pytest.raises(MonitorError, match=r"constraints\.json has feature 'x1'"):
        Baseline(stats, baseline.constraints)
    constraints = baseline.constraints.model_copy(deep=True)
    constraints.features[0].inferred_type = "String"  # type: ignore[assignment]
    with pytest.raises(MonitorError, match=r"'x0' is String in constraints\.json but Fractional"):
        Baseline(baseline.statistics, constraints)


def test_empty_baseline_is_an_error() -> None:
    with pytest.raises(MonitorError, match="no rows"):
        suggest_baseline(window().iloc[:0])
    with pytest.raises(MonitorError, match="no columns"):
        suggest_baseline(pd.DataFrame(index=range(3)))


def test_high_cardinality_strings_are_not_compared_as_categories() -> None:
    rng = np.random.default_rng(30)
    ids = pd.DataFrame({"id": [f"u{i}" for i in rng.integers(0, 50_000, 20_000)]})
    baseline = suggest_baseline(ids)
    assert baseline.constraints.features[0].string_constraints is None  # no domain
    report = compare(baseline, profile_frame(ids))
    assert report.features == ()
    assert "too many to compare as categories" in report.skipped[0].reason
    assert check(baseline, profile_frame(ids)).violations == []
