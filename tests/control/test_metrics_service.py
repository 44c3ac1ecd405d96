"""pier.control.metrics_service on a SQLite store: the operations' rules and answers, and
CloudWatch's operations table (pier.platform.cloudwatch_api) over the services."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Engine, delete

from pier.contract import cloudwatch as wire
from pier.control import paging
from pier.control.metrics_service import CloudWatchMetricsService
from pier.errors import UnknownOperationException
from pier.platform.cloudwatch_api import cloudwatch_operations, metric_operations
from pier.store import db
from pier.store.metrics import MetricStore
from pier.store.tables import MetricPointRow
from tests.control.tokens import CRAFTED_TOKENS

NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
HOUR_AGO = NOW - timedelta(hours=1)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    e = db.create(f"sqlite:///{tmp_path_factory.mktemp('cw')}/pier.db")
    db.migrate(e)
    yield e
    e.dispose()


@pytest.fixture
def service(engine: Engine) -> CloudWatchMetricsService:
    with engine.begin() as conn:
        conn.execute(delete(MetricPointRow))
    return CloudWatchMetricsService(MetricStore(db.sessions(engine)), clock=lambda: NOW)


def call(service: CloudWatchMetricsService, operation: str, **params: Any) -> dict[str, Any]:
    """Through the wire contract's validation, as the platform calls it."""
    operations = cloudwatch_operations(metric_operations(service))
    return operations.handler(operation)(wire.validate_input(operation, params))


def put(service: CloudWatchMetricsService, name: str, minute: int, **datum: Any) -> None:
    at = NOW.replace(second=0) - timedelta(minutes=minute)
    call(service, "PutMetricData", Namespace="Custom", MetricData=[
        {"MetricName": name, "Dimensions": [{"Name": "Model", "Value": "m"}], "Timestamp": at,
         **datum}])  # fmt: skip


def test_put_then_statistics_and_data(service: CloudWatchMetricsService) -> None:
    put(service, "psi", 2, Value=0.5)
    put(service, "psi", 2, Values=[1.0, 3.0], Counts=[2.0, 1.0])
    put(service, "psi", 1, StatisticValues={"SampleCount": 4, "Sum": 2, "Minimum": 0.1,
                                            "Maximum": 0.9})  # fmt: skip
    dims = [{"Name": "Model", "Value": "m"}]
    stats = call(service, "GetMetricStatistics", Namespace="Custom", MetricName="psi",
                 Dimensions=dims, StartTime=HOUR_AGO, EndTime=NOW, Period=60,
                 Statistics=["SampleCount", "Average", "Sum", "Minimum", "Maximum"])  # fmt: skip
    assert stats["Label"] == "psi"
    first, second = stats["Datapoints"]
    assert first == {"Timestamp": NOW.replace(second=0) - timedelta(minutes=2), "Unit": "None",
                     "SampleCount": 4, "Average": 5.5 / 4, "Sum": 5.5, "Minimum": 0.5,
                     "Maximum": 3.0}  # fmt: skip
    assert (second["SampleCount"], second["Sum"], second["Minimum"]) == (4, 2, 0.1)

    data = call(service, "GetMetricData", StartTime=HOUR_AGO, EndTime=NOW, MetricDataQueries=[
        {"Id": "a", "MetricStat": {"Metric": {"Namespace": "Custom", "MetricName": "psi",
         "Dimensions": dims}, "Period": 3600, "Stat": "Maximum"}, "Label": "worst"},
        {"Id": "b", "MetricStat": {"Metric": {"Namespace": "Custom", "MetricName": "psi",
         "Dimensions": dims}, "Period": 60, "Stat": "SampleCount"}},
        {"Id": "c", "MetricStat": {"Metric": {"Namespace": "Custom", "MetricName": "psi"},
         "Period": 60, "Stat": "Sum"}, "ReturnData": False},
    ])  # fmt: skip
    a, b = data["MetricDataResults"]
    assert (a["Id"], a["Label"], a["Values"], a["StatusCode"]) == ("a", "worst", [3.0], "Complete")
    assert a["Timestamps"] == [HOUR_AGO.replace(second=0)]
    assert b["Label"] == "psi"
    assert b["Values"] == [4, 4]  # newest first by default
    assert b["Timestamps"][0] > b["Timestamps"][1]


