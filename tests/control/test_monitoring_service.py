"""Monitoring schedules on a SQLite store: the API's rules and answers (validated as boto3's
requests are), and the scheduler's ticks, on-demand runs and executions, driven by a clock."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine

from pier.contract.sagemaker import validate_input
from pier.control.arns import ArnFactory
from pier.control.monitoring_service import MonitoringService
from pier.control.service import HostingService
from pier.errors import AwsError, ResourceInUse, ResourceNotFound, ValidationException
from pier.monitor.errors import MonitorError
from pier.monitor.schedules.analysis import DataMetric
from pier.monitor.schedules.scheduler import Scheduler
from pier.monitor.stats.baseline import suggest_baseline, write_baseline
from pier.store import db
from tests.monitor.test_analysis import training
from tests.monitor.test_captured import record, write_capture

ROLE = "arn:aws:iam::000000000000:role/pier"
START = datetime(2026, 11, 30, 6, 20, tzinfo=UTC)
ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Live:
    def variants(self, endpoint: str) -> dict[str, Any]:
        return {}

    def pending_variants(self, endpoint: str) -> dict[str, Any]:
        return {}


class Scene:
    def __init__(self, engine: Engine, root: Path) -> None:
        self.root = root
        self.clock = Clock(START)
        sessions = db.sessions(engine)
        arns = ArnFactory("us-east-1", "000000000000")
        self.hosting = HostingService(
            sessions, arns, check_image=lambda image: None, live=Live(), notify=lambda: None
        )
        self.published: list[DataMetric] = []
        self.scheduler = Scheduler(
            sessions,
            capture_base=root / "capture-base",
            output_base=root / "monitoring",
            publish=self.published.extend,
            clock=self.clock,
        )
        self.service = MonitoringService(
            sessions, arns, run_now=self.scheduler.run_now, clock=self.clock
        )

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """As the platform does: validated against botocore's model, then the service."""
        method = "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                         for i, c in enumerate(operation))  # fmt: skip
        result: dict[str, Any] = getattr(self.service, method)(validate_input(operation, params))
        return result

    def endpoint(self, name: str, capture: bool = True) -> None:
        self.hosting.create_model(
            {"ModelName": f"{name}-m", "PrimaryContainer": {"ModelDataUrl": "/m"}}
        )
        config: dict[str, Any] = {
            "EndpointConfigName": f"{name}-c",
            "ProductionVariants": [{"VariantName": "main", "ModelName": f"{name}-m",
                                    "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        }  # fmt: skip
        if capture:
            config["DataCaptureConfig"] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": (self.root / "capture").as_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}],
            }
        self.hosting.create_endpoint_config(config)
        self.hosting.create_endpoint({"EndpointName": name, "EndpointConfigName": f"{name}-c"})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    e = db.create(f"sqlite:///{tmp_path_factory.mktemp('mon')}/pier.db")
    db.migrate(e)
    yield e
    e.dispose()


@pytest.fixture
def scene(engine: Engine, tmp_path: Path) -> Iterator[Scene]:
    from pier.store.tables import Base

    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    s = Scene(engine, tmp_path)
    yield s
    s.scheduler._pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("baseline")
    write_baseline(suggest_baseline(training()), directory)
    return directory


def request(baseline: Path | None, endpoint: str = "churn", **config: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "MonitoringInputs": [
            {"EndpointInput": {"EndpointName": endpoint, "LocalPath": "/opt/ml/processing/input"}}
        ],
        "MonitoringOutputConfig": {
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": "file:reports", "LocalPath": "/opt/ml/processing/output"}}
            ]
        },
        "MonitoringResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 20,
            }
        },
        "MonitoringAppSpecification": {"ImageUri": "pier/model-monitor"},
        "RoleArn": ROLE,
    }
    if baseline is not None:
        job["BaselineConfig"] = {
            "ConstraintsResource": {"S3Uri": (baseline / "constraints.json").as_uri()},
            "StatisticsResource": {"S3Uri": (baseline / "statistics.json").as_uri()},
        }
    return {
        "MonitoringScheduleName": "hourly",
        "MonitoringScheduleConfig": {"MonitoringJobDefinition": job, **config},
    }


def capture_traffic(scene: Scene, shift_b: float, when: datetime) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 300), rng.normal(5 + shift_b, 2, 300)
    rows = [[float(x), float(y)] for x, y in zip(a, b, strict=True)]
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}})
    write_capture(scene.root / "capture", "churn", "main", [record(body, when=when)])


