"""CloudWatch metric alarms: the rule, one evaluation, and the reason CloudWatch would give.

Pure: no I/O and no clock. The alarm runner (`pier.monitor.alarms.runner`) fetches the points
of the evaluation range and calls `evaluate`; the API stores what it returns.

Semantics (CloudWatch User Guide, "Using Amazon CloudWatch alarms"):

- Each period gives one datapoint: the `Statistic` (SampleCount, Average, Sum, Minimum,
  Maximum) of the metric's values in it. A datapoint *breaches* when
  `value <ComparisonOperator> Threshold`.
- The alarm looks at the last `EvaluationPeriods` (N) datapoints and goes to ALARM when at
  least `DatapointsToAlarm` (M, default N) of them breach, to OK otherwise.
- It fetches more than N periods, the *evaluation range* (N + 2 here; 5 for N = 3 as in
  the guide's tables). With at least N real datapoints in the range, the N most recent real
  ones are evaluated and `TreatMissingData` plays no part. With fewer, every real datapoint
  of the range is kept and the rest is filled:
  - `breaching` / `notBreaching`: the missing ones count as breaching / not breaching;
  - `missing` (default): no real datapoint at all → INSUFFICIENT_DATA; a non-breaching real
    datapoint → OK (unless M real ones breach); only breaching real datapoints, fewer than
    M → ALARM if the oldest of them is at least M periods old ("premature alarm" logic:
    `- - X - -` alarms with M = 3, `- - - - X` does not), INSUFFICIENT_DATA otherwise;
  - `ignore`: as `missing`, except that where `missing` would give INSUFFICIENT_DATA or the
    premature ALARM, the alarm keeps its current state.
  These rules reproduce every row of the guide's two tables (tests/monitor/test_alarms.py).

Refused with a clear message rather than evaluated wrongly: percentiles (`ExtendedStatistic`),
metric math (`Metrics`), anomaly-detection operators and thresholds, PromQL alarms
(`EvaluationCriteria`, `EvaluationInterval`), `EvaluationWindow`, `WarmUpConfiguration`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pier.errors import PierError

__all__ = [
    "EXTRA_RANGE_PERIODS",
    "AlarmRule",
    "AlarmRuleError",
    "AlarmState",
    "Comparison",
    "Evaluation",
    "MissingData",
    "Slot",
    "Statistic",
    "condition_in_words",
    "evaluate",
    "iso_millis",
    "period_starts",
    "rule_from_request",
]

EXTRA_RANGE_PERIODS = 2  # evaluation range = EvaluationPeriods + 2 (5 for 3, as documented)
MAX_RANGE_SECONDS = 86_400  # Period × EvaluationPeriods: one day ...
MAX_RANGE_SECONDS_HOURLY = 7 * 86_400  # ... or seven days with periods of an hour or more
INITIAL_REASON = "Unchecked: Initial alarm creation"


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Statistic(StrEnum):
    SAMPLE_COUNT = "SampleCount"
    AVERAGE = "Average"
    SUM = "Sum"
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"


class Comparison(StrEnum):
    GREATER_OR_EQUAL = "GreaterThanOrEqualToThreshold"
    GREATER = "GreaterThanThreshold"
    LESS = "LessThanThreshold"
    LESS_OR_EQUAL = "LessThanOrEqualToThreshold"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]

    @property
    def words(self) -> str:
        """As CloudWatch's reasons say it: 'greater than or equal to'."""
        return _WORDS[self]

    def breaches(self, value: float, threshold: float) -> bool:
        if self is Comparison.GREATER_OR_EQUAL:
            return value >= threshold
        if self is Comparison.GREATER:
            return value > threshold
        if self is Comparison.LESS:
            return value < threshold
        return value <= threshold


_SYMBOLS = {
    Comparison.GREATER_OR_EQUAL: ">=",
    Comparison.GREATER: ">",
    Comparison.LESS: "<",
    Comparison.LESS_OR_EQUAL: "<=",
}
_WORDS = {
    Comparison.GREATER_OR_EQUAL: "greater than or equal to",
    Comparison.GREATER: "greater than",
    Comparison.LESS: "less than",
    Comparison.LESS_OR_EQUAL: "less than or equal to",
}


class MissingData(StrEnum):
    MISSING = "missing"
    IGNORE = "ignore"
    BREACHING = "breaching"
    NOT_BREACHING = "notBreaching"


