"""CloudWatch alarms on a real `pier up`, driven with boto3 and `pier alarms`.

The platform evaluates every second (PIER_ALARM_EVALUATION_SECONDS=1, no delay) instead of
every minute; alarms watch a custom metric the test publishes with PutMetricData into the
last whole minute, the one a 1-minute alarm judges. A small HTTP server in the test receives
the webhooks: /good answers 200, /bad 500 (so its three tries and the failure are recorded).
The tests run in file order on one platform.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.boto3 import platform_fixtures
from tests.boto3.platform_fixtures import BIN, Platform, running_platform, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "monitoring.md"
NS, METRIC = "Pier/E2E", "Errors"
DIMS = [{"Name": "EndpointName", "Value": "e2e"}]


class Hooks:
    """Webhook receiver: records (path, JSON body); /bad answers 500, anything else 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with hooks.lock:
                    hooks.received.append((self.path, json.loads(body)))
                self.send_response(500 if self.path == "/bad" else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.received if p == path]


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.server.shutdown()
    h.server.server_close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    fast = {"PIER_ALARM_EVALUATION_SECONDS": "1", "PIER_ALARM_EVALUATION_DELAY_SECONDS": "0"}
    with running_platform(tmp_path_factory.mktemp("alarms") / "home", env=fast) as p:
        yield p


@pytest.fixture(scope="module")
def cw(platform: Platform) -> Any:
    return platform.client("cloudwatch")