def test_create_describe_list(scene: Scene, baseline_dir: Path) -> None:
    scene.endpoint("churn")
    arn = scene.call("CreateMonitoringSchedule", **request(baseline_dir))["MonitoringScheduleArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:monitoring-schedule/hourly"
    described = scene.call("DescribeMonitoringSchedule", MonitoringScheduleName="hourly")
    assert described["MonitoringScheduleStatus"] == "Scheduled"
    assert described["EndpointName"] == "churn"
    assert described["MonitoringType"] == "DataQuality"
    assert "LastMonitoringExecutionSummary" not in described
    listed = scene.call("ListMonitoringSchedules", EndpointName="churn")
    assert [s["MonitoringScheduleName"] for s in listed["MonitoringScheduleSummaries"]] == [
        "hourly"
    ]
    assert scene.call("ListMonitoringSchedules", EndpointName="other") == {
        "MonitoringScheduleSummaries": []
    }
    with pytest.raises(ResourceInUse, match="already exists"):
        scene.call("CreateMonitoringSchedule", **request(baseline_dir))
    scene.call("StopMonitoringSchedule", MonitoringScheduleName="hourly")
    stopped = scene.call("ListMonitoringSchedules", StatusEquals="Stopped")
    assert len(stopped["MonitoringScheduleSummaries"]) == 1
    scene.call("StartMonitoringSchedule", MonitoringScheduleName="hourly")
    scene.call("DeleteMonitoringSchedule", MonitoringScheduleName="hourly")
    with pytest.raises(ResourceNotFound) as caught:
        scene.call("DescribeMonitoringSchedule", MonitoringScheduleName="hourly")
    assert caught.value.message == (
        "Could not find monitoring schedule "
        '"arn:aws:sagemaker:us-east-1:000000000000:monitoring-schedule/hourly".'
    )
    for operation in ("DeleteMonitoringSchedule", "StopMonitoringSchedule"):
        with pytest.raises(ResourceNotFound):
            scene.call(operation, MonitoringScheduleName="hourly")


def test_ticks_run_executions_that_find_the_drift(scene: Scene, baseline_dir: Path) -> None:
    scene.endpoint("churn")
    scene.call("CreateMonitoringSchedule", **request(baseline_dir))
    assert scene.scheduler.tick() == []  # created at 06:20: the first tick is 07:00
    capture_traffic(scene, shift_b=4.0, when=START + timedelta(minutes=10))
    scene.clock.now = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)  # down through 07:00 and 08:00
    [execution] = scene.scheduler.tick()
    assert scene.scheduler.tick() == []  # the latest missed tick only, once
    scene.scheduler.wait_idle()  # tick() started it in the pool: 08:00-09:00 holds no data
    assert scene.scheduler.execute(execution) == "Failed"  # already done: its final status
    listed = scene.call("ListMonitoringExecutions", MonitoringScheduleName="hourly")
    [summary] = listed["MonitoringExecutionSummaries"]
    assert summary["ScheduledTime"] == datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp()
    assert summary["MonitoringExecutionStatus"] == "Failed"
    assert summary["FailureReason"].startswith("Job inputs had no data")

    capture_traffic(scene, shift_b=4.0, when=datetime(2026, 11, 30, 9, 30, tzinfo=UTC))
    scene.clock.now = datetime(2026, 11, 30, 9, 40, tzinfo=UTC)
    summary = scene.service.start_execution("hourly")  # pier monitor run
    assert summary["MonitoringExecutionStatus"] == "Pending"
    scene.scheduler.wait_idle()  # the pool ran it
    report = scene.service.latest_report("hourly")["Execution"]
    assert report["MonitoringExecutionStatus"] == "CompletedWithViolations"
    assert [v["feature_name"] for v in report["Report"]["violations"]] == ["b"]
    assert report["Report"]["window"] == {
        "start": "2026-11-30T08:40:00Z",
        "end": "2026-11-30T09:40:00Z",
    }
    out = scene.root / "monitoring" / "reports" / "churn" / "hourly" / "2026/11/30/09"
    assert report["OutputUri"] == out.as_uri()
    assert (out / "constraint_violations.json").is_file()
    assert {m.name for m in scene.published} == {
        "feature_baseline_drift_a",
        "feature_baseline_drift_b",
        "constraint_violations",
    }
    described = scene.call("DescribeMonitoringSchedule", MonitoringScheduleName="hourly")
    last = described["LastMonitoringExecutionSummary"]
    assert last["MonitoringExecutionStatus"] == "CompletedWithViolations"
    by_status = scene.call(
        "ListMonitoringExecutions", StatusEquals="CompletedWithViolations", EndpointName="churn"
    )
    assert len(by_status["MonitoringExecutionSummaries"]) == 1
    page = scene.call("ListMonitoringExecutions", MaxResults=1, SortBy="ScheduledTime")
    assert page["MonitoringExecutionSummaries"][0]["ScheduledTime"] == summary["ScheduledTime"]
    rest = scene.call("ListMonitoringExecutions", MaxResults=1, SortBy="ScheduledTime",
                      NextToken=page["NextToken"])  # fmt: skip
    assert rest["MonitoringExecutionSummaries"][0]["MonitoringExecutionStatus"] == "Failed"
    assert "NextToken" not in rest


