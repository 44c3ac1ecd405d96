"""CloudWatch's alarm operations on a SQLite store (no platform): what each operation keeps,
returns and refuses. The wire and the evaluation loop are tests/e2e/test_alarms.py's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from pier.contract.cloudwatch import CloudWatchError, validate_input
from pier.control import paging
from pier.control.alarm_service import CloudWatchAlarmService
from pier.monitor.alarms.runner import AlarmTransition
from pier.store import db
from pier.store.alarms import AlarmStore
from tests.control.tokens import CRAFTED_TOKENS

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


class FakeRunner:
    def __init__(self) -> None:
        self.woken = 0
        self.submitted: list[AlarmTransition] = []

    def wake(self) -> None:
        self.woken += 1

    def submit(self, t: AlarmTransition) -> None:
        self.submitted.append(t)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def env(tmp_path: Any) -> Iterator[tuple[CloudWatchAlarmService, FakeRunner]]:
    engine = db.create(f"sqlite:///{tmp_path}/pier.db")
    db.migrate(engine)
    runner = FakeRunner()
    service = CloudWatchAlarmService(
        AlarmStore(db.sessions(engine)), runner,  # type: ignore[arg-type]
        region="eu-west-1", account="123456789012", clock=Clock(), max_alarms=4,
    )  # fmt: skip
    yield service, runner
    engine.dispose()


def call(service: CloudWatchAlarmService, operation: str, **params: Any) -> dict[str, Any]:
    """As the platform calls it: the input checked against botocore's model first."""
    checked = validate_input(operation, params)
    method = "".join(
        f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(operation)
    )
    result: dict[str, Any] = getattr(service, method)(checked)
    return result


