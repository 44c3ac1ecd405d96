"""Monitoring schedules through a real `pier up` with its MLflow server.

A model is trained on two features (plus a label in the training CSV), logged with its training
dataset and registered. `pier monitor baseline` stores the baseline with the model version
(from the run's dataset, then from --data). An endpoint captures to file://; traffic shifts one
feature; `pier monitor schedule` (boto3's CreateMonitoringSchedule) and `pier monitor run` give
CompletedWithViolations with a baseline_drift_check naming that feature, `pier monitor report`
shows it, ListMonitoringExecutions lists it, the report files are in SageMaker's layout, and the
drift reached the CloudWatch API. Invalid schedule requests get precise ValidationExceptions.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    platform_env,
    running_platform,
    wait_for,
)

pytestmark = pytest.mark.slow
MODEL = "drift-model"
ENDPOINT = "drifting"
SCHEDULE = "drift-check"
N_REQUESTS, ROWS = 20, 25


def pier(platform: Platform, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in platform_env().items() if k != "MLFLOW_TRACKING_URI"}
    env["COLUMNS"] = "200"  # rich's tables, unwrapped
    return subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(platform.home)],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def training_frame(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(5, 2, n)})
    frame["y"] = 3 * frame["a"] - frame["b"] + rng.normal(0, 0.1, n)
    return frame


def train_and_register(tracking_uri: str, csv: Path) -> str:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    frame = training_frame()
    frame.to_csv(csv, index=False)
    X, y = frame[["a", "b"]], frame["y"]
    model = LinearRegression().fit(X, y)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("monitoring-e2e")
    with mlflow.start_run():
        dataset = mlflow.data.from_pandas(frame, source=str(csv), name="train", targets="y")
        mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(X, model.predict(X)),
            registered_model_name=MODEL, serialization_format="cloudpickle",
            pip_requirements=["mlflow", "scikit-learn"],
        )  # fmt: skip
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("monitoring") / "home"
    with running_platform(home, options=("--mlflow-port", "0")) as p:
        yield p


def test_schedule_finds_the_shifted_feature(platform: Platform, tmp_path: Path) -> None:
    tracking = (platform.home / "mlflow.url").read_text().strip()
    csv = tmp_path / "train.csv"
    version = train_and_register(tracking, csv)
    uri = f"models:/{MODEL}/{version}"

    # The baseline, from the dataset logged with the run, then from --data; stored with the
    # version (the label y is no model input: left out).
    logged = pier(platform, "monitor", "baseline", "--model", uri)
    assert logged.returncode == 0, logged.stdout + logged.stderr
    assert "dataset 'train'" in logged.stdout
    stored = pier(platform, "monitor", "baseline", "--model", uri, "--data", str(csv),
                  "-o", str(tmp_path / "baseline"))  # fmt: skip
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert "Left out 1 column(s) the model does not take as input: y" in stored.stdout
    assert f"Stored with {uri}" in stored.stdout
    constraints = json.loads((tmp_path / "baseline" / "constraints.json").read_text())
    assert [f["name"] for f in constraints["features"]] == ["a", "b"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    tag = client.get_model_version(MODEL, version).tags["pier.monitoring.baseline"]
    run_id = client.get_model_version(MODEL, version).run_id
    assert tag == f"runs:/{run_id}/monitoring/baseline"
    artifacts = {a.path for a in client.list_artifacts(run_id, "monitoring/baseline")}
    assert artifacts == {"monitoring/baseline/statistics.json",
                         "monitoring/baseline/constraints.json"}  # fmt: skip

    # An endpoint that captures to a local directory, and traffic where b moved by 2σ.
    capture = tmp_path / "capture"
    sm, runtime = platform.client("sagemaker"), platform.client("sagemaker-runtime")
    sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": uri})
    sm.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[{"VariantName": "main", "ModelName": "m",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": capture.as_uri(),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                         "JsonContentTypes": ["application/json"]},
        },
    )  # fmt: skip
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=ENDPOINT, WaiterConfig={"Delay": 1, "MaxAttempts": 240}
    )
    rng = np.random.default_rng(1)
    for i in range(N_REQUESTS):
        rows = np.column_stack([rng.normal(0, 1, ROWS), rng.normal(9, 2, ROWS)])
        if i % 2:
            body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows.tolist()}})
            content_type = "application/json"
        else:
            body = "a,b\n" + "".join(f"{a},{b}\n" for a, b in rows)
            content_type = "text/csv"
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType=content_type)

    def captured() -> int:
        return sum(len(p.read_text().splitlines()) for p in capture.rglob("*.jsonl"))

    wait_for(lambda: captured() == N_REQUESTS, 30, what="every request in the capture files")

    # Invalid requests: SageMaker's error codes, pier's precise messages.
    def refused(**changes: Any) -> tuple[str, str]:
        request = schedule_request(ENDPOINT, uri, tmp_path / "reports")
        request["MonitoringScheduleConfig"].update(changes)
        with pytest.raises(ClientError) as caught:
            sm.create_monitoring_schedule(**request)
        error = caught.value.response["Error"]
        return error["Code"], error["Message"]

    assert refused(ScheduleConfig={"ScheduleExpression": "cron(0 * * * *)"}) == (
        "ValidationException",
        "ScheduleExpression 'cron(0 * * * *)' has 5 fields; SageMaker's cron has 6: "
        "Minutes Hours Day-of-month Month Day-of-week Year.",
    )
    code, message = refused(MonitoringType="ModelBias")
    assert code == "ValidationException"
    assert message.startswith("MonitoringType ModelBias: pier runs DataQuality schedules only")
    wrong_endpoint = schedule_request("nope", uri, tmp_path / "reports")
    with pytest.raises(ClientError) as caught:
        sm.create_monitoring_schedule(**wrong_endpoint)
    assert caught.value.response["Error"]["Message"] == (
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:000000000000:endpoint/nope".'
    )
    with pytest.raises(ClientError) as caught:
        sm.describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"

    # The schedule (pier monitor schedule = CreateMonitoringSchedule), run now, the report.
    reports = tmp_path / "reports"
    created = pier(platform, "monitor", "schedule", SCHEDULE, "--endpoint", ENDPOINT,
                   "--baseline", uri, "--output", reports.as_uri())  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    described = sm.describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE)
    assert described["MonitoringScheduleStatus"] == "Scheduled"
    config = described["MonitoringScheduleConfig"]
    assert config["ScheduleConfig"]["ScheduleExpression"] == "cron(0 * ? * * *)"
    ran = pier(platform, "monitor", "run", SCHEDULE)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "CompletedWithViolations" in ran.stdout
    assert f"{N_REQUESTS} captured request(s), {N_REQUESTS * ROWS} row(s)" in ran.stdout

    shown = pier(platform, "monitor", "report", SCHEDULE)
    assert shown.returncode == 0, shown.stderr
    assert "baseline_drift_check" in shown.stdout
    assert "Baseline drift distance for 'b'" in shown.stdout
    as_json = pier(platform, "monitor", "report", SCHEDULE, "--json")
    report = json.loads(as_json.stdout)["Execution"]
    assert report["MonitoringExecutionStatus"] == "CompletedWithViolations"
    violations = report["Report"]["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("b", "baseline_drift_check")
    ]
    drift = {f["name"]: f for f in report["Report"]["features"]}
    assert drift["b"]["drifted"]
    assert not drift["a"]["drifted"]

    # boto3 sees the execution; the files are where SageMaker puts them.
    [summary] = sm.list_monitoring_executions(MonitoringScheduleName=SCHEDULE)[
        "MonitoringExecutionSummaries"
    ]
    assert summary["MonitoringExecutionStatus"] == "CompletedWithViolations"
    assert summary["EndpointName"] == ENDPOINT
    scheduled: datetime = summary["ScheduledTime"]
    directory = reports / ENDPOINT / SCHEDULE / scheduled.astimezone(UTC).strftime("%Y/%m/%d/%H")
    on_disk = json.loads((directory / "constraint_violations.json").read_text())
    assert on_disk["violations"][0]["feature_name"] == "b"
    assert (directory / "statistics.json").is_file()
    last = sm.describe_monitoring_schedule(MonitoringScheduleName=SCHEDULE)
    assert last["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"] == (
        "CompletedWithViolations"
    )

    # The drift is a CloudWatch metric, as SageMaker publishes it: alarms can watch it.
    cloudwatch = platform.client("cloudwatch")
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="feature_baseline_drift_b",
        Dimensions=[{"Name": "Endpoint", "Value": ENDPOINT},
                    {"Name": "MonitoringSchedule", "Value": SCHEDULE}],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
        Period=60, Statistics=["Maximum"],
    )  # fmt: skip
    [point] = stats["Datapoints"]
    assert point["Maximum"] == pytest.approx(drift["b"]["distance"])

    sm.delete_monitoring_schedule(MonitoringScheduleName=SCHEDULE)
    assert sm.list_monitoring_schedules()["MonitoringScheduleSummaries"] == []
    # SageMaker keeps the execution history of a deleted schedule.
    history = sm.list_monitoring_executions(EndpointName=ENDPOINT)
    assert len(history["MonitoringExecutionSummaries"]) == 1
    assert os.path.isdir(directory)


def schedule_request(endpoint: str, baseline: str, reports: Path) -> dict[str, Any]:
    return {
        "MonitoringScheduleName": SCHEDULE,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinition": {
                "BaselineConfig": {
                    "ConstraintsResource": {"S3Uri": baseline},
                    "StatisticsResource": {"S3Uri": baseline},
                },
                "MonitoringInputs": [{"EndpointInput": {"EndpointName": endpoint,
                                                        "LocalPath": "/opt/ml/processing/in"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [
                    {"S3Output": {"S3Uri": reports.as_uri(),
                                  "LocalPath": "/opt/ml/processing/out"}}]},
                "MonitoringResources": {"ClusterConfig": {
                    "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 20}},
                "MonitoringAppSpecification": {"ImageUri": "pier/model-monitor"},
                "RoleArn": "arn:aws:iam::000000000000:role/pier",
            },
        },
    }  # fmt: skip