def test_stopped_schedules_do_not_tick_and_unfinished_executions_fail(
    scene: Scene, baseline_dir: Path
) -> None:
    scene.endpoint("churn")
    scene.call("CreateMonitoringSchedule", **request(baseline_dir))
    scene.call("StopMonitoringSchedule", MonitoringScheduleName="hourly")
    scene.clock.now = START + timedelta(hours=3)
    assert scene.scheduler.tick() == []
    scene.call("StartMonitoringSchedule", MonitoringScheduleName="hourly")
    assert scene.scheduler.tick() == []  # started again: the next tick, not the missed ones
    scene.clock.now = START + timedelta(hours=4)
    assert len(scene.scheduler.tick()) == 1
    scene.scheduler.wait_idle()
    scene.scheduler._pool.shutdown(wait=True)
    with pytest.raises(MonitorError, match="the platform is stopping"):
        scene.service.start_execution("hourly")
    assert scene.scheduler.recover() == 1  # recorded, never run: Failed at the next start
    executions = scene.call("ListMonitoringExecutions", SortBy="CreationTime")
    latest = executions["MonitoringExecutionSummaries"][0]
    assert latest["FailureReason"] == "The platform stopped before the execution finished."


def test_now_runs_once_at_creation(scene: Scene, baseline_dir: Path) -> None:
    scene.endpoint("churn")
    capture_traffic(scene, shift_b=0.0, when=START - timedelta(minutes=30))
    req = request(baseline_dir, ScheduleConfig={
        "ScheduleExpression": "NOW",
        "DataAnalysisStartTime": "-PT1H",
        "DataAnalysisEndTime": "-PT0H",
    })  # fmt: skip
    scene.call("CreateMonitoringSchedule", **req)
    scene.scheduler.wait_idle()
    [summary] = scene.call("ListMonitoringExecutions")["MonitoringExecutionSummaries"]
    assert summary["MonitoringExecutionStatus"] == "Completed", summary
    scene.clock.now = START + timedelta(hours=5)
    assert scene.scheduler.tick() == []


def invalid(scene: Scene, req: dict[str, Any]) -> AwsError:
    with pytest.raises(AwsError) as caught:
        scene.call("CreateMonitoringSchedule", **req)
    return caught.value


def test_requests_pier_cannot_run_are_refused_precisely(scene: Scene, baseline_dir: Path) -> None:
    scene.endpoint("churn")
    scene.endpoint("plain", capture=False)
    base = request(baseline_dir)

    def changed(path: str, value: Any) -> dict[str, Any]:
        req = copy.deepcopy(base)
        node: Any = req["MonitoringScheduleConfig"]
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
        return req

    job = "MonitoringJobDefinition"
    cases = {
        "ScheduleExpression 'cron(0 * * * *)' has 5 fields; SageMaker's cron has 6": changed(
            "ScheduleConfig", {"ScheduleExpression": "cron(0 * * * *)"}
        ),
        "ScheduleExpression NOW needs DataAnalysisStartTime and DataAnalysisEndTime": changed(
            "ScheduleConfig", {"ScheduleExpression": "NOW"}
        ),
        "MonitoringType ModelQuality: pier runs DataQuality schedules only": changed(
            "MonitoringType", "ModelQuality"
        ),
        f'Could not find endpoint "{ENDPOINT_ARN}nope".': changed(
            f"{job}.MonitoringInputs.0.EndpointInput.EndpointName", "nope"
        ),
        "Endpoint plain does not capture its requests": changed(
            f"{job}.MonitoringInputs.0.EndpointInput.EndpointName", "plain"
        ),
        "BaselineConfig.ConstraintsResource.S3Uri https://example.com/c.json: pier reads and "
        "writes s3://bucket/key and file:///path, or models:/name/version": changed(
            f"{job}.BaselineConfig.ConstraintsResource.S3Uri", "https://example.com/c.json"
        ),
        "BaselineConfig needs both ConstraintsResource and StatisticsResource: "
        "StatisticsResource.S3Uri is missing": changed(
            f"{job}.BaselineConfig.StatisticsResource", None
        ),
        "MonitoringOutputs.S3Output.S3Uri ftp://host/out: pier reads and writes s3://bucket/key "
        "and file:///path.": changed(
            f"{job}.MonitoringOutputConfig.MonitoringOutputs.0.S3Output.S3Uri", "ftp://host/out"
        ),
        "RecordPreprocessorSourceUri: pier runs no preprocessing": changed(
            f"{job}.MonitoringAppSpecification.RecordPreprocessorSourceUri", "s3://b/pre.py"
        ),
        "MonitoringJobDefinitionName: pier does not implement job definitions": changed(
            "MonitoringJobDefinitionName", "dq-job"
        ),
        "The analysis window may span 24 hours at most": changed(
            "ScheduleConfig",
            {
                "ScheduleExpression": "cron(0 0 ? * * *)",
                "DataAnalysisStartTime": "-P2D",
                "DataAnalysisEndTime": "-PT0H",
            },
        ),
    }
    for message, req in cases.items():
        err = invalid(scene, req)
        assert err.code == "ValidationException", (message, err.message)
        assert message in err.message, (message, err.message)
    # botocore's own constraints come first, with AWS's wording
    err = invalid(scene, changed(f"{job}.RoleArn", None))
    assert err.message == (
        "1 validation error detected: Value null at "
        "'monitoringScheduleConfig.monitoringJobDefinition.roleArn' failed to satisfy "
        "constraint: Member must not be null"
    )
    assert isinstance(err, ValidationException)
    # a baseline stored with a model version is a location pier takes
    models = changed(f"{job}.BaselineConfig.ConstraintsResource.S3Uri", "models:/churn/3")
    models = changed(f"{job}.BaselineConfig.StatisticsResource", None) | {
        "MonitoringScheduleConfig": models["MonitoringScheduleConfig"]
    }
    del models["MonitoringScheduleConfig"][job]["BaselineConfig"]["StatisticsResource"]
    assert scene.call("CreateMonitoringSchedule", **models)["MonitoringScheduleArn"]