def test_get_metric_data_pages_by_max_datapoints(service: CloudWatchMetricsService) -> None:
    for m in range(1, 6):
        put(service, "x", m, Value=m)
    metric = {"Namespace": "Custom", "MetricName": "x",
              "Dimensions": [{"Name": "Model", "Value": "m"}]}  # fmt: skip
    query = [{"Id": "q", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}]
    seen: list[float] = []
    token: dict[str, str] = {}
    for _ in range(3):
        page = call(service, "GetMetricData", StartTime=HOUR_AGO, EndTime=NOW,
                    MetricDataQueries=query, MaxDatapoints=2, **token)  # fmt: skip
        seen += page["MetricDataResults"][0]["Values"]
        if "NextToken" not in page:
            break
        assert page["MetricDataResults"][0]["StatusCode"] == "PartialData"
        token = {"NextToken": page["NextToken"]}
    assert seen == [1, 2, 3, 4, 5]


def test_get_metric_data_pages_resume_after_the_last_datapoint_served(
    service: CloudWatchMetricsService,
) -> None:
    """Newest first, a datapoint arriving between pages (a newer minute) does not push one
    already served into the next page: the token marks the last timestamp, not a count."""
    for m in range(2, 6):
        put(service, "x", m, Value=m)
    metric = {"Namespace": "Custom", "MetricName": "x",
              "Dimensions": [{"Name": "Model", "Value": "m"}]}  # fmt: skip
    query = [{"Id": "q", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}]
    first = call(service, "GetMetricData", StartTime=HOUR_AGO, EndTime=NOW,
                 MetricDataQueries=query, MaxDatapoints=2)  # fmt: skip
    assert first["MetricDataResults"][0]["Values"] == [2, 3]
    put(service, "x", 1, Value=1)
    rest = call(service, "GetMetricData", StartTime=HOUR_AGO, EndTime=NOW,
                MetricDataQueries=query, MaxDatapoints=2, NextToken=first["NextToken"])  # fmt: skip
    assert rest["MetricDataResults"][0]["Values"] == [4, 5]
    assert "NextToken" not in rest


def test_list_metrics(service: CloudWatchMetricsService) -> None:
    put(service, "psi", 1, Value=1)
    put(service, "psi", 200, Value=1)  # 200 minutes ago: not "recently active"
    call(service, "PutMetricData", Namespace="Other", MetricData=[{"MetricName": "k", "Value": 1}])
    listed = call(service, "ListMetrics")["Metrics"]
    model = [{"Name": "Model", "Value": "m"}]
    assert listed == [
        {"Namespace": "Custom", "MetricName": "psi", "Dimensions": model},
        {"Namespace": "Other", "MetricName": "k", "Dimensions": []},
    ]
    assert call(service, "ListMetrics", Dimensions=[{"Name": "Model"}])["Metrics"] == listed[:1]
    assert len(call(service, "ListMetrics", RecentlyActive="PT3H")["Metrics"]) == 2
    with pytest.raises(wire.InvalidParameterValue, match="NextToken"):
        call(service, "ListMetrics", NextToken="garbage")


def _put(*data: dict[str, Any], namespace: str = "n") -> tuple[str, dict[str, Any]]:
    return "PutMetricData", {"Namespace": namespace, "MetricData": [
        {"MetricName": "a", **d} for d in data]}  # fmt: skip


def _stats(**given: Any) -> tuple[str, dict[str, Any]]:
    params = {"Namespace": "n", "MetricName": "m", "StartTime": HOUR_AGO, "EndTime": NOW,
              "Period": 60, "Statistics": ["Sum"]}  # fmt: skip
    params.update(given)
    return "GetMetricStatistics", {k: v for k, v in params.items() if v is not None}


def _data(*queries: dict[str, Any], start: datetime = HOUR_AGO) -> tuple[str, dict[str, Any]]:
    return "GetMetricData", {"StartTime": start, "EndTime": NOW,
                             "MetricDataQueries": list(queries)}  # fmt: skip


