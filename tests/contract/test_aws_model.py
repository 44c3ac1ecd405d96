"""pier.contract.aws_model: one walk over botocore's models, its dialects told apart.

The same model walked in two dialects answers the same input in each one's words; the wire
tests (test_sagemaker_validation, test_cloudwatch_wire) pin each service's dialect end to end.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from pier.contract import cloudwatch
from pier.contract.aws_model import MAX_REPORTED_ERRORS, ServiceModel, java_float
from pier.contract.cloudwatch import ValidationError
from pier.contract.coral_json import JSON_1_1
from pier.errors import AwsError, SerializationException, ValidationException

CLOUDWATCH = ServiceModel("cloudwatch")
SAGEMAKER = ServiceModel("sagemaker")
T = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Missing(AwsError):
    code = "MissingParameter"


def _wrong(value: Any, kind: str, path: str) -> SerializationException:
    return SerializationException(f"{kind} at {path or 'input'}")


def _raw(value: Any, kind: str) -> Any:
    return value


#: A dialect that names query paths and reports a missing member on its own, as CloudWatch's.
QUERY = replace(
    JSON_1_1,
    wrong_type=_wrong,
    missing=lambda path: Missing(path),
    string_booleans=False,
    write_scalar=_raw,
)


def test_a_missing_member_is_a_violation_in_coral_and_an_error_of_its_own_in_query() -> None:
    data = {"Namespace": "n", "MetricData": [{"MetricName": "a"}, {}]}
    with pytest.raises(ValidationException) as coral:
        CLOUDWATCH.validate(data, "PutMetricDataInput", JSON_1_1)
    assert coral.value.message == (
        "1 validation error detected: Value null at 'metricData.2.member.metricName' failed to "
        "satisfy constraint: Member must not be null"
    )
    with pytest.raises(Missing) as query:
        CLOUDWATCH.validate(data, "PutMetricDataInput", QUERY)
    assert query.value.message == "MetricData.member.2.MetricName"


def test_a_missing_member_comes_before_the_other_violations_in_query() -> None:
    data = {"Namespace": ":bad", "MetricName": "m", "Period": 60}
    with pytest.raises(Missing, match=r"^StartTime$"):
        CLOUDWATCH.validate(data, "GetMetricStatisticsInput", QUERY)


def test_a_type_error_is_worded_by_the_dialect_with_the_query_path() -> None:
    data = {"Namespace": "n", "MetricData": [{"MetricName": "a", "Value": "one"}]}
    with pytest.raises(SerializationException) as coral:
        CLOUDWATCH.validate(data, "PutMetricDataInput", JSON_1_1)
    assert coral.value.message == "class java.lang.String can not be converted to an Double"
    with pytest.raises(SerializationException) as query:
        CLOUDWATCH.validate(data, "PutMetricDataInput", QUERY)
    assert query.value.message == "double at MetricData.member.1.Value"
    with pytest.raises(SerializationException, match=r"^structure at input$"):
        CLOUDWATCH.validate([], "PutMetricDataInput", QUERY)


def test_string_booleans_are_coral_s_leniency() -> None:
    data = {"MetricName": "m", "RecentlyActive": "PT3H", "IncludeLinkedAccounts": "TRUE"}
    assert CLOUDWATCH.validate(data, "ListMetricsInput", JSON_1_1)["IncludeLinkedAccounts"]
    with pytest.raises(SerializationException, match=r"^boolean at IncludeLinkedAccounts$"):
        CLOUDWATCH.validate(data, "ListMetricsInput", QUERY)


def test_timestamps_are_read_and_written_by_the_dialect() -> None:
    as_datetime = replace(QUERY, read_timestamp=lambda v, _: datetime.fromtimestamp(v, UTC))
    data = {"Namespace": "n", "MetricName": "m", "StartTime": T.timestamp(), "EndTime": 0,
            "Period": 60, "Statistics": ["Sum"]}  # fmt: skip
    assert CLOUDWATCH.validate(data, "GetMetricStatisticsInput", JSON_1_1)["StartTime"] == (
        T.timestamp()  # Coral keeps the epoch seconds botocore sends
    )
    assert CLOUDWATCH.validate(data, "GetMetricStatisticsInput", as_datetime)["StartTime"] == T
    out = {"Label": "m", "Datapoints": [{"Timestamp": T, "Sum": 1.0}]}
    assert CLOUDWATCH.write(out, "GetMetricStatisticsOutput", JSON_1_1) == {
        "Label": "m",
        "Datapoints": [{"Timestamp": T.timestamp(), "Sum": 1.0}],
    }
    assert CLOUDWATCH.write(out, "GetMetricStatisticsOutput", QUERY) == out


def test_writing_drops_none_and_members_the_model_lacks() -> None:
    out = {"Label": None, "Datapoints": [], "Extra": 1}
    assert CLOUDWATCH.write(out, "GetMetricStatisticsOutput", QUERY) == {"Datapoints": []}


def test_the_constraint_error_is_the_dialect_s() -> None:
    class Invalid(AwsError):
        code = "ValidationError"

    data = {"Namespace": "n", "MetricName": "", "StartTime": 0, "EndTime": 0, "Period": 60,
            "Statistics": ["Sum"]}  # fmt: skip
    with pytest.raises(Invalid, match=r"^1 validation error detected: Value '' at 'metricName'"):
        CLOUDWATCH.validate(data, "GetMetricStatisticsInput", replace(QUERY, invalid=Invalid))


def test_at_most_ten_violations_are_listed_with_the_full_count() -> None:
    names = [{"Name": "", "Value": "v"}] * 12
    data = {"Namespace": "n", "MetricName": "m", "Dimensions": names[:30]}
    with pytest.raises(ValidationException) as caught:
        CLOUDWATCH.validate(data, "ListMetricsInput", JSON_1_1)
    assert caught.value.message.startswith(f"{MAX_REPORTED_ERRORS} validation errors detected")
    assert caught.value.message.count("failed to satisfy") == MAX_REPORTED_ERRORS


def test_unions_need_exactly_one_member_in_every_dialect() -> None:
    for dialect in (JSON_1_1, QUERY):
        with pytest.raises(ValidationException, match="Member must have exactly one member set"):
            SAGEMAKER.validate({}, "WorkloadSpec", dialect)


def test_relaxed_shapes_skip_their_pattern_only() -> None:
    strict = ServiceModel("sagemaker")
    relaxed = ServiceModel("sagemaker", relaxed_patterns=frozenset({"Url"}))
    assert any("pattern" in text for text, _ in strict.rules("Url"))
    assert not any("pattern" in text for text, _ in relaxed.rules("Url"))
    texts = [text for text, _ in relaxed.rules("ModelName")]
    assert texts == [text for text, _ in strict.rules("ModelName")]
    assert any("pattern" in text for text in texts)


def test_values_are_shown_as_java_shows_them() -> None:
    dims = [{"Value": "v", "Name": "n"}]  # model order, not the order sent
    assert CLOUDWATCH.render(dims, "Dimensions") == "[{Name=n, Value=v}]"
    assert CLOUDWATCH.render([1e20, 0.5, True], "Values") == "[1.0E20, 0.5, true]"
    assert java_float(1e-4, single=False) == "1.0E-4"
    assert java_float(0.1, single=True) == "0.1"
    assert java_float(-0.0, single=False) == "-0.0"
    assert java_float(math.inf, single=False) == "Infinity"


def test_integers_beyond_a_double_are_read_not_crashed_on() -> None:
    with pytest.raises(ValidationError, match="Member must have value less than or equal"):
        cloudwatch.validate_input("DescribeAlarms", {"MaxRecords": 10**400})
    # Coral (JSON 1.1) holds integers in Java's int: beyond it is a type error, not a range one
    with pytest.raises(SerializationException, match="can not be converted to an Integer"):
        CLOUDWATCH.validate({"MaxRecords": 10**400}, "DescribeAlarmsInput", JSON_1_1)
    with pytest.raises(SerializationException, match=r"^Timestamp out of range at 'StartDate'"):
        cloudwatch.validate_input("DescribeAlarmHistory", {"StartDate": 10**400})
    with pytest.raises(SerializationException, match=r"^Expected timestamp at 'StartDate'"):
        cloudwatch.validate_input("DescribeAlarmHistory", {"StartDate": math.nan})
