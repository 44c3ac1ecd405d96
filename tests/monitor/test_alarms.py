"""pier.monitor.alarms.alarms against CloudWatch's documented behaviour.

The two tables of the CloudWatch User Guide ("How alarm state is evaluated when data is
missing", Period 5 min, evaluation range 5): rows are the 5 most recent datapoints, oldest
first; 0 is a non-breaching datapoint, X a breaching one, - a missing one. "retain" is the
guide's "Retain current state".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pier.monitor.alarms.alarms import (
    AlarmRule,
    AlarmRuleError,
    AlarmState,
    Comparison,
    MissingData,
    Slot,
    Statistic,
    _java_double,
    condition_in_words,
    evaluate,
    period_starts,
    rule_from_request,
)

OK, ALARM, INSUFFICIENT = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
QUERY = T0 + timedelta(minutes=25, seconds=16, milliseconds=437)
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


def rule(m: int = 3, n: int = 3, treat: str = "missing", **overrides: Any) -> AlarmRule:
    fields: dict[str, Any] = {
        "namespace": "AWS/SageMaker",
        "metric_name": "Invocation5XXErrors",
        "dimensions": (("EndpointName", "diabetes"), ("VariantName", "primary")),
        "statistic": Statistic.SUM,
        "period": 300,
        "evaluation_periods": n,
        "datapoints_to_alarm": m,
        "threshold": 1.0,
        "comparison": Comparison.GREATER,
        "treat_missing_data": MissingData(treat),
    }
    fields.update(overrides)
    return AlarmRule(**fields)


def slots(row: str, period: int = 300) -> list[Slot]:
    """'0 - X - X' → slots of consecutive periods from T0; 0 → 0.0, X → 5.0, - → missing."""
    values = {"0": 0.0, "X": 5.0, "-": None}
    return [
        Slot(T0 + timedelta(seconds=period * i), values[c], None if c == "-" else 1.0)
        for i, c in enumerate(row.split())
    ]


def state_of(row: str, m: int, n: int, treat: str, current: AlarmState) -> AlarmState:
    return evaluate(rule(m, n, treat), slots(row), current, QUERY).state


# Datapoints to Alarm 3, Evaluation Periods 3 (the guide's first table).
THREE_OF_THREE = [
    ("0 - X - X", OK, OK, OK, OK),
    ("0 - - - -", OK, OK, OK, OK),
    ("- - - - -", INSUFFICIENT, "retain", ALARM, OK),
    ("0 X X - X", ALARM, ALARM, ALARM, ALARM),
    ("- - X - -", ALARM, "retain", ALARM, OK),  # premature-alarm logic, for `missing`
]
# Datapoints to Alarm 2, Evaluation Periods 3 (the guide's second table).
TWO_OF_THREE = [
    ("0 - X - X", ALARM, ALARM, ALARM, ALARM),
    ("0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    ("0 - X - -", OK, OK, ALARM, OK),
    ("- - - - 0", OK, OK, ALARM, OK),
    ("- - - X -", ALARM, "retain", ALARM, OK),
]
# The guide's text on premature transitions (3 of 3): `- - - - X` and `- - - X -` do not
# alarm yet; an earlier edition of the table gives INSUFFICIENT_DATA / retain for the first,
# and ALARM for `X - - - -` ("the oldest evaluated data point is breaching and there aren't
# any non-breaching data points").
PREMATURE = [
    ("- - - - X", INSUFFICIENT, "retain", ALARM, OK),
    ("- - - X -", INSUFFICIENT, "retain", ALARM, OK),
    ("X - - - -", ALARM, "retain", ALARM, OK),
]


@pytest.mark.parametrize(
    ("m", "n", "row", "expected"),
    [(3, 3, r[0], r[1:]) for r in THREE_OF_THREE + PREMATURE]
    + [(2, 3, r[0], r[1:]) for r in TWO_OF_THREE],
)
def test_documented_tables(m: int, n: int, row: str, expected: tuple[Any, ...]) -> None:
    for treat, want in zip(TREATMENTS, expected, strict=True):
        for current in AlarmState:
            got = state_of(row, m, n, treat, current)
            assert got == (current if want == "retain" else want), (row, treat, current)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from("0X-"), min_size=5, max_size=5),
    st.integers(1, 3),
    st.sampled_from(list(AlarmState)),
)
def test_treatment_matters_only_when_real_datapoints_are_short(
    row: list[str], m: int, current: AlarmState
) -> None:
    states = {state_of(" ".join(row), m, 3, t, current) for t in TREATMENTS}
    real = [c for c in row if c != "-"]
    if len(real) >= 3:
        assert len(states) == 1
        assert states == {ALARM if real[-3:].count("X") >= m else OK}
    # notBreaching never alarms on fewer breaching datapoints than M; breaching never says OK
    # when the missing ones would make M.
    assert state_of(" ".join(row), m, 3, "notBreaching", current) == (
        ALARM if (real[-3:] if len(real) >= 3 else real).count("X") >= m else OK
    )


@pytest.mark.parametrize(
    ("op", "value", "breaches"),
    [
        ("GreaterThanThreshold", 1.0, False),
        ("GreaterThanThreshold", 1.5, True),
        ("GreaterThanOrEqualToThreshold", 1.0, True),
        ("GreaterThanOrEqualToThreshold", 0.5, False),
        ("LessThanThreshold", 1.0, False),
        ("LessThanThreshold", 0.5, True),
        ("LessThanOrEqualToThreshold", 1.0, True),
        ("LessThanOrEqualToThreshold", 1.5, False),
    ],
)
def test_comparison_operators_at_and_around_the_threshold(
    op: str, value: float, breaches: bool
) -> None:
    r = rule(1, 1, comparison=Comparison(op))
    got = evaluate(r, [Slot(T0, value)], OK, QUERY).state
    assert got == (ALARM if breaches else OK)


def test_more_real_datapoints_than_n_use_the_most_recent() -> None:
    # 0 0 X X X → the three newest breach; X X X 0 0 → the two newest do not.
    assert state_of("0 0 X X X", 3, 3, "missing", OK) == ALARM
    assert state_of("X X X 0 0", 3, 3, "breaching", ALARM) == OK


# ----------------------------------------------------------------------------------- reasons


def test_reason_for_one_datapoint() -> None:
    r = rule(1, 1, period=60, threshold=5.0, comparison=Comparison.GREATER)
    result = evaluate(r, [Slot(T0, 7.0, 3.0)], OK, QUERY)
    assert result.state == ALARM
    assert result.reason == (
        "Threshold Crossed: 1 datapoint [7.0 (30/11/26 06:00:00)] was greater than the "
        "threshold (5.0)."
    )
    assert result.reason_data == {
        "version": "1.0",
        "queryDate": "2026-11-30T06:25:16.437+0000",
        "startDate": "2026-11-30T06:00:00.000+0000",
        "statistic": "Sum",
        "period": 60,
        "recentDatapoints": [7.0],
        "threshold": 5.0,
        "evaluatedDatapoints": [
            {"timestamp": "2026-11-30T06:00:00.000+0000", "sampleCount": 3.0, "value": 7.0}
        ],
    }
    json.dumps(result.reason_data)  # StateReasonData is a JSON string on the wire


def test_reason_for_m_out_of_n() -> None:
    result = evaluate(rule(2, 3), slots("0 0 X 0 X"), OK, QUERY)
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [5.0 (30/11/26 06:20:00), "
        "5.0 (30/11/26 06:10:00)] were greater than the threshold (1.0) "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert result.reason_data["recentDatapoints"] == [5.0, 0.0, 5.0]
    assert [p["timestamp"][11:16] for p in result.reason_data["evaluatedDatapoints"]] == [
        "06:20",
        "06:15",
        "06:10",
    ]
    back = evaluate(rule(2, 3), slots("X X X 0 X"), ALARM, QUERY)
    assert back.state == ALARM
    ok = evaluate(rule(2, 3), slots("X X 0 0 X"), ALARM, QUERY)
    assert ok.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [0.0 (30/11/26 06:15:00), "
        "0.0 (30/11/26 06:10:00)] were not greater than the threshold (1.0) "
        "(minimum 2 datapoints for ALARM -> OK transition)."
    )


def test_reason_when_every_evaluated_datapoint_is_filled() -> None:
    result = evaluate(rule(3, 3, "breaching"), slots("- - - - -"), OK, QUERY)
    assert result.state == ALARM
    assert result.reason == (
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing "
        "datapoints were treated as [Breaching]."
    )
    assert result.reason_data["recentDatapoints"] == []
    assert result.reason_data["evaluatedDatapoints"] == [
        {"timestamp": "2026-11-30T06:20:00.000+0000"},
        {"timestamp": "2026-11-30T06:15:00.000+0000"},
        {"timestamp": "2026-11-30T06:10:00.000+0000"},
    ]
    nb = evaluate(rule(1, 1, "notBreaching"), slots("- - -"), ALARM, QUERY)
    assert nb.reason == (
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing "
        "datapoint was treated as [NonBreaching]."
    )


def test_reason_with_some_filled() -> None:
    result = evaluate(rule(2, 3, "breaching"), slots("0 - X - -"), OK, QUERY)
    assert result.reason == (
        "Threshold Crossed: 1 out of the last 3 datapoints [5.0 (30/11/26 06:10:00)] was "
        "greater than the threshold (1.0), 1 missing datapoint treated as [Breaching] "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )


def test_reason_for_insufficient_data_and_premature_alarm() -> None:
    result = evaluate(rule(3, 3), slots("- - - - -"), OK, QUERY)
    assert result.reason == "Insufficient Data: 3 datapoints were unknown."
    assert result.reason_data["recentDatapoints"] == []
    one = evaluate(rule(3, 3), slots("- - - - X"), OK, QUERY)
    assert one.reason == "Insufficient Data: 2 datapoints were unknown."
    premature = evaluate(rule(3, 3), slots("- - X - -"), OK, QUERY)
    assert premature.state == ALARM
    assert premature.reason.startswith(
        "Threshold Crossed: 1 out of the last 1 datapoints [5.0 (30/11/26 06:10:00)] was "
        "greater than the threshold (1.0), and none within it since"
    )
    assert "3 periods old" in premature.reason


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5.0"),
        (0.0, "0.0"),
        (0.25, "0.25"),
        (-3.5, "-3.5"),
        (1234567.0, "1234567.0"),
        (1e7, "1.0E7"),
        (15000000.0, "1.5E7"),
        (0.0001, "1.0E-4"),
        (-0.00012345, "-1.2345E-4"),
        (0.001, "0.001"),
    ],
)
def test_doubles_print_as_java_does(value: float, text: str) -> None:
    assert _java_double(value) == text


# ----------------------------------------------------------------------------------- request

VALID: dict[str, Any] = {
    "AlarmName": "errors",
    "MetricName": "Invocation5XXErrors",
    "Namespace": "AWS/SageMaker",
    "Statistic": "Sum",
    "Dimensions": [
        {"Name": "VariantName", "Value": "primary"},
        {"Name": "EndpointName", "Value": "diabetes"},
    ],
    "Period": 60,
    "EvaluationPeriods": 3,
    "DatapointsToAlarm": 2,
    "Threshold": 5.0,
    "ComparisonOperator": "GreaterThanThreshold",
}


def test_rule_from_a_valid_request() -> None:
    r = rule_from_request(VALID)
    assert r.dimensions == (("EndpointName", "diabetes"), ("VariantName", "primary"))
    assert (r.evaluation_periods, r.datapoints_to_alarm, r.evaluation_range) == (3, 2, 5)
    assert r.treat_missing_data is MissingData.MISSING
    no_m = rule_from_request({**VALID, "DatapointsToAlarm": None, "Period": 10})
    assert no_m.datapoints_to_alarm == 3


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"ExtendedStatistic": "p99", "Statistic": None}, "InvalidParameterValue", "percentile"),
        ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination", "cannot both"),
        ({"Metrics": [{"Id": "m1"}]}, "InvalidParameterValue", "metric math"),
        (
            {"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"},
            "InvalidParameterValue",
            "anomaly-detection band",
        ),
        ({"ThresholdMetricId": "ad1"}, "InvalidParameterValue", "anomaly-detection"),
        ({"EvaluationInterval": 60}, "InvalidParameterValue", "PromQL"),
        ({"MetricName": None}, "MissingParameter", "parameter MetricName"),
        ({"Statistic": None}, "MissingParameter", "parameter Statistic"),
        ({"Period": None}, "MissingParameter", "parameter Period"),
        ({"EvaluationPeriods": None}, "MissingParameter", "parameter EvaluationPeriods"),
        ({"Threshold": None}, "MissingParameter", "parameter Threshold"),
        ({"ComparisonOperator": None}, "MissingParameter", "parameter ComparisonOperator"),
        ({"Period": 45}, "ValidationError", "10, 20, 30 or a multiple of 60"),
        ({"DatapointsToAlarm": 4}, "ValidationError", "(4) must be less than or equal"),
        ({"EvaluationPeriods": 1441}, "ValidationError", "1 day"),
        ({"Period": 3600, "EvaluationPeriods": 169}, "ValidationError", "7 days"),
        ({"TreatMissingData": "zero"}, "InvalidParameterValue", "'zero' is not valid"),
        ({"Threshold": float("nan")}, "ValidationError", "finite"),
        (
            {"Dimensions": [{"Name": "A", "Value": "1"}, {"Name": "A", "Value": "2"}]},
            "InvalidParameterValue",
            "repeat",
        ),
    ],
)
def test_refused_requests(change: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(AlarmRuleError) as info:
        rule_from_request({**VALID, **change})
    assert info.value.code == code
    assert message in info.value.message
    assert info.value.status == 400


def test_a_week_of_hourly_periods_is_allowed() -> None:
    assert rule_from_request({**VALID, "Period": 3600, "EvaluationPeriods": 168}).period == 3600


# ------------------------------------------------------------------------- windows and words


def test_period_starts_are_the_evaluation_range_ending_at_the_given_time() -> None:
    r = rule(2, 3, period=60)
    end = T0 + timedelta(minutes=10)
    starts = period_starts(r, end)
    assert [s.strftime("%H:%M") for s in starts] == ["06:05", "06:06", "06:07", "06:08", "06:09"]


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({}, "Invocation5XXErrors Sum > 5 for 2 of 3 periods of 1 min"),
        ({"DatapointsToAlarm": None}, "Invocation5XXErrors Sum > 5 for 3 periods of 1 min"),
        (
            {"EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Period": 10, "Threshold": 0.5},
            "Invocation5XXErrors Sum > 0.5 for 1 period of 10 s",
        ),
        (
            {"ComparisonOperator": "LessThanOrEqualToThreshold", "Period": 3600},
            "Invocation5XXErrors Sum <= 5 for 2 of 3 periods of 1 h",
        ),
    ],
)
def test_condition_in_words(change: dict[str, Any], text: str) -> None:
    assert condition_in_words({**VALID, **change}) == text
