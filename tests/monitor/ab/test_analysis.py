"""An endpoint's experiment from per-minute data: which metric is compared how, on which side
better lies, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pier.monitor.ab.analysis import Minute, analyse, quality_minutes
from pier.monitor.errors import MonitorError
from pier.monitor.quality.quality import BucketQuality, Problem

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def minutes(n: int, calls: int, errors: int, latency_ms: list[float]) -> dict[datetime, Minute]:
    return {
        T0 + timedelta(minutes=i): Minute(calls, errors, calls, latency_ms[i] * 1000 * calls)
        for i in range(n)
    }


def test_a_variant_with_more_errors_and_slower_answers_is_worse_on_both() -> None:
    rng = np.random.default_rng(0)
    control = minutes(20, 100, 1, list(rng.normal(10, 0.5, 20)))
    slow = minutes(20, 100, 10, list(rng.normal(14, 0.5, 20)))
    report = analyse("e", ["a", "b"], {"a": control, "b": slow})
    verdicts = {c.metric: c.comparison.verdict.value for c in report.comparisons}
    assert verdicts == {"error_rate": "worse", "latency": "worse"}
    assert [v.error_rate for v in report.variants] == [0.01, 0.1]
    as_dict = report.to_dict()
    assert as_dict["Control"] == "a"
    assert {c["Metric"]: c["Verdict"] for c in as_dict["Comparisons"]} == verdicts
    # with b as control, a is better
    again = analyse("e", ["a", "b"], {"a": control, "b": slow}, control="b")
    assert {c.variant for c in again.comparisons} == {"a"}
    assert {c.comparison.verdict.value for c in again.comparisons} == {"better"}


def test_too_little_data_is_no_decision_and_infinite_ends_are_null_in_json() -> None:
    report = analyse("e", ["a", "b"], {"a": minutes(1, 5, 0, [1.0]), "b": minutes(1, 5, 5, [2.0])})
    assert {c.comparison.verdict.value for c in report.comparisons} == {"no decision yet"}
    assert report.to_dict()["Comparisons"][0]["Lower"] is None


def test_quality_minutes_accuracy_is_higher_better_and_compared() -> None:
    buckets = []
    for i in range(10):
        for variant, accuracy in (("a", 0.9), ("b", 0.6)):
            b = BucketQuality(variant, T0 + timedelta(minutes=i), T0 + timedelta(minutes=i + 1))
            b.count = 100
            b.metrics = {"accuracy": accuracy}
            buckets.append(b)
    name, data = quality_minutes(buckets, Problem.BINARY)
    assert name == "accuracy"
    report = analyse("e", ["a", "b"], {}, metrics=["quality"], quality=(name, data))
    [c] = report.comparisons
    assert not c.lower_is_better
    assert c.comparison.verdict.value == "worse"
    assert c.comparison.difference == pytest.approx(-0.3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"control": "z"}, "control 'z' is not a production variant of e: a, b"),
        ({"metrics": ["speed"]}, "unknown metric 'speed'"),
    ],
)
def test_refusals(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(MonitorError, match=message):
        analyse("e", ["a", "b"], {}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(MonitorError, match="no production variant"):
        analyse("e", [], {})