def test_executions_run_in_a_worker_process_that_is_replaced_when_it_dies(
    engine: Engine, tmp_path: Path, baseline_dir: Path
) -> None:
    """As the platform runs them: the analysis in a spawned process, not a thread of the
    platform's (whose event loop serves invocations); a worker killed is replaced."""
    import multiprocessing
    import os
    import signal

    from pier.store.tables import Base

    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    scene = Scene(engine, tmp_path)
    sessions = db.sessions(engine)
    scene.scheduler = Scheduler(
        sessions,
        capture_base=tmp_path / "capture-base",
        output_base=tmp_path / "monitoring",
        publish=scene.published.extend,
        clock=scene.clock,
        processes=True,
    )
    scene.service = MonitoringService(
        sessions,
        ArnFactory("us-east-1", "000000000000"),
        run_now=scene.scheduler.run_now,
        clock=scene.clock,
    )
    before = {p.pid for p in multiprocessing.active_children()}
    scene.endpoint("churn")
    scene.call("CreateMonitoringSchedule", **request(baseline_dir))
    capture_traffic(scene, shift_b=4.0, when=datetime(2026, 11, 30, 9, 30, tzinfo=UTC))
    scene.clock.now = datetime(2026, 11, 30, 9, 40, tzinfo=UTC)
    try:
        scene.service.start_execution("hourly")
        scene.scheduler.wait_idle()
        report = scene.service.latest_report("hourly")["Execution"]
        assert report["MonitoringExecutionStatus"] == "CompletedWithViolations"
        assert [v["feature_name"] for v in report["Report"]["violations"]] == ["b"]
        assert {m.name for m in scene.published} >= {"constraint_violations"}  # from the parent
        [worker] = [p for p in multiprocessing.active_children() if p.pid not in before]
        assert worker.pid != os.getpid()

        os.kill(worker.pid or 0, signal.SIGKILL)  # out of memory, say
        worker.join(30)
        outcomes = []
        for _ in range(2):
            scene.clock.now += timedelta(minutes=1)
            scene.service.start_execution("hourly")
            scene.scheduler.wait_idle()
            execution = scene.service.latest_report("hourly")["Execution"]
            outcomes.append((execution["MonitoringExecutionStatus"],
                             execution.get("FailureReason")))  # fmt: skip
        # The execution after the death fails saying so, or already runs in the new worker.
        assert outcomes[0][0] == "CompletedWithViolations" or outcomes[0] == (
            "Failed",
            "The monitoring worker process ended during the analysis (out of memory?).",
        )
        assert outcomes[1][0] == "CompletedWithViolations"
    finally:
        asyncio.run(scene.scheduler.aclose())
    assert {p.pid for p in multiprocessing.active_children()} <= before
