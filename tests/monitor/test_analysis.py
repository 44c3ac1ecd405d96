"""One monitoring execution from files: captured records → statistics.json and
constraint_violations.json in SageMaker's report layout, status, metrics; baselines from
file:, and what fails."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pier.monitor.errors import MonitorError
from pier.monitor.schedules.analysis import (
    DATA_METRICS_NAMESPACE,
    ExecutionStatus,
    analyse,
    load_baseline,
    output_location,
    resolve_location,
)
from pier.monitor.stats.baseline import suggest_baseline, write_baseline
from pier.storage import S3Location
from tests.monitor.test_captured import record, write_capture

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
START, END = T0, T0 + timedelta(hours=1)


def training(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(5, 2, n)})


def traffic(root: Path, shift_b: float, n_requests: int = 20, rows: int = 25) -> None:
    rng = np.random.default_rng(1)
    records = []
    for i in range(n_requests):
        a = rng.normal(0, 1, rows)
        b = rng.normal(5 + shift_b, 2, rows)
        when = T0 + timedelta(minutes=2 * i)
        if i % 2:
            data = [[float(x), float(y)] for x, y in zip(a, b, strict=True)]
            body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": data}})
            records.append(record(body, when=when))
        else:
            body = "".join(f"{x},{y}\n" for x, y in zip(a, b, strict=True))
            records.append(record(body, "text/csv", "CSV", when))
    write_capture(root, "churn", "main", records)


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("baseline")
    write_baseline(suggest_baseline(training()), directory)
    return directory


def test_a_shifted_feature_is_a_baseline_drift_violation(
    tmp_path: Path, baseline_dir: Path
) -> None:
    traffic(tmp_path / "capture", shift_b=3.0)
    baseline = load_baseline(
        (baseline_dir / "statistics.json").as_uri(),
        (baseline_dir / "constraints.json").as_uri(),
        tmp_path,
    )
    out = output_location(tmp_path / "reports", "churn", "hourly", END)
    outcome = analyse(baseline, tmp_path / "capture", "churn", START, END, out)
    assert outcome.status == ExecutionStatus.COMPLETED_WITH_VIOLATIONS, outcome.failure_reason
    assert outcome.stats.rows == 500
    assert outcome.stats.records == 20
    report = outcome.report()
    assert [(v["feature_name"], v["constraint_check_type"]) for v in report["violations"]] == [
        ("b", "baseline_drift_check")
    ]
    drift = {f["name"]: f for f in report["features"]}
    assert drift["b"]["drifted"]
    assert drift["b"]["distance"] > drift["b"]["threshold"] == 0.1
    assert not drift["a"]["drifted"]
    # SageMaker's report layout: {S3Output}/{endpoint}/{schedule}/yyyy/mm/dd/hh/
    directory = tmp_path / "reports" / "churn" / "hourly" / "2026" / "11" / "30" / "07"
    assert outcome.output == directory.as_uri()
    violations = json.loads((directory / "constraint_violations.json").read_text())
    assert violations["violations"][0]["feature_name"] == "b"
    statistics = json.loads((directory / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == 500
    assert [f["name"] for f in statistics["features"]] == ["a", "b"]
    metrics = {m.name: m for m in outcome.data_metrics("churn", "hourly")}
    assert set(metrics) == {
        "feature_baseline_drift_a",
        "feature_baseline_drift_b",
        "constraint_violations",
    }
    assert metrics["constraint_violations"].value == 1
    b = metrics["feature_baseline_drift_b"]
    assert b.namespace == DATA_METRICS_NAMESPACE == "aws/sagemaker/Endpoints/data-metrics"
    assert b.dimensions == {"Endpoint": "churn", "MonitoringSchedule": "hourly"}
    assert b.value == drift["b"]["distance"]


def test_unchanged_traffic_completes_without_violations(tmp_path: Path, baseline_dir: Path) -> None:
    traffic(tmp_path / "capture", shift_b=0.0)
    baseline = load_baseline(
        (baseline_dir / "statistics.json").as_uri(),
        (baseline_dir / "constraints.json").as_uri(),
        tmp_path,
    )
    outcome = analyse(baseline, tmp_path / "capture", "churn", START, END, tmp_path / "out")
    assert outcome.status == ExecutionStatus.COMPLETED
    assert outcome.report()["violations"] == []
    assert json.loads((tmp_path / "out" / "constraint_violations.json").read_text()) == {
        "violations": []
    }


def test_without_a_baseline_only_statistics(tmp_path: Path) -> None:
    traffic(tmp_path / "capture", shift_b=0.0, n_requests=2)
    outcome = analyse(None, tmp_path / "capture", "churn", START, END, tmp_path / "out")
    assert outcome.status == ExecutionStatus.COMPLETED
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["statistics.json"]


def test_no_captured_data_fails_like_sagemaker(tmp_path: Path, baseline_dir: Path) -> None:
    baseline = load_baseline(
        (baseline_dir / "statistics.json").as_uri(),
        (baseline_dir / "constraints.json").as_uri(),
        tmp_path,
    )
    outcome = analyse(baseline, tmp_path / "capture", "churn", START, END, tmp_path / "out")
    assert outcome.status == ExecutionStatus.FAILED
    assert outcome.failure_reason is not None
    assert outcome.failure_reason.startswith(
        "Job inputs had no data: no captured request of endpoint churn between "
        "2026-11-30T06:00:00Z and 2026-11-30T07:00:00Z"
    )
    assert not (tmp_path / "out").exists()


def test_records_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    write_capture(tmp_path, "churn", "main", [record("{nope", when=T0)])
    outcome = analyse(None, tmp_path, "churn", START, END, tmp_path / "out")
    assert outcome.status == ExecutionStatus.FAILED
    assert "1 captured record(s) of endpoint churn, none readable as rows (1 × a JSON body" in (
        outcome.failure_reason or ""
    )


def test_locations(tmp_path: Path) -> None:
    assert resolve_location("file:///var/reports", tmp_path) == Path("/var/reports")
    assert resolve_location("file:reports", tmp_path) == tmp_path / "reports"
    assert resolve_location("s3://bucket/a/b/", tmp_path) == S3Location("bucket", "a/b")
    assert output_location(S3Location("bucket", "a"), "e", "s", END) == S3Location(
        "bucket", "a/e/s/2026/11/30/07"
    )
    for bad in ("https://x/y", "s3:///key", "file:../up", "ftp://h/p"):
        with pytest.raises(MonitorError):
            resolve_location(bad, tmp_path)


def test_baselines_from_s3_and_models(tmp_path: Path, baseline_dir: Path) -> None:
    class FakeS3:
        def __init__(self) -> None:
            self.asked: list[tuple[str, str]] = []

        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            self.asked.append((Bucket, Key))

            class Body:
                @staticmethod
                def read() -> bytes:
                    return (baseline_dir / Key.rsplit("/", 1)[-1]).read_bytes()

            return {"Body": Body()}

    s3 = FakeS3()
    baseline = load_baseline(
        "s3://b/base/statistics.json", "s3://b/base/constraints.json", tmp_path, s3=lambda: s3
    )
    assert [f.name for f in baseline.constraints.features] == ["a", "b"]
    assert s3.asked == [("b", "base/statistics.json"), ("b", "base/constraints.json")]

    asked: list[str] = []

    def from_model(uri: str, scratch: Path) -> Path:
        asked.append(uri)
        return baseline_dir

    load_baseline("models:/churn/3", "models:/churn/3", tmp_path, from_model=from_model)
    assert asked == ["models:/churn/3"]  # one download for both files
    with pytest.raises(MonitorError, match="no MLflow registry"):
        load_baseline("models:/churn/3", "models:/churn/3", tmp_path)