def put(service: CloudWatchAlarmService, name: str, **overrides: Any) -> None:
    params: dict[str, Any] = {
        "AlarmName": name,
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors",
        "Dimensions": [{"Name": "EndpointName", "Value": "diabetes"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": 5,
        "ComparisonOperator": "GreaterThanThreshold",
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    params.update(overrides)
    call(service, "PutMetricAlarm", **{k: v for k, v in params.items() if v is not None})


def test_put_describe_and_update_keep_the_state(
    env: tuple[CloudWatchAlarmService, FakeRunner],
) -> None:
    service, runner = env
    put(service, "errors", AlarmDescription="5xx", OKActions=["https://hooks.example/ok"])
    assert runner.woken == 1
    [alarm] = call(service, "DescribeAlarms")["MetricAlarms"]
    assert alarm["AlarmArn"] == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:errors"
    assert (alarm["StateValue"], alarm["StateReason"]) == (
        "INSUFFICIENT_DATA",
        "Unchecked: Initial alarm creation",
    )
    assert alarm["ActionsEnabled"] is True
    assert alarm["OKActions"] == ["https://hooks.example/ok"]
    assert (alarm["Threshold"], alarm["DatapointsToAlarm"], alarm["AlarmDescription"]) == (
        5.0,
        2,
        "5xx",
    )
    assert "Tags" not in alarm
    call(service, "SetAlarmState", AlarmName="errors", StateValue="ALARM", StateReason="drill")
    put(service, "errors", Threshold=9)
    [after] = call(service, "DescribeAlarms")["MetricAlarms"]
    assert (after["StateValue"], after["Threshold"]) == ("ALARM", 9.0)
    assert after["AlarmConfigurationUpdatedTimestamp"] > alarm["AlarmConfigurationUpdatedTimestamp"]
    history = call(service, "DescribeAlarmHistory", AlarmName="errors", ScanBy="TimestampAscending")
    items = history["AlarmHistoryItems"]
    assert [(i["HistoryItemType"], i["HistorySummary"]) for i in items] == [
        ("ConfigurationUpdate", 'Alarm "errors" created'),
        ("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM"),
        ("ConfigurationUpdate", 'Alarm "errors" updated'),
    ]
    update = json.loads(items[2]["HistoryData"])
    assert (update["type"], update["originalUpdatedAlarm"]["Threshold"]) == ("Update", 5.0)
    assert update["updatedAlarm"]["Threshold"] == 9.0


@pytest.mark.parametrize(
    ("overrides", "code", "words"),
    [
        ({"ExtendedStatistic": "p99", "Statistic": None}, "InvalidParameterValue", "percentile"),
        ({"Threshold": None}, "MissingParameter", "Threshold"),
        ({"DatapointsToAlarm": 5}, "ValidationError", "less than or equal"),
        ({"Period": 90}, "ValidationError", "multiple of 60"),
        ({"AlarmActions": ["mailto:ops@example.com"]}, "ValidationError", "AlarmActions.member.1"),
        ({"AlarmName": "tab\there"}, "InvalidParameterValue", "control characters"),
        (
            {"ComparisonOperator": "GreaterThanUpperThreshold"},
            "InvalidParameterValue",
            "anomaly-detection",
        ),
    ],
)
def test_put_refuses_with_cloudwatch_codes(
    env: tuple[CloudWatchAlarmService, FakeRunner], overrides: dict[str, Any], code: str, words: str
) -> None:
    service, _ = env
    with pytest.raises(CloudWatchError) as info:
        put(service, "bad", **overrides)
    assert info.value.code == code
    assert words in info.value.message
    assert call(service, "DescribeAlarms")["MetricAlarms"] == []


def test_limit_exceeded(env: tuple[CloudWatchAlarmService, FakeRunner]) -> None:
    service, _ = env
    for i in range(4):
        put(service, f"a{i}")
    with pytest.raises(CloudWatchError) as info:
        put(service, "a4")
    assert (info.value.code, info.value.status) == ("LimitExceeded", 400)
    put(service, "a0", Threshold=1)  # updating an existing one is not a new alarm


def test_describe_filters_and_pages(env: tuple[CloudWatchAlarmService, FakeRunner]) -> None:
    service, _ = env
    for name in ("api-5xx", "api-4xx", "drift_%", "latency"):
        put(service, name, AlarmActions=["arn:aws:sns:eu-west-1:123456789012:ops"])
    call(service, "SetAlarmState", AlarmName="latency", StateValue="ALARM", StateReason="x")

    def names(**params: Any) -> list[str]:
        return [a["AlarmName"] for a in call(service, "DescribeAlarms", **params)["MetricAlarms"]]

    assert names() == ["api-4xx", "api-5xx", "drift_%", "latency"]
    assert names(AlarmNamePrefix="api-") == ["api-4xx", "api-5xx"]
    assert names(AlarmNamePrefix="drift_") == ["drift_%"]  # no LIKE wildcards
    assert names(AlarmNames=["latency", "nope"]) == ["latency"]
    assert len(names(AlarmNames=[])) == 4
    assert names(StateValue="ALARM") == ["latency"]
    assert names(ActionPrefix="arn:aws:sns") == ["api-4xx", "api-5xx", "drift_%", "latency"]
    assert names(AlarmTypes=["CompositeAlarm"]) == []
    first = call(service, "DescribeAlarms", MaxRecords=3)
    assert len(first["MetricAlarms"]) == 3
    rest = call(service, "DescribeAlarms", MaxRecords=3, NextToken=first["NextToken"])
    assert [a["AlarmName"] for a in rest["MetricAlarms"]] == ["latency"]
    assert "NextToken" not in rest
    with pytest.raises(CloudWatchError) as info:
        call(service, "DescribeAlarms", AlarmNames=["a"], AlarmNamePrefix="a")
    assert info.value.code == "InvalidParameterCombination"
    with pytest.raises(CloudWatchError) as bad_token:
        call(service, "DescribeAlarms", NextToken="garbage")
    assert bad_token.value.code == "InvalidNextToken"
    dims = [{"Name": "EndpointName", "Value": "diabetes"}]
    found = call(
        service, "DescribeAlarmsForMetric", Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors", Dimensions=dims,
    )  # fmt: skip
    assert len(found["MetricAlarms"]) == 4
    none = call(
        service, "DescribeAlarmsForMetric", Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
    )  # fmt: skip
    assert none["MetricAlarms"] == []


def test_set_alarm_state(env: tuple[CloudWatchAlarmService, FakeRunner]) -> None:
    service, runner = env
    put(service, "errors")
    data = json.dumps({"drill": True})
    call(
        service, "SetAlarmState", AlarmName="errors", StateValue="ALARM",
        StateReason="fire drill", StateReasonData=data,
    )  # fmt: skip
    [t] = runner.submitted
    assert (t.old_state, t.new_state, t.reason, t.reason_data, t.source) == (
        "INSUFFICIENT_DATA",
        "ALARM",
        "fire drill",
        {"drill": True},
        "SetAlarmState",
    )
    [alarm] = call(service, "DescribeAlarms")["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"], alarm["StateReasonData"]) == (
        "ALARM",
        "fire drill",
        data,
    )
    call(service, "SetAlarmState", AlarmName="errors", StateValue="ALARM", StateReason="again")
    assert len(runner.submitted) == 1  # same state: the reason only, no transition
    with pytest.raises(CloudWatchError) as bad:
        call(service, "SetAlarmState", AlarmName="errors", StateValue="OK", StateReason="x",
             StateReasonData="{not json")  # fmt: skip
    assert (bad.value.code, bad.value.status) == ("InvalidFormat", 400)
    with pytest.raises(CloudWatchError) as missing:
        call(service, "SetAlarmState", AlarmName="nope", StateValue="OK", StateReason="x")
    assert (missing.value.code, missing.value.status) == ("ResourceNotFound", 404)


def test_actions_enabled_toggles(env: tuple[CloudWatchAlarmService, FakeRunner]) -> None:
    service, _ = env
    put(service, "errors")
    call(service, "DisableAlarmActions", AlarmNames=["errors", "unknown"])
    assert call(service, "DescribeAlarms")["MetricAlarms"][0]["ActionsEnabled"] is False
    call(service, "EnableAlarmActions", AlarmNames=["errors"])
    assert call(service, "DescribeAlarms")["MetricAlarms"][0]["ActionsEnabled"] is True


def test_delete_all_or_none_and_history_stays(
    env: tuple[CloudWatchAlarmService, FakeRunner],
) -> None:
    service, _ = env
    put(service, "a")
    put(service, "b")
    with pytest.raises(CloudWatchError) as info:
        call(service, "DeleteAlarms", AlarmNames=["a", "ghost"])
    assert (info.value.code, info.value.message) == (
        "ResourceNotFound",
        "1 alarm not found: [ghost].",
    )
    assert len(call(service, "DescribeAlarms")["MetricAlarms"]) == 2
    call(service, "DeleteAlarms", AlarmNames=["a", "b"])
    assert call(service, "DescribeAlarms")["MetricAlarms"] == []
    items = call(service, "DescribeAlarmHistory", AlarmName="a")["AlarmHistoryItems"]
    assert items[0]["HistorySummary"] == 'Alarm "a" deleted'
    assert json.loads(items[0]["HistoryData"])["type"] == "Delete"


def test_history_pages_newest_first_repeat_nothing_written_meanwhile(
    env: tuple[CloudWatchAlarmService, FakeRunner],
) -> None:
    """The token marks the last entry served: entries written between two pages (newer
    ones, at the head of a newest-first list) do not push an entry served into the next page."""
    service, _ = env
    put(service, "a")
    for state in ("OK", "ALARM"):
        call(service, "SetAlarmState", AlarmName="a", StateValue=state, StateReason=state)
    first = call(service, "DescribeAlarmHistory", AlarmName="a", MaxRecords=2)
    call(service, "SetAlarmState", AlarmName="a", StateValue="OK", StateReason="later")
    rest = call(
        service, "DescribeAlarmHistory", AlarmName="a", MaxRecords=2, NextToken=first["NextToken"]
    )
    assert [i["HistorySummary"] for i in first["AlarmHistoryItems"]] == [
        "Alarm updated from OK to ALARM",
        "Alarm updated from INSUFFICIENT_DATA to OK",
    ]
    # An offset would serve "INSUFFICIENT_DATA to OK" again, pushed down by the newer entry.
    assert [i["HistorySummary"] for i in rest["AlarmHistoryItems"]] == ['Alarm "a" created']
    assert "NextToken" not in rest


def test_history_filters_and_pages(env: tuple[CloudWatchAlarmService, FakeRunner]) -> None:
    service, _ = env
    put(service, "a")
    for state in ("OK", "ALARM", "OK"):
        call(service, "SetAlarmState", AlarmName="a", StateValue=state, StateReason=state)
    updates = call(service, "DescribeAlarmHistory", AlarmName="a", HistoryItemType="StateUpdate")
    assert [i["HistorySummary"] for i in updates["AlarmHistoryItems"]] == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from OK to ALARM",
        "Alarm updated from INSUFFICIENT_DATA to OK",
    ]
    page = call(service, "DescribeAlarmHistory", AlarmName="a", MaxRecords=2)
    assert len(page["AlarmHistoryItems"]) == 2
    rest = call(
        service, "DescribeAlarmHistory", AlarmName="a", MaxRecords=2, NextToken=page["NextToken"]
    )
    assert len(rest["AlarmHistoryItems"]) == 2
    assert "NextToken" not in rest
    window = call(
        service, "DescribeAlarmHistory", StartDate=T0 + timedelta(seconds=3),
        EndDate=T0 + timedelta(seconds=4),
    )  # fmt: skip
    assert len(window["AlarmHistoryItems"]) == 2
    with pytest.raises(CloudWatchError):
        call(service, "DescribeAlarmHistory", StartDate=T0 + timedelta(1), EndDate=T0)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=CRAFTED_TOKENS)
def test_a_crafted_token_is_invalid_next_token(
    env: tuple[CloudWatchAlarmService, FakeRunner], token: str
) -> None:
    service, _ = env
    if not call(service, "DescribeAlarms")["MetricAlarms"]:
        put(service, "errors")
    for operation in ("DescribeAlarms", "DescribeAlarmHistory"):
        refused: CloudWatchError | None = None
        try:
            call(service, operation, NextToken=token)
        except CloudWatchError as exc:
            refused = exc
        if refused is not None:
            assert refused.status == 400, refused
            if "NextToken" in refused.message:
                assert refused.code == "InvalidNextToken"


def test_a_history_token_of_two_keys_is_not_a_pair(
    env: tuple[CloudWatchAlarmService, FakeRunner],
) -> None:
    service, _ = env
    token = paging.encode({T0.isoformat(): 1, "5": 2})
    with pytest.raises(CloudWatchError) as bad_token:
        call(service, "DescribeAlarmHistory", NextToken=token)
    assert bad_token.value.code == "InvalidNextToken"