def pier(platform: Platform, *args: str) -> str:
    env = {**platform_fixtures.platform_env(), "COLUMNS": "250"}  # rich tables: no wrapped cells
    r = subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(platform.home)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def refused(call: Any, **params: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as info:
        call(**params)
    error = info.value.response["Error"]
    return (
        info.value.response["ResponseMetadata"]["HTTPStatusCode"],
        error["Code"],
        error["Message"],
    )


def state(cw: Any, name: str) -> str:
    return str(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


def wait_state(cw: Any, name: str, wanted: str, timeout: float = 15) -> None:
    wait_for(lambda: state(cw, name) == wanted, timeout, what=f"{name} in {wanted}")


def history(cw: Any, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"AlarmName": name, "ScanBy": "TimestampAscending"}
    if kind:
        params["HistoryItemType"] = kind
    return list(cw.describe_alarm_history(**params)["AlarmHistoryItems"])


def publish(cw: Any, *values: float) -> None:
    """Into the last whole minute (the one a 1-minute alarm evaluates), early enough in the
    current minute that it stays the last whole one while the test looks."""
    now = datetime.now(UTC)
    if now.second >= 45:
        time.sleep(61 - now.second)
    at = datetime.now(UTC) - timedelta(seconds=60)
    data = [{"MetricName": METRIC, "Dimensions": DIMS, "Value": v, "Timestamp": at} for v in values]
    cw.put_metric_data(Namespace=NS, MetricData=data)


ALARM = {
    "Namespace": NS,
    "MetricName": METRIC,
    "Dimensions": DIMS,
    "Statistic": "Average",
    "Period": 60,
    "EvaluationPeriods": 1,
    "Threshold": 5.0,
    "ComparisonOperator": "GreaterThanThreshold",
}


def test_invalid_requests_are_refused_with_precise_messages(cw: Any) -> None:
    put = cw.put_metric_alarm
    assert refused(put, AlarmName="a", **{**ALARM, "ComparisonOperator": "Bigger"}) == (
        400,
        "ValidationError",
        "1 validation error detected: Value 'Bigger' at 'comparisonOperator' failed to satisfy "
        "constraint: Member must satisfy enum value set: [GreaterThanOrEqualToThreshold, "
        "GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold, "
        "LessThanLowerOrGreaterThanUpperThreshold, LessThanLowerThreshold, "
        "GreaterThanUpperThreshold]",
    )
    no_threshold = {k: v for k, v in ALARM.items() if k != "Threshold"}
    assert refused(put, AlarmName="a", **no_threshold) == (
        400,
        "MissingParameter",
        "The request must contain the parameter Threshold (required for alarms on a static "
        "threshold).",
    )
    assert refused(put, AlarmName="a", **{**ALARM, "Period": 45}) == (
        400,
        "ValidationError",
        "Period 45 is not valid: it must be 10, 20, 30 or a multiple of 60 seconds.",
    )
    status, code, message = refused(
        put, AlarmName="a", **{**ALARM, "EvaluationPeriods": 2, "DatapointsToAlarm": 3}
    )
    assert (status, code) == (400, "ValidationError")
    assert message == "DatapointsToAlarm (3) must be less than or equal to EvaluationPeriods (2)."
    percentile = {
        **{k: v for k, v in ALARM.items() if k != "Statistic"},
        "ExtendedStatistic": "p99",
    }
    status, code, message = refused(put, AlarmName="a", **percentile)
    assert (status, code) == (400, "InvalidParameterValue")
    assert message.startswith("ExtendedStatistic: percentile statistics")
    status, code, message = refused(put, AlarmName="a", **ALARM, AlarmActions=["mailto:x@y"])
    assert (status, code) == (400, "ValidationError")
    assert "'mailto:x@y' for AlarmActions.member.1" in message
    assert refused(cw.set_alarm_state, AlarmName="ghost", StateValue="OK", StateReason="x") == (
        404,
        "ResourceNotFound",
        "1 alarm not found: [ghost].",
    )
    assert refused(cw.delete_alarms, AlarmNames=["ghost"])[:2] == (404, "ResourceNotFound")
    assert cw.describe_alarms()["MetricAlarms"] == []


def test_the_documented_example_runs(
    platform: Platform, cw: Any, hooks: Hooks, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    body = DOC.read_text()
    body = body[body.index("\n## Alarms\n") :]
    python = re.findall(r"```python\n(.*?)```", body, flags=re.S)
    shown = re.findall(r"```text\n(.*?)```", body, flags=re.S)
    bash = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    creds = platform.credentials()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", platform.url)  # as `pier env` exports
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # boto3's default session keeps the first credentials it found: start a fresh one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    code = python[0].replace("https://hooks.example.com/pier", f"{hooks.url}/doc")
    exec(compile(code, str(DOC), "exec"), {})
    assert capsys.readouterr().out == shown[0]
    # SetAlarmState's ALARM ran the webhook, and the next evaluation brought it back to OK.
    # Three notifications: the first evaluation's OK, the drill's ALARM, the next evaluation's
    # OK. Actions are delivered concurrently (as SNS does not order them either): the first OK
    # may arrive after the ALARM, so the order is the history's, checked below.
    wait_for(
        lambda: sorted(n["NewStateValue"] for n in hooks.got("/doc")) == ["ALARM", "OK", "OK"], 15
    )
    drill = [n for n in hooks.got("/doc") if n["NewStateValue"] == "ALARM"]
    assert [n["NewStateReason"] for n in drill] == ["checking the webhook"]
    updates = [json.loads(h["HistoryData"]) for h in history(cw, "diabetes-5xx", "StateUpdate")]
    assert [u["newState"]["stateValue"] for u in updates][-2:] == ["ALARM", "OK"]
    assert updates[-2]["newState"]["stateReason"] == "checking the webhook"
    assert updates[-1]["newState"]["stateReason"].startswith(
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing "
        "datapoints were treated as [NonBreaching]."
    )
    commands = [line.split("#")[0].split() for line in bash[0].splitlines() if line.strip()]
    outputs = [pier(platform, *argv[1:]) for argv in commands]
    assert "Invocation5XXErrors Sum > 5 for 2 of 3 periods of 1 min" in outputs[0]
    assert "the model fails requests" in outputs[1]
    assert "Alarm updated from ALARM to OK" in outputs[1]
    detail = json.loads(outputs[2])
    assert detail["AlarmName"] == "diabetes-5xx"
    assert {h["HistoryItemType"] for h in detail["History"]} == {
        "ConfigurationUpdate",
        "StateUpdate",
        "Action",
    }
    cw.delete_alarms(AlarmNames=["diabetes-5xx"])


def test_an_alarm_goes_to_alarm_and_back_running_its_actions(cw: Any, hooks: Hooks) -> None:
    good, bad = f"{hooks.url}/good", f"{hooks.url}/bad"
    cw.put_metric_alarm(
        AlarmName="e2e-errors",
        AlarmDescription="errors above 5 a minute",
        **ALARM,
        TreatMissingData="notBreaching",
        AlarmActions=[good, bad],
        OKActions=[good],
    )
    wait_state(cw, "e2e-errors", "OK")  # no data, not breaching
    publish(cw, 10.0)
    wait_state(cw, "e2e-errors", "ALARM")
    alarm = cw.describe_alarms(AlarmNames=["e2e-errors"])["MetricAlarms"][0]
    assert re.fullmatch(
        r"Threshold Crossed: 1 datapoint \[10\.0 \(\d\d/\d\d/\d\d \d\d:\d\d:00\)\] was greater "
        r"than the threshold \(5\.0\)\.",
        alarm["StateReason"],
    ), alarm["StateReason"]
    data = json.loads(alarm["StateReasonData"])
    assert (data["statistic"], data["period"], data["recentDatapoints"]) == ("Average", 60, [10.0])
    publish(cw, 0.0, 0.0, 0.0)  # the minute's average falls to 2.5 (or 0 in a new minute)
    wait_state(cw, "e2e-errors", "OK")

    updates = [h["HistorySummary"] for h in history(cw, "e2e-errors", "StateUpdate")]
    assert updates == [
        "Alarm updated from INSUFFICIENT_DATA to OK",
        "Alarm updated from OK to ALARM",
        "Alarm updated from ALARM to OK",
    ]
    wait_for(lambda: len(hooks.got("/bad")) == 3, 15, what="three tries of the failing webhook")
    wait_for(lambda: len(history(cw, "e2e-errors", "Action")) == 4, 15, what="4 actions")
    assert [n["NewStateValue"] for n in hooks.got("/good")] == ["OK", "ALARM", "OK"]
    note = hooks.got("/good")[1]
    assert (note["AlarmName"], note["OldStateValue"], note["AlarmDescription"]) == (
        "e2e-errors",
        "OK",
        "errors above 5 a minute",
    )
    assert note["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:000000000000:alarm:e2e-errors"
    assert note["Trigger"]["Statistic"] == "AVERAGE"
    assert note["Trigger"]["Dimensions"] == [{"value": "e2e", "name": "EndpointName"}]
    assert [n["NewStateValue"] for n in hooks.got("/bad")] == ["ALARM"] * 3
    actions = {
        h["HistorySummary"]: json.loads(h["HistoryData"])
        for h in history(cw, "e2e-errors", "Action")
    }
    failed = actions[f"Failed to execute action {bad}"]
    assert (failed["actionState"], failed["attempts"], failed["error"]) == ("Failed", 3, "HTTP 500")
    assert actions[f"Successfully executed action {good}"]["actionState"] == "Succeeded"


def test_set_alarm_state_holds_until_the_next_evaluation(cw: Any, hooks: Hooks) -> None:
    before = len(hooks.got("/good"))
    cw.set_alarm_state(AlarmName="e2e-errors", StateValue="ALARM", StateReason="drill")
    wait_for(lambda: len(hooks.got("/good")) == before + 2, 15, what="ALARM then OK webhooks")
    first = hooks.got("/good")[before]
    assert (first["NewStateValue"], first["NewStateReason"]) == ("ALARM", "drill")
    wait_state(cw, "e2e-errors", "OK")
    wait_for(lambda: len(hooks.got("/bad")) == 6, 15, what="the failing webhook's retries")
    # Actions disabled: the state still changes and is recorded, nothing is called.
    cw.disable_alarm_actions(AlarmNames=["e2e-errors"])
    calls = len(hooks.received)
    cw.set_alarm_state(AlarmName="e2e-errors", StateValue="ALARM", StateReason="quiet drill")
    wait_for(
        lambda: (
            history(cw, "e2e-errors", "StateUpdate")[-1]["HistorySummary"]
            == "Alarm updated from ALARM to OK"
        ),
        15,
    )
    reasons = [
        json.loads(h["HistoryData"])["newState"]["stateReason"]
        for h in history(cw, "e2e-errors", "StateUpdate")
    ]
    assert "quiet drill" in reasons
    assert len(hooks.received) == calls
    assert (
        cw.describe_alarms(AlarmNames=["e2e-errors"])["MetricAlarms"][0]["ActionsEnabled"] is False
    )
    cw.enable_alarm_actions(AlarmNames=["e2e-errors"])


def test_pier_alarms_lists_and_explains(platform: Platform, cw: Any, hooks: Hooks) -> None:
    listing = pier(platform, "alarms")
    line = next(row for row in listing.splitlines() if "e2e-errors" in row)
    assert "OK" in line
    assert "Errors Average > 5 for 1 period of 1 min" in line
    explained = pier(platform, "alarms", "e2e-errors")
    for words in (
        "errors above 5 a minute",
        "Pier/E2E Errors (EndpointName=e2e)",
        "at least 1 of the last 1 datapoints",
        "notBreaching: counted as within the threshold",
        "Alarm updated from ALARM to OK",
        f"Failed to execute action {hooks.url}/bad (HTTP 500)",
    ):
        assert words in explained, words
    every = json.loads(pier(platform, "alarms", "--history", "--json"))
    assert {h["AlarmName"] for h in every} >= {"e2e-errors", "diabetes-5xx"}
    listed = json.loads(pier(platform, "alarms", "--json"))
    assert [a["AlarmName"] for a in listed] == ["e2e-errors"]


def test_delete_alarms(platform: Platform, cw: Any) -> None:
    cw.delete_alarms(AlarmNames=["e2e-errors"])
    assert cw.describe_alarms()["MetricAlarms"] == []
    assert history(cw, "e2e-errors")[-1]["HistorySummary"] == 'Alarm "e2e-errors" deleted'
    assert "no alarms" in pier(platform, "alarms")