ONE = {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}
METRIC = {"Namespace": "n", "MetricName": "m"}
TOO_OLD = NOW - timedelta(days=15)


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (_put({"Value": 1}, namespace="AWS/SageMaker"), wire.InvalidParameterValue,
         "The value AWS/SageMaker for parameter Namespace is invalid"),
        (_put({"Value": float("nan")}), wire.InvalidParameterValue,
         r"The value NaN for parameter MetricData.member.1.Value is invalid\."),
        (_put({"Value": 1, "StatisticValues": ONE}), wire.InvalidParameterCombination,
         "are mutually exclusive"),
        (_put({}), wire.MissingParameter, r"MetricData.member.1.Value is required"),
        (("PutMetricData", {"Namespace": "n"}), wire.MissingParameter, "MetricData is required"),
        (_put({"Values": [1, 2], "Counts": [1]}), wire.InvalidParameterValue,
         "must be of the same size"),
        (_put({"Value": 1, "Timestamp": TOO_OLD}), wire.InvalidParameterValue, "two weeks"),
        (_stats(Statistics=None), wire.InvalidParameterCombination, "Statistics or Extended"),
        (_stats(ExtendedStatistics=["p99"]), wire.InvalidParameterValue, "percentiles"),
        (_stats(StartTime=NOW, EndTime=HOUR_AGO), wire.InvalidParameterValue,
         "StartTime must be less than"),
        (_stats(Period=90), wire.InvalidParameterValue, "multiple of 60"),
        (_stats(StartTime=NOW - timedelta(days=2)), wire.InvalidParameterCombination,
         r"You have requested up to 2,881 datapoints, which exceeds the limit of 1,440\."),
        (_data({"Id": "a"}, start=NOW + timedelta(hours=1)), wire.ValidationError,
         "EndTime must be greater than StartTime"),
        (_data({"Id": "a"}), wire.ValidationError,
         r"MetricDataQueries.member.1.MetricStat is required"),
        (_data({"Id": "a", "Expression": "SUM(METRICS())"}), wire.ValidationError, "metric math"),
        (_data({"Id": "A", "Expression": "x"}), wire.ValidationError,
         "starts with a lowercase letter"),
        (_data({"Id": "a", "MetricStat": {"Metric": METRIC, "Period": 60, "Stat": "p99"}}),
         wire.InvalidParameterValue, "no percentiles"),
    ],
)  # fmt: skip
def test_refusals(
    service: CloudWatchMetricsService,
    request_: tuple[str, dict[str, Any]],
    error: type[Exception],
    message: str,
) -> None:
    operation, params = request_
    with pytest.raises(error, match=message):
        call(service, operation, **params)


def test_the_table_finds_operations_of_every_service(service: CloudWatchMetricsService) -> None:
    def describe_alarms(params: dict[str, Any]) -> dict[str, Any]:
        return {"MetricAlarms": []}

    with pytest.raises(UnknownOperationException, match="not DescribeAlarms"):
        cloudwatch_operations(metric_operations(service)).handler("DescribeAlarms")
    operations = cloudwatch_operations(
        metric_operations(service), {"DescribeAlarms": describe_alarms}
    )
    assert operations.handler("DescribeAlarms")({}) == {"MetricAlarms": []}
    assert operations.names() == [
        "DescribeAlarms", "GetMetricData", "GetMetricStatistics", "ListMetrics", "PutMetricData",
    ]  # fmt: skip
    with pytest.raises(UnknownOperationException) as caught:
        operations.handler("DescribeAnomalyDetectors")
    assert caught.value.message == (
        "The requested operation is not recognized by the service. pier implements "
        "DescribeAlarms, GetMetricData, GetMetricStatistics, ListMetrics, PutMetricData of "
        "CloudWatch, not DescribeAnomalyDetectors."
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=CRAFTED_TOKENS)
def test_a_crafted_token_is_invalid_parameter_value(
    service: CloudWatchMetricsService, token: str
) -> None:
    """Any NextToken pier did not write is CloudWatch's 400, in each operation's words."""
    put(service, "x", 2, Value=1)
    metric = {"Namespace": "Custom", "MetricName": "x",
              "Dimensions": [{"Name": "Model", "Value": "m"}]}  # fmt: skip
    query = [{"Id": "q", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}]
    for operation, params in [
        ("ListMetrics", {}),
        ("GetMetricData", {"StartTime": HOUR_AGO, "EndTime": NOW, "MetricDataQueries": query}),
    ]:
        refused: wire.CloudWatchError | None = None
        try:
            call(service, operation, NextToken=token, **params)
        except wire.CloudWatchError as exc:
            refused = exc
        if refused is not None:
            assert refused.status == 400, refused
            if "NextToken" in refused.message:
                assert refused.code == "InvalidParameterValue"


def test_a_token_of_two_keys_is_not_a_pair(service: CloudWatchMetricsService) -> None:
    metric = {"Namespace": "Custom", "MetricName": "x"}
    query = [{"Id": "q", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}]
    token = paging.encode({"0": 1, NOW.isoformat(): 2})
    with pytest.raises(wire.InvalidParameterValue, match="NextToken"):
        call(service, "GetMetricData", StartTime=HOUR_AGO, EndTime=NOW,
             MetricDataQueries=query, NextToken=token)  # fmt: skip