class AlarmRuleError(PierError):
    """A PutMetricAlarm CloudWatch refuses, or one pier cannot evaluate (said so plainly).

    `code` is CloudWatch's: ValidationError, MissingParameter, InvalidParameterCombination
    or InvalidParameterValue. Not an API error itself: the alarm service raises CloudWatch's
    error of that code.
    """

    status = 400

    def __init__(self, message: str, code: str = "ValidationError") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AlarmRule:
    """What `evaluate` needs of a PutMetricAlarm request."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: Statistic
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: Comparison
    treat_missing_data: MissingData = MissingData.MISSING
    unit: str | None = None

    @property
    def evaluation_range(self) -> int:
        """How many periods are fetched for one evaluation."""
        return self.evaluation_periods + EXTRA_RANGE_PERIODS


@dataclass(frozen=True)
class Slot:
    """One period of the evaluation range: its start and its datapoint, if any."""

    timestamp: datetime
    value: float | None = None
    sample_count: float | None = None


@dataclass(frozen=True)
class Evaluation:
    """The state one evaluation leads to, with CloudWatch's reason and reason data.

    When `state` equals the current state nothing happens (CloudWatch keeps the reason of the
    last transition); `ignore` with too little data returns the current state.
    """

    state: AlarmState
    reason: str
    reason_data: dict[str, Any]


# ----------------------------------------------------------------------------- the request

_UNSUPPORTED = {
    "ExtendedStatistic": "percentile statistics (ExtendedStatistic) are not evaluated by pier "
    "yet; use Statistic: SampleCount, Average, Sum, Minimum or Maximum",
    "Metrics": "alarms on metric math (Metrics) are not supported by pier yet; "
    "give MetricName, Namespace, Statistic and Period",
    "ThresholdMetricId": "anomaly-detection alarms (ThresholdMetricId) are not supported by pier",
    "EvaluationCriteria": "PromQL alarms (EvaluationCriteria) are not supported by pier",
    "EvaluationInterval": "EvaluationInterval (PromQL alarms) is not supported by pier",
    "EvaluationWindow": "EvaluationWindow is not supported by pier yet: alarms use a sliding "
    "window, CloudWatch's default",
    "WarmUpConfiguration": "WarmUpConfiguration is not supported by pier yet",
}
_ANOMALY_OPERATORS = (
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)


def rule_from_request(request: Mapping[str, Any]) -> AlarmRule:
    """The rule of a PutMetricAlarm request (already checked against botocore's model: types,
    enums, ranges); raises AlarmRuleError for what CloudWatch's own rules or pier refuse."""
    for member, why in _UNSUPPORTED.items():
        if request.get(member) is not None:
            if member == "ExtendedStatistic" and request.get("Statistic") is not None:
                raise AlarmRuleError(
                    "Statistic and ExtendedStatistic cannot both be given.",
                    "InvalidParameterCombination",
                )
            raise AlarmRuleError(f"{member}: {why}.", "InvalidParameterValue")
    for member in ("MetricName", "Namespace", "Statistic", "Period", "EvaluationPeriods"):
        if request.get(member) is None:
            raise AlarmRuleError(
                f"The request must contain the parameter {member}.", "MissingParameter"
            )
    for member in ("Threshold", "ComparisonOperator"):
        if request.get(member) is None:
            raise AlarmRuleError(
                f"The request must contain the parameter {member} "
                "(required for alarms on a static threshold).",
                "MissingParameter",
            )
    operator = str(request["ComparisonOperator"])
    if operator in _ANOMALY_OPERATORS:
        raise AlarmRuleError(
            f"ComparisonOperator {operator} needs an anomaly-detection band, which pier does "
            "not support; use GreaterThanThreshold, GreaterThanOrEqualToThreshold, "
            "LessThanThreshold or LessThanOrEqualToThreshold.",
            "InvalidParameterValue",
        )
    period = int(request["Period"])
    if period not in (10, 20, 30) and period % 60:
        raise AlarmRuleError(
            f"Period {period} is not valid: it must be 10, 20, 30 or a multiple of 60 seconds."
        )
    n = int(request["EvaluationPeriods"])
    m = int(request.get("DatapointsToAlarm") or n)
    if m > n:
        raise AlarmRuleError(
            f"DatapointsToAlarm ({m}) must be less than or equal to EvaluationPeriods ({n})."
        )
    limit = MAX_RANGE_SECONDS_HOURLY if period >= 3600 else MAX_RANGE_SECONDS
    if period * n > limit:
        raise AlarmRuleError(
            f"Period × EvaluationPeriods ({period} × {n} = {period * n} s) must not exceed "
            + ("7 days (604800 s)." if limit == MAX_RANGE_SECONDS_HOURLY else "1 day (86400 s).")
        )
    threshold = float(request["Threshold"])
    if not math.isfinite(threshold):
        raise AlarmRuleError(f"Threshold must be a finite number, not {threshold}.")
    treat = request.get("TreatMissingData") or MissingData.MISSING.value
    try:
        treat_missing = MissingData(treat)
    except ValueError:
        raise AlarmRuleError(
            f"TreatMissingData {treat!r} is not valid: use missing, ignore, breaching or "
            "notBreaching.",
            "InvalidParameterValue",
        ) from None
    dims = tuple(sorted((str(d["Name"]), str(d["Value"])) for d in request.get("Dimensions") or ()))
    if len({name for name, _ in dims}) != len(dims):
        raise AlarmRuleError("Dimensions must not repeat a name.", "InvalidParameterValue")
    return AlarmRule(
        namespace=str(request["Namespace"]),
        metric_name=str(request["MetricName"]),
        dimensions=dims,
        statistic=Statistic(request["Statistic"]),
        period=period,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        threshold=threshold,
        comparison=Comparison(operator),
        treat_missing_data=treat_missing,
        unit=request.get("Unit"),
    )


