"""Drift: the distances are the textbook ones, and the defaults are statistically honest —
a 0.5σ shift is caught at n = 10,000, an unchanged distribution is left alone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import suggest_baseline
from pier.monitor.stats.drift import (
    DriftThresholds,
    categorical_linf,
    chi_squared,
    compare,
    linf_distance,
    psi,
    robust_linf,
    wasserstein_distance,
)
from pier.monitor.stats.formats import MonitoringConfig
from pier.monitor.stats.profile import profile_frame
from pier.monitor.stats.sketches import WeightedSample
from pier.monitor.stats.violations import check
from tests.monitor.data import tabular

N = 10_000


def test_distances_match_scipy_on_exact_samples() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(3000), rng.standard_normal(2000) * 1.3 + 0.2
    wa, wb = WeightedSample.from_values(a), WeightedSample.from_values(b)
    assert linf_distance(wa, wb) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert wasserstein_distance(wa, wb) == pytest.approx(stats.wasserstein_distance(a, b))
    assert robust_linf(0.2, 10_000, 10_000) == pytest.approx(0.2 - 1.8 * math.sqrt(2e-4))
    assert robust_linf(0.01, 10_000, 10_000) == 0.0


def test_psi_of_known_bins() -> None:
    reference = WeightedSample.from_values(np.arange(1000.0))
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    # Everything in the top decile: 0.9 moves to the last bin, the other nine hold nothing.
    top = WeightedSample.from_values(np.full(100, 999.0))
    expected = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1 - 0.1) * math.log(1 / 0.1)
    assert psi(reference, top) == pytest.approx(expected)


def test_categorical_distances() -> None:
    assert categorical_linf({"a": 50, "b": 50}, {"a": 30, "b": 70}) == pytest.approx(0.2)
    assert categorical_linf({"a": 10}, {"a": 5, "new": 5}) == pytest.approx(0.5)
    statistic, p = chi_squared({"a": 500, "b": 500}, {"a": 450, "b": 550})
    expected = stats.chi2_contingency([[500, 500], [450, 550]], correction=False)
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert chi_squared({"a": 5}, {"a": 9}) == (0.0, 1.0)


def test_detects_a_half_sigma_shift_at_ten_thousand_rows() -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        baseline = suggest_baseline(tabular(rng, N))
        report = compare(baseline, profile_frame(tabular(rng, N, shift=0.5)))
        assert [f.name for f in report.drifted] == ["x0"], seed
        shifted = report.feature("x0")
        assert shifted is not None
        # L∞ of N(0,1) vs N(0.5,1) is 2Φ(0.25) − 1 ≈ 0.197, less 0.025 of noise.
        assert shifted.value == pytest.approx(0.197 - 1.8 * math.sqrt(2 / N), abs=0.03)
        assert shifted.metrics["psi"] >= 0.1  # PSI of a 0.5σ shift is about 0.25
        assert shifted.psi_warning
        assert shifted.metrics["wasserstein_normalized"] == pytest.approx(0.5, abs=0.05)


def test_quiet_on_an_unchanged_distribution_in_99_percent_of_200_seeds() -> None:
    alarms = {"linf": 0, "psi": 0, "wasserstein": 0}
    for seed in range(200):
        rng = np.random.default_rng(10_000 + seed)
        # Four features: two normal, a Poisson count, a colour.
        baseline = suggest_baseline(tabular(rng, N, numeric=2))
        window = profile_frame(tabular(rng, N, numeric=2))
        report = compare(baseline, window)
        alarms["linf"] += bool(report.drifted or check(baseline, window, drift=report).violations)
        # The other metrics, at their own thresholds (PSI's alarm, Evidently's 0.1).
        alarms["psi"] += any(
            f.metrics["psi"] >= 0.25 for f in report.features if f.kind == "numerical"
        )
        alarms["wasserstein"] += any(
            f.metrics["wasserstein_normalized"] >= 0.1
            for f in report.features
            if f.kind == "numerical"
        )
    assert all(count <= 2 for count in alarms.values()), alarms


def test_simple_method_has_no_noise_correction() -> None:
    rng = np.random.default_rng(3)
    baseline = suggest_baseline(tabular(rng, 2000))
    window = profile_frame(tabular(rng, 2000))
    simple = compare(baseline, window, DriftThresholds(comparison_method="Simple"))
    robust = compare(baseline, window)
    for s, r in zip(simple.features, robust.features, strict=True):
        assert s.value == s.metrics["linf"] >= r.value == r.metrics["linf_robust"]
        assert s.method in ("linf_simple",)
        assert r.method == "linf_robust"


def test_numerical_metric_can_be_psi_or_wasserstein() -> None:
    rng = np.random.default_rng(4)
    baseline = suggest_baseline(tabular(rng, N))
    window = profile_frame(tabular(rng, N, shift=0.3))
    by_psi = compare(baseline, window, DriftThresholds(numerical_metric="psi"))
    x0 = by_psi.feature("x0")
    assert x0 is not None
    assert (x0.method, x0.threshold) == ("psi", 0.25)
    assert not x0.drifted  # PSI of a 0.3σ shift is ≈ 0.09: under the alarm
    by_wasserstein = compare(baseline, window, DriftThresholds(numerical_metric="wasserstein"))
    assert [f.name for f in by_wasserstein.drifted] == ["x0"]


def test_thresholds_come_from_the_constraints() -> None:
    rng = np.random.default_rng(5)
    config = MonitoringConfig.model_validate(
        {"distribution_constraints": {"comparison_threshold": 0.5}}
    )
    frame = tabular(rng, N)
    baseline = suggest_baseline(frame, monitoring_config=config)
    window = profile_frame(tabular(rng, N, shift=0.5))
    assert compare(baseline, window).drifted == []
    x0 = baseline.constraints.feature("x0")
    assert x0 is not None
    x0.monitoring_config_overrides = {"distribution_constraints": {"comparison_threshold": 0.05}}
    assert [f.name for f in compare(baseline, window).drifted] == ["x0"]
    x0.monitoring_config_overrides = {
        "distribution_constraints": {"perform_comparison": "Disabled"}
    }
    report = compare(baseline, window)
    assert [(s.name, s.reason) for s in report.skipped] == [("x0", "comparison disabled")]


def test_categorical_shift_by_linf_and_chi_squared() -> None:
    rng = np.random.default_rng(6)
    baseline = suggest_baseline(tabular(rng, N))
    shifted = profile_frame(tabular(rng, N, shares=np.array([0.25, 0.3, 0.3, 0.15])))
    colour = compare(baseline, shifted).feature("colour")
    assert colour is not None
    assert colour.drifted
    assert colour.metrics["linf"] == pytest.approx(0.15, abs=0.02)
    chi = DriftThresholds(categorical_drift_method="ChiSquared")
    tested = compare(baseline, shifted, chi).feature("colour")
    assert tested is not None
    assert tested.method == "chi_squared"
    assert tested.drifted
    assert tested.value < 1e-10
    same = compare(baseline, profile_frame(tabular(rng, N)), chi).feature("colour")
    assert same is not None
    assert not same.drifted


def test_chi_squared_p_values_are_adjusted_across_features() -> None:
    rng = np.random.default_rng(7)
    frame = tabular(rng, 2000)
    frame["other"] = np.array(["p", "q"])[rng.integers(0, 2, 2000)]
    baseline = suggest_baseline(frame)
    window = tabular(rng, 2000)
    window["other"] = np.array(["p", "q"])[rng.integers(0, 2, 2000)]
    report = compare(
        baseline, profile_frame(window), DriftThresholds(categorical_drift_method="ChiSquared")
    )
    for name in ("colour", "other"):
        result = report.feature(name)
        assert result is not None
        assert result.value == result.metrics["p_value_adjusted"] >= result.metrics["p_value"]


def test_a_constant_column_has_a_defined_normalized_wasserstein() -> None:
    baseline = suggest_baseline(pd.DataFrame({"c": np.full(N, 5.0)}))
    same = compare(baseline, profile_frame(pd.DataFrame({"c": np.full(N, 5.0)}))).features[0]
    assert same.metrics["wasserstein_normalized"] == 0.0
    assert not same.drifted
    moved = compare(baseline, profile_frame(pd.DataFrame({"c": np.full(N, 6.0)}))).features[0]
    # Pooled std of the two constants is 0.5: W = 1 → 2.0.
    assert moved.metrics["wasserstein_normalized"] == pytest.approx(2.0)
    assert moved.drifted
    values = np.full(N, 5.0)
    values[:100] = 6.0
    some = compare(
        baseline,
        profile_frame(pd.DataFrame({"c": values})),
        DriftThresholds(numerical_metric="wasserstein"),
    )
    result = some.features[0]
    assert math.isfinite(result.value)
    assert result.value > 0.1
    assert result.drifted


def test_empty_inputs_are_refused_with_clear_errors() -> None:
    baseline = suggest_baseline(tabular(np.random.default_rng(8), 500))
    with pytest.raises(MonitorError, match="the window has no rows"):
        compare(baseline, profile_frame(tabular(np.random.default_rng(9), 0)))
    empty = WeightedSample.from_values(np.empty(0))
    with pytest.raises(MonitorError, match="has no values"):
        linf_distance(empty, WeightedSample.from_values(np.ones(3)))
    with pytest.raises(MonitorError, match="has no values"):
        categorical_linf({}, {"a": 1})
    with pytest.raises(MonitorError, match="sample sizes"):
        robust_linf(0.5, 0, 10)
