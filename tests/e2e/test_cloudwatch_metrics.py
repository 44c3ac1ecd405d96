"""SageMaker's endpoint metrics through pier's CloudWatch API, with boto3's `cloudwatch` client.

A real `pier up` (metrics flushed every second), one endpoint with two variants and a known
number of good and refused requests to each: GetMetricStatistics and GetMetricData give the
exact counts per variant, ListMetrics lists the series, PutMetricData round-trips, invalid
requests get CloudWatch's error codes, `pier metrics` prints them, the Grafana dashboard
queries only metrics the platform exposes, and a restart keeps the series (with the CPU and
memory of the minute the platform stopped in).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.boto3 import platform_fixtures
from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    BIN,
    REGION,
    Platform,
    running_platform,
    save_linear_model,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow
GOOD = split_json([[1.0, 2.0]])
BAD = json.dumps({"dataframe_split": {"columns": ["a"], "data": [["not a number"]]}})
SENT = {"champion": (5, 2), "challenger": (3, 0)}  # variant: (good requests, refused by the model)
ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "pier-endpoints.json"
DOC = ROOT / "docs" / "monitoring.md"
NS = "AWS/SageMaker"


def dims(v: str) -> list[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": "diabetes"}, {"Name": "VariantName", "Value": v}]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("cloudwatch")
    with running_platform(root / "home", env={"PIER_METRICS_FLUSH_SECONDS": "1"}) as p:
        save_linear_model(root / "a", 1.0, 2.0, 10.0)
        save_linear_model(root / "b", -3.0, 0.5, 100.0)
        sm = p.client("sagemaker")
        for name in ("a", "b"):
            sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(root / name)})
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[variant("champion", "a", 0.5), variant("challenger", "b", 0.5)],
        )
        sm.create_endpoint(EndpointName="diabetes", EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="diabetes", WaiterConfig=SHORT)
        runtime = p.client("sagemaker-runtime")
        for name, (good, bad) in SENT.items():
            call = {
                "EndpointName": "diabetes",
                "TargetVariant": name,
                "ContentType": "application/json",
            }
            for _ in range(good):
                runtime.invoke_endpoint(Body=GOOD, **call)
            for _ in range(bad):
                with pytest.raises(runtime.exceptions.ModelError):
                    runtime.invoke_endpoint(Body=BAD, **call)
        yield p


@pytest.fixture(scope="module")
def cw(platform: Platform) -> Any:
    return platform.client("cloudwatch")


def window() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"StartTime": now - timedelta(minutes=30), "EndTime": now + timedelta(minutes=2)}


def statistics(cw: Any, name: str, v: str, namespace: str = NS, **extra: Any) -> dict[str, Any]:
    """The one datapoint covering the test (Period one hour), or {} when there is none."""
    answer = cw.get_metric_statistics(
        Namespace=namespace, MetricName=name, Dimensions=extra.pop("Dimensions", dims(v)),
        Period=3600, Statistics=["SampleCount", "Average", "Sum", "Minimum", "Maximum"],
        **window(), **extra,
    )  # fmt: skip
    points: list[dict[str, Any]] = answer["Datapoints"]
    assert len(points) <= 1
    return points[0] if points else {}


def flushed(cw: Any) -> bool:
    return all(
        statistics(cw, "Invocations", v).get("Sum") == good + bad
        and statistics(cw, "OverheadLatency", v).get("SampleCount") == good
        for v, (good, bad) in SENT.items()
    )


def test_get_metric_statistics_counts_exactly(cw: Any) -> None:
    wait_for(lambda: flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
    for v, (good, bad) in SENT.items():
        n = good + bad
        inv = statistics(cw, "Invocations", v)
        assert (inv["Sum"], inv["SampleCount"], inv["Unit"]) == (n, n, "None")
        assert statistics(cw, "Invocation4XXErrors", v)["Sum"] == bad
        assert statistics(cw, "Invocation4XXErrors", v)["Average"] == pytest.approx(bad / n)
        assert statistics(cw, "Invocation5XXErrors", v)["Sum"] == 0
        assert statistics(cw, "InvocationModelErrors", v)["Sum"] == bad
        assert statistics(cw, "InvocationsPerInstance", v)["Sum"] == n  # one instance
        latency = statistics(cw, "ModelLatency", v)
        assert latency["SampleCount"] == n
        assert latency["Unit"] == "Microseconds"
        assert 0 < latency["Minimum"] <= latency["Average"] <= latency["Maximum"] < 10_000_000
        assert statistics(cw, "OverheadLatency", v)["SampleCount"] == good
    nothing = statistics(cw, "Invocations", "nope")
    assert nothing == {}


def test_get_metric_data_per_minute(cw: Any) -> None:
    wait_for(lambda: flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
    queries = [
        {"Id": f"inv_{v}", "MetricStat": {"Metric": {"Namespace": NS, "MetricName":
         "Invocations", "Dimensions": dims(v)}, "Period": 60, "Stat": "Sum"}, "Label": v}
        for v in SENT
    ]  # fmt: skip
    latency = {"Namespace": NS, "MetricName": "ModelLatency", "Dimensions": dims("champion")}
    hidden = {"Metric": latency, "Period": 300, "Stat": "Maximum"}
    queries.append({"Id": "lat", "ReturnData": False, "MetricStat": hidden})
    results = cw.get_metric_data(MetricDataQueries=queries, **window())["MetricDataResults"]
    by_id = {r["Id"]: r for r in results}
    assert set(by_id) == {"inv_champion", "inv_challenger"}
    for v, (good, bad) in SENT.items():
        r = by_id[f"inv_{v}"]
        assert (r["Label"], r["StatusCode"]) == (v, "Complete")
        assert sum(r["Values"]) == good + bad
        assert len(r["Timestamps"]) == len(r["Values"]) >= 1
        assert all(t.second == 0 for t in r["Timestamps"])
        assert r["Timestamps"] == sorted(r["Timestamps"], reverse=True)  # TimestampDescending


def test_list_metrics(cw: Any) -> None:
    wait_for(lambda: flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
    listed = cw.list_metrics(
        Namespace=NS, Dimensions=[{"Name": "EndpointName", "Value": "diabetes"}]
    )
    found = {(m["MetricName"], m["Dimensions"][1]["Value"]) for m in listed["Metrics"]}
    names = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "InvocationModelErrors",
             "InvocationsPerInstance", "ModelLatency", "OverheadLatency")  # fmt: skip
    assert found == {(n, v) for n in names for v in SENT}
    challenger = [{"Name": "VariantName", "Value": "challenger"}]
    only = cw.list_metrics(MetricName="ModelLatency", Dimensions=challenger)["Metrics"]
    assert only == [
        {"Namespace": NS, "MetricName": "ModelLatency", "Dimensions": dims("challenger")}
    ]


def test_put_metric_data_round_trip(cw: Any) -> None:
    now = datetime.now(UTC)
    feature = [{"Name": "Endpoint", "Value": "diabetes"}, {"Name": "Feature", "Value": "income"}]
    cw.put_metric_data(Namespace="pier/drift", MetricData=[
        {"MetricName": "psi", "Dimensions": feature, "Value": 0.12, "Timestamp": now},
        {"MetricName": "psi", "Dimensions": feature, "Values": [0.3, 0.5], "Counts": [1, 2],
         "Timestamp": now},
    ])  # fmt: skip
    got = cw.get_metric_data(MetricDataQueries=[
        {"Id": "worst", "MetricStat": {"Metric": {"Namespace": "pier/drift", "MetricName": "psi",
         "Dimensions": feature}, "Period": 60, "Stat": "Maximum"}},
        {"Id": "n", "MetricStat": {"Metric": {"Namespace": "pier/drift", "MetricName": "psi",
         "Dimensions": feature}, "Period": 60, "Stat": "SampleCount"}},
    ], StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1))  # fmt: skip
    worst, n = got["MetricDataResults"]
    assert worst["Values"] == [0.5]
    assert n["Values"] == [4.0]
    assert worst["Timestamps"] == [now.replace(second=0, microsecond=0)]
    assert {m["MetricName"] for m in cw.list_metrics(Namespace="pier/drift")["Metrics"]} == {"psi"}


def error(call: Any, **params: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    r = caught.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Message"]


def test_invalid_requests_get_cloudwatch_errors(cw: Any, platform: Platform) -> None:
    base = {
        "Namespace": NS,
        "MetricName": "Invocations",
        "Dimensions": dims("champion"),
        **window(),
    }
    code, status, message = error(cw.get_metric_statistics, Period=60, Statistics=["p99"], **base)
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith("1 validation error detected: Value '[p99]' at 'statistics'")
    code, _, message = error(cw.get_metric_statistics, Period=61, Statistics=["Sum"], **base)
    assert code == "InvalidParameterValue"
    assert message == "The parameter Period must be 1, 5, 10, 30 or a multiple of 60."
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{"MetricName": "x", "Value": 1}])
    code, _, message = error(cw.put_metric_data, Namespace="mine",
                             MetricData=[{"MetricName": "x"}])  # fmt: skip
    assert (code, message) == (
        "MissingParameter",
        "The parameter MetricData.member.1.Value is required.",
    )
    lax = Config(parameter_validation=False, retries={"total_max_attempts": 1})
    unchecked = platform.client("cloudwatch", config=lax)
    code, _, message = error(unchecked.get_metric_statistics, Namespace=NS, MetricName="x",
                             Period=60, Statistics=["Sum"])  # fmt: skip
    assert (code, message) == ("MissingParameter", "The parameter StartTime is required.")
    code, _, _ = error(cw.get_metric_statistics, Period=60, Statistics=["Sum"],
                       **{**base, "StartTime": base["EndTime"] - timedelta(days=3)})  # fmt: skip
    assert code == "InvalidParameterCombination"
    code, _, message = error(cw.get_metric_data, MetricDataQueries=[
        {"Id": "m", "Expression": "SUM(METRICS())"}], **window())  # fmt: skip
    assert code == "ValidationError"
    assert "metric math" in message
    code, status, _ = error(cw.describe_anomaly_detectors)
    assert (code, status) == ("UnknownOperationException", 400)


def test_json_protocol(platform: Platform) -> None:
    """AWS JSON 1.0 (X-Amz-Target), which older SDKs speak, answers the same."""
    creds = platform.credentials()
    span = window()
    body = json.dumps({
        "Namespace": NS, "MetricName": "Invocations", "Dimensions": dims("challenger"),
        "StartTime": span["StartTime"].timestamp(), "EndTime": span["EndTime"].timestamp(),
        "Period": 3600, "Statistics": ["Sum"],
    })  # fmt: skip
    request = AWSRequest("POST", platform.url + "/", data=body, headers={
        "X-Amz-Target": "GraniteServiceVersion20100801.GetMetricStatistics",
        "Content-Type": "application/x-amz-json-1.0"})  # fmt: skip
    credentials = Credentials(creds["access_key_id"], creds["secret_access_key"])
    SigV4Auth(credentials, "monitoring", REGION).add_auth(request)
    r = httpx.post(platform.url + "/", content=body, headers=dict(request.headers.items()))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-amz-json-1.0"
    assert [p["Sum"] for p in r.json()["Datapoints"]] == [3.0]


def doc_section() -> str:
    text = DOC.read_text()
    start = text.index("\n## Endpoint metrics")
    return text[start : text.index("\n## ", start + 1)]


def test_the_documented_python_runs(platform: Platform, cw: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """docs/monitoring.md's CloudWatch block, as written, with what `pier env` exports."""
    wait_for(lambda: flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
    creds = platform.credentials()
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", platform.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # boto3's default session keeps the first credentials it found: start a fresh one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    [block] = re.findall(r"```python\n(.*?)```", doc_section(), flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    good, bad = SENT["champion"]
    assert namespace["requests"] == good + bad
    model, errors = namespace["latency"]
    assert len(model["Values"]) >= 1
    assert sum(errors["Values"]) == bad
    stats = cw.get_metric_statistics(Namespace="pier/drift", MetricName="psi",
                                     Dimensions=[{"Name": "Feature", "Value": "bmi"}],
                                     Period=60, Statistics=["Maximum"], **window())  # fmt: skip
    assert [p["Maximum"] for p in stats["Datapoints"]] == [0.12]


def test_the_documented_pier_metrics_commands(platform: Platform, cw: Any) -> None:
    wait_for(lambda: flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
    section = doc_section()
    block = section[section.index("### `pier metrics`") :]
    [commands] = re.findall(r"```bash\n(.*?)```", block, flags=re.S)[:1]
    lines = [shlex.split(line.split("#")[0]) for line in commands.splitlines() if line.strip()]
    assert [line[:2] for line in lines] == [["pier", "metrics"]] * 3
    env = {**platform_fixtures.platform_env(), "COLUMNS": "200"}
    outputs = []
    for line in lines:
        args = [str(BIN / "pier"), *line[1:], "--home", str(platform.home)]
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    every, champion, as_json = outputs
    assert "diabetes / champion (per 1 min)" in every
    assert "diabetes / challenger (per 1 min)" in every
    assert "diabetes / champion (per 5 min)" in champion
    assert "challenger" not in champion
    data = json.loads(as_json)
    assert set(data["Variants"]) == set(SENT)
    for v, (good, bad) in SENT.items():
        rows = data["Variants"][v]
        assert sum(r.get("invocations", 0) for r in rows) == good + bad
        assert sum(r.get("errors_4xx", 0) for r in rows) == bad
        assert all(0 < r["model_latency_avg"] <= r["model_latency_max"] for r in rows)
    args = [str(BIN / "pier"), "metrics", "nope", "--home", str(platform.home)]
    missing = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 1
    assert "endpoint nope does not exist" in missing.stderr


def test_grafana_dashboard_queries_only_exposed_metrics(platform: Platform) -> None:
    """Every metric (and label) the dashboard's PromQL names is in the platform's /metrics."""
    exposed: dict[str, set[str]] = {}
    text = httpx.get(platform.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            exposed.setdefault(s.name, set()).update(s.labels)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(exprs) >= 10
    for expr in exprs:
        assert expr.count("(") == expr.count(")")
        assert expr.count("{") == expr.count("}")
        named = re.findall(r"\b(pier_[a-z0-9_]+)(\{[^}]*\})?", expr)
        assert named, expr
        for metric, selector in named:
            assert metric in exposed, f"{metric} (in {expr}) is not in /metrics"
            for label in re.findall(r"(\w+)\s*=~?", selector):
                assert label in exposed[metric], f"{metric} has no label {label}"
        for by in re.findall(r"by \(([^)]*)\)", expr):
            labels = {lb.strip() for lb in by.split(",")}
            assert labels <= {"endpoint", "variant", "instance", "le"}, expr
    panel_units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in dashboard["panels"]
                   if p["type"] == "timeseries"}  # fmt: skip
    assert panel_units["Model latency"] == "s"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "endpoint", "variant"}


def test_a_restart_keeps_the_series(platform: Platform, cw: Any) -> None:
    wait_for(lambda: flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
    assert platform.terminate() == 0  # a clean stop writes the minute in progress
    platform.start()
    assert flushed(cw)
    instance_ns = "/aws/sagemaker/Endpoints"
    for v in SENT:
        for metric in ("CPUUtilization", "MemoryUtilization"):
            point = statistics(cw, metric, v, instance_ns)
            assert point["SampleCount"] >= 1
            assert point["Unit"] == "Percent"
            assert 0 <= point["Minimum"] <= point["Maximum"]
        per_instance = cw.list_metrics(Namespace=instance_ns, MetricName="MemoryUtilization",
                                       Dimensions=[{"Name": "VariantName", "Value": v},
                                                   {"Name": "InstanceId"}])["Metrics"]  # fmt: skip
        [only] = per_instance
        point = statistics(cw, "MemoryUtilization", v, instance_ns, Dimensions=only["Dimensions"])
        assert 0 < point["Maximum"] < 100