# --------------------------------------------------------------------------------- windows


def period_starts(rule: AlarmRule, end: datetime) -> list[datetime]:
    """The starts of the periods of the evaluation range ending at `end`, oldest first. The
    runner passes the evaluation time rounded down to its step (a sliding window, as
    CloudWatch evaluates: every minute, over the last N periods)."""
    width = timedelta(seconds=rule.period)
    return [end - width * (rule.evaluation_range - i) for i in range(rule.evaluation_range)]


# ------------------------------------------------------------------------------ evaluation


def evaluate(
    rule: AlarmRule, slots: Sequence[Slot], current: AlarmState, query_date: datetime
) -> Evaluation:
    """The state after one evaluation over `slots` (the evaluation range, oldest first)."""
    n, m = rule.evaluation_periods, rule.datapoints_to_alarm
    real = [s for s in slots if s.value is not None]
    treat = rule.treat_missing_data
    if len(real) >= n:
        return _threshold(rule, real[-n:], [], current, query_date)
    if treat in (MissingData.BREACHING, MissingData.NOT_BREACHING):
        # Every real datapoint of the range counts; as few missing ones as possible are filled
        # (the most recent missing periods).
        filled = [s for s in slots if s.value is None][len(real) - n :]
        return _threshold(rule, real, filled, current, query_date)
    breaching = [s for s in real if _breaches(rule, s)]
    if len(breaching) >= m or len(breaching) < len(real):
        return _threshold(rule, real, [], current, query_date)
    # Only breaching datapoints (or none), fewer than M.
    if treat is MissingData.MISSING and real:
        age = len(slots) - slots.index(real[0])  # periods from the newest slot, 1 = newest
        if age >= m:
            return _threshold(rule, real, [], current, query_date, premature_age=age)
    if treat is MissingData.IGNORE:
        return Evaluation(current, _unknown_reason(n - len(real)), _reason_data(rule, query_date))
    return Evaluation(
        AlarmState.INSUFFICIENT_DATA,
        _unknown_reason(n - len(real)),
        _reason_data(rule, query_date, real),
    )


def _breaches(rule: AlarmRule, slot: Slot) -> bool:
    assert slot.value is not None
    return rule.comparison.breaches(slot.value, rule.threshold)


