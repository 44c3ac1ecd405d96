"""statistics.json, constraints.json and constraint_violations.json: SageMaker's keys and types,
exactly, and round trips through files (pier's own and SageMaker-written ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import (
    Baseline,
    read_baseline,
    read_constraints,
    read_statistics,
    suggest_baseline,
    write_baseline,
)
from pier.monitor.stats.formats import to_dict
from pier.monitor.stats.profile import profile_frame
from pier.monitor.stats.violations import check, read_violations, write_violations
from tests.monitor.data import tabular

NUMBER = (int, float)


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    frame = tabular(np.random.default_rng(7), 5000)
    frame.loc[::10, "x1"] = np.nan
    return suggest_baseline(frame)


def test_statistics_has_sagemakers_keys_and_types(baseline: Baseline) -> None:
    data = to_dict(baseline.statistics)
    assert set(data) == {"version", "dataset", "features"}
    assert data["version"] == 0
    assert data["dataset"] == {"item_count": 5000}
    kinds = {f["name"]: f["inferred_type"] for f in data["features"]}
    assert kinds == {
        "x0": "Fractional",
        "x1": "Fractional",
        "x2": "Fractional",
        "x3": "Fractional",
        "count": "Integral",
        "colour": "String",
    }
    for feature in data["features"]:
        if feature["inferred_type"] == "String":
            assert set(feature) == {"name", "inferred_type", "string_statistics"}
            stats = feature["string_statistics"]
            assert set(stats) == {"common", "distinct_count", "distribution"}
            assert stats["distinct_count"] == 4
            buckets = stats["distribution"]["categorical"]["buckets"]
            assert set(stats["distribution"]) == {"categorical"}
            assert all(set(b) == {"value", "count"} for b in buckets)
            assert {b["value"] for b in buckets} == {"red", "green", "blue", "white"}
            assert sum(b["count"] for b in buckets) == 5000
            continue
        assert set(feature) == {"name", "inferred_type", "numerical_statistics"}
        stats = feature["numerical_statistics"]
        assert set(stats) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
        assert set(stats["common"]) == {"num_present", "num_missing"}
        assert all(isinstance(stats["common"][k], int) for k in stats["common"])
        assert all(isinstance(stats[k], float) for k in ("mean", "sum", "std_dev", "min", "max"))
        kll = stats["distribution"]["kll"]
        assert set(stats["distribution"]) == {"kll"}
        assert set(kll) == {"buckets", "sketch"}
        assert len(kll["buckets"]) == 10
        for bucket in kll["buckets"]:
            assert set(bucket) == {"lower_bound", "upper_bound", "count"}
            assert all(isinstance(v, NUMBER) for v in bucket.values())
        assert kll["buckets"][0]["lower_bound"] == stats["min"]
        assert kll["buckets"][-1]["upper_bound"] == stats["max"]
        assert sum(b["count"] for b in kll["buckets"]) == stats["common"]["num_present"]
        assert set(kll["sketch"]) == {"parameters", "data"}
        assert set(kll["sketch"]["parameters"]) == {"c", "k"}
        assert kll["sketch"]["parameters"]["k"] == 2048
        data_levels = kll["sketch"]["data"]
        assert isinstance(data_levels, list)
        assert all(isinstance(x, float) for level in data_levels for x in level)
    x1 = next(f for f in data["features"] if f["name"] == "x1")["numerical_statistics"]
    assert x1["common"] == {"num_present": 4500, "num_missing": 500}


def test_numbers_are_exact_moments(baseline: Baseline) -> None:
    frame = tabular(np.random.default_rng(7), 5000)
    stats = baseline.statistics.feature("x0")
    assert stats is not None
    assert stats.numerical_statistics is not None
    numerical = stats.numerical_statistics
    assert numerical.mean == pytest.approx(frame["x0"].mean(), rel=1e-12)
    assert numerical.sum == pytest.approx(frame["x0"].sum(), rel=1e-12)
    assert numerical.std_dev == pytest.approx(frame["x0"].std(ddof=0), rel=1e-12)
    assert (numerical.min, numerical.max) == (frame["x0"].min(), frame["x0"].max())


def test_constraints_have_sagemakers_keys_and_defaults(baseline: Baseline) -> None:
    data = to_dict(baseline.constraints)
    assert set(data) == {"version", "features", "monitoring_config"}
    assert data["monitoring_config"] == {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": "LInfinity",
        },
    }
    by_name = {f["name"]: f for f in data["features"]}
    assert by_name["x0"] == {
        "name": "x0",
        "inferred_type": "Fractional",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": False},
    }
    assert by_name["x1"]["completeness"] == pytest.approx(0.9)
    assert by_name["count"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["colour"] == {
        "name": "colour",
        "inferred_type": "String",
        "completeness": 1.0,
        "string_constraints": {"domains": ["blue", "green", "red", "white"]},
    }


def test_baseline_round_trips_through_files(baseline: Baseline, tmp_path: Path) -> None:
    statistics, constraints = write_baseline(baseline, tmp_path)
    assert (statistics.name, constraints.name) == ("statistics.json", "constraints.json")
    again = read_baseline(tmp_path)
    assert to_dict(again.statistics) == to_dict(baseline.statistics)
    assert to_dict(again.constraints) == to_dict(baseline.constraints)
    assert json.loads(statistics.read_text()) == to_dict(baseline.statistics)


def test_violations_have_sagemakers_keys_and_round_trip(baseline: Baseline, tmp_path: Path) -> None:
    window = tabular(np.random.default_rng(8), 5000, shift=1.0).drop(columns=["x3"])
    window["extra"] = 1
    violations = check(baseline, profile_frame(window))
    path = write_violations(violations, tmp_path)
    assert path.name == "constraint_violations.json"
    data = json.loads(path.read_text())
    assert set(data) == {"violations"}
    assert data["violations"]
    for item in data["violations"]:
        assert set(item) == {"feature_name", "constraint_check_type", "description"}
        assert all(isinstance(v, str) for v in item.values())
    assert {v["constraint_check_type"] for v in data["violations"]} == {
        "missing_column_check",
        "extra_column_check",
        "baseline_drift_check",
    }
    assert to_dict(read_violations(path)) == data


# A baseline as SageMaker's container writes it: numbers as doubles, a two-level sketch,
# monitoringConfigOverrides, a key pier does not know.
SAGEMAKER_STATISTICS: dict[str, Any] = {
    "version": 0.0,
    "dataset": {"item_count": 6.0},
    "features": [
        {
            "name": "age",
            "inferred_type": "Integral",
            "numerical_statistics": {
                "common": {"num_present": 6.0, "num_missing": 0.0},
                "mean": 35.0,
                "sum": 210.0,
                "std_dev": 8.1649,
                "min": 25.0,
                "max": 45.0,
                "distribution": {
                    "kll": {
                        "buckets": [
                            {"lower_bound": 25.0, "upper_bound": 35.0, "count": 3.0},
                            {"lower_bound": 35.0, "upper_bound": 45.0, "count": 3.0},
                        ],
                        "sketch": {
                            "parameters": {"c": 0.64, "k": 2048.0},
                            "data": [[25.0, 45.0], [35.0, 30.0]],
                        },
                    }
                },
            },
        },
        {
            "name": "plan",
            "inferred_type": "String",
            "string_statistics": {
                "common": {"num_present": 6.0, "num_missing": 0.0},
                "distinct_count": 2.0,
                "distribution": {
                    "categorical": {
                        "buckets": [
                            {"value": "gold", "count": 2.0},
                            {"value": "basic", "count": 4.0},
                        ]
                    }
                },
                "custom": {"kept": True},
            },
        },
    ],
}
SAGEMAKER_CONSTRAINTS: dict[str, Any] = {
    "version": 0.0,
    "features": [
        {
            "name": "age",
            "inferred_type": "Integral",
            "completeness": 1.0,
            "num_constraints": {"is_non_negative": True},
            "monitoringConfigOverrides": {},
        },
        {
            "name": "plan",
            "inferred_type": "String",
            "completeness": 1.0,
            "string_constraints": {"domains": ["basic", "gold"]},
        },
    ],
    "monitoring_config": {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": 0.1,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": 0.1,
            "categorical_drift_method": "LInfinity",
        },
    },
}


def test_reads_a_sagemaker_baseline_and_keeps_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "statistics.json").write_text(json.dumps(SAGEMAKER_STATISTICS))
    (tmp_path / "constraints.json").write_text(json.dumps(SAGEMAKER_CONSTRAINTS))
    baseline = read_baseline(tmp_path)
    assert baseline.statistics.dataset.item_count == 6
    written = to_dict(baseline.statistics)
    assert written["features"][1]["string_statistics"]["custom"] == {"kept": True}
    assert written["version"] == 0.0
    # The sketch's second level weighs 2: the window below is the baseline's distribution.
    window = pd.DataFrame(
        {"age": [25, 45, 35, 35, 30, 30] * 100, "plan": ["gold", "basic", "basic"] * 200}
    )
    report = check(baseline, profile_frame(window))
    assert report.violations == []


def test_unreadable_files_name_the_file_and_field(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(SAGEMAKER_STATISTICS))
    del broken["features"][0]["numerical_statistics"]["mean"]
    path = tmp_path / "statistics.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(
        MonitorError, match=r"statistics\.json.*features\.0\.numerical_statistics\.mean"
    ):
        read_statistics(path)
    path.write_text("{not json")
    with pytest.raises(MonitorError, match="is not JSON"):
        read_statistics(path)
    with pytest.raises(MonitorError, match="no such file"):
        read_constraints(tmp_path / "absent.json")
    bad = json.loads(json.dumps(SAGEMAKER_CONSTRAINTS))
    bad["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Fancy"
    path.write_text(json.dumps(bad))
    with pytest.raises(MonitorError, match="comparison_method"):
        read_constraints(path)