def _threshold(
    rule: AlarmRule,
    real: list[Slot],
    filled: list[Slot],
    current: AlarmState,
    query_date: datetime,
    premature_age: int | None = None,
) -> Evaluation:
    """ALARM when at least M of the evaluated datapoints breach, OK otherwise."""
    treat_breaching = rule.treat_missing_data is MissingData.BREACHING
    breaching = [s for s in real if _breaches(rule, s)]
    count = len(breaching) + (len(filled) if treat_breaching else 0)
    alarm = count >= rule.datapoints_to_alarm or premature_age is not None
    state = AlarmState.ALARM if alarm else AlarmState.OK
    data = _reason_data(rule, query_date, real, filled)
    kind = "Breaching" if treat_breaching else "NonBreaching"
    if not real:
        reason = (
            f"Threshold Crossed: no datapoints were received for {_n(len(filled), 'period')} "
            f"and {_n(len(filled), 'missing datapoint')} {_were(len(filled))} treated as [{kind}]."
        )
        return Evaluation(state, reason, data)
    shown = breaching if state is AlarmState.ALARM else [s for s in real if s not in breaching]
    shown = shown[::-1]  # newest first, as CloudWatch lists them
    listed = ", ".join(f"{_java_double(s.value)} ({_reason_time(s.timestamp)})" for s in shown)
    verb = rule.comparison.words if state is AlarmState.ALARM else "not " + rule.comparison.words
    threshold = _java_double(rule.threshold)
    evaluated = len(real) + len(filled)
    if rule.evaluation_periods == 1 and evaluated == 1 and not filled:
        reason = f"Threshold Crossed: 1 datapoint [{listed}] was {verb} the threshold ({threshold})"
        return Evaluation(state, reason + ".", data)
    if state is AlarmState.ALARM:
        needed = rule.datapoints_to_alarm
    else:
        needed = rule.evaluation_periods - rule.datapoints_to_alarm + 1
    reason = (
        f"Threshold Crossed: {len(shown)} out of the last {evaluated} datapoints [{listed}] "
        f"{_were(len(shown))} {verb} the threshold ({threshold})"
    )
    if filled:
        reason += f", {_n(len(filled), 'missing datapoint')} treated as [{kind}]"
    if premature_age is not None:
        reason += (
            f", and none within it since (missing data treated as missing; the oldest "
            f"breaching datapoint is {_n(premature_age, 'period')} old)"
        )
    reason += (
        f" (minimum {_n(needed, 'datapoint')} for {current.value} -> {state.value} transition)."
    )
    return Evaluation(state, reason, data)


def _unknown_reason(unknown: int) -> str:
    return f"Insufficient Data: {_n(unknown, 'datapoint')} {_were(unknown)} unknown."


def _reason_data(
    rule: AlarmRule,
    query_date: datetime,
    real: Sequence[Slot] = (),
    filled: Sequence[Slot] = (),
) -> dict[str, Any]:
    """CloudWatch's StateReasonData: version 1.0, the query, the datapoints evaluated."""
    evaluated = sorted([*real, *filled], key=lambda s: s.timestamp, reverse=True)
    data: dict[str, Any] = {"version": "1.0", "queryDate": iso_millis(query_date)}
    if evaluated:
        data["startDate"] = iso_millis(evaluated[-1].timestamp)
    if rule.unit:
        data["unit"] = rule.unit
    data["statistic"] = rule.statistic.value
    data["period"] = rule.period
    data["recentDatapoints"] = [s.value for s in reversed(evaluated) if s.value is not None]
    data["threshold"] = rule.threshold
    points: list[dict[str, Any]] = []
    for s in evaluated:
        point: dict[str, Any] = {"timestamp": iso_millis(s.timestamp)}
        if s.value is not None:
            if s.sample_count is not None:
                point["sampleCount"] = s.sample_count
            point["value"] = s.value
        points.append(point)
    data["evaluatedDatapoints"] = points
    return data


# --------------------------------------------------------------------------------- wording


def condition_in_words(request: Mapping[str, Any]) -> str:
    """'Invocation5XXErrors Sum > 5 for 2 of 3 periods of 1 min' for a stored request."""
    metric = request.get("MetricName") or "?"
    stat = request.get("Statistic") or request.get("ExtendedStatistic") or "?"
    operator = str(request.get("ComparisonOperator") or "?")
    symbol = _SYMBOLS.get(Comparison(operator), operator) if operator in _OPERATORS else operator
    threshold = request.get("Threshold")
    shown = f"{threshold:g}" if isinstance(threshold, int | float) else "?"
    n = int(request.get("EvaluationPeriods") or 1)
    m = int(request.get("DatapointsToAlarm") or n)
    period = _duration(int(request.get("Period") or 60))
    count = f"{m} of {n} periods" if m != n else _n(n, "period")
    return f"{metric} {stat} {symbol} {shown} for {count} of {period}"


_OPERATORS = frozenset(c.value for c in Comparison)


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _java_double(value: float | None) -> str:
    """Doubles as CloudWatch (Java's Double.toString) prints them: 5.0, 0.25, 1.0E-4, 1.5E7."""
    if value is None:
        return "null"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)  # shortest round-trip digits, never an exponent in this range
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    mantissa = text[0] + "." + (text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{len(text) + exponent - 1}"


def _reason_time(ts: datetime) -> str:
    """CloudWatch's reasons print datapoint times as dd/MM/yy HH:mm:ss (UTC)."""
    return ts.astimezone(UTC).strftime("%d/%m/%y %H:%M:%S")


def iso_millis(ts: datetime) -> str:
    """2021-05-19T14:51:00.000+0000, CloudWatch's format in reason data and notifications."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}+0000"
