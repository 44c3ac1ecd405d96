"""CloudWatch's metric operations on pier's store: GetMetricData, GetMetricStatistics,
ListMetrics, PutMetricData.

Each method takes the input validated by pier.contract.cloudwatch (timestamps as aware
datetimes) and returns the output as a dict; the operations' own rules raise CloudWatch's
errors with its wording where it is known. Data is kept at 1-minute resolution
(pier.store.metrics), so the statistics are SampleCount, Average, Sum, Minimum and Maximum;
percentiles and metric math are refused with a message saying so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pier.contract.cloudwatch import (
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    ValidationError,
)
from pier.control import paging
from pier.store.metrics import STATISTICS, Datapoint, MetricPoint, MetricStore

__all__ = ["MAX_DATAPOINTS_STATISTICS", "CloudWatchMetricsService"]

MAX_DATAPOINTS_STATISTICS = 1440  # GetMetricStatistics' limit per call
MAX_DATAPOINTS_DATA = 100_800  # GetMetricData's default MaxDatapoints
MAX_QUERIES = 500
MAX_PUT_DATA = 1000
MAX_VALUES = 150
LIST_PAGE = 500
PUT_MAX_AGE = timedelta(days=14)
PUT_MAX_AHEAD = timedelta(hours=2)
LIST_WINDOW = timedelta(days=14)  # ListMetrics lists metrics with data in the past two weeks
RECENTLY_ACTIVE = {"PT3H": timedelta(hours=3)}
# CloudWatch's accepted magnitudes (values outside are refused), and its high-resolution periods
_LARGEST, _SMALLEST = 1.174271e108, 8.515920e-109
_SHORT_PERIODS = frozenset({1, 5, 10, 30})
_METRIC_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")


def _valid_period(period: int) -> bool:
    return period in _SHORT_PERIODS or period % 60 == 0


def _dimensions(items: Sequence[Mapping[str, str]] | None, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for d in items or ():
        if d["Name"] in out:
            raise InvalidParameterValue(
                f"The dimension name {d['Name']} is given more than once in {where}."
            )
        out[d["Name"]] = d["Value"]
    return out


def _dimension_list(dims: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in sorted(dims.items())]


def _bad_token() -> InvalidParameterValue:
    return InvalidParameterValue("The value of the parameter NextToken is invalid.")


def _data_after(token: str) -> tuple[int, datetime]:
    """GetMetricData's token: the query and the timestamp of the last datapoint served."""
    try:
        decoded = paging.decode(token)
        query, at = decoded  # a list: a dict of two keys would unpack too
        after = int(query), datetime.fromisoformat(at)
    except (paging.BadToken, TypeError, ValueError):
        raise _bad_token() from None
    if not isinstance(decoded, list) or after[1].tzinfo is None:
        raise _bad_token()
    return after


class CloudWatchMetricsService:
    """The metric half of pier's CloudWatch API (alarms live in a service of their own)."""

    def __init__(
        self, store: MetricStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------- GetMetricStatistics
    def get_metric_statistics(self, params: dict[str, Any]) -> dict[str, Any]:
        statistics: list[str] = params.get("Statistics", [])
        if params.get("ExtendedStatistics"):
            raise InvalidParameterValue(
                "pier keeps each minute's SampleCount, Sum, Minimum and Maximum, not the "
                "values themselves: ExtendedStatistics (percentiles) are not available. The "
                "platform's /metrics has latency histograms for Prometheus."
            )
        if not statistics:
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics"
            )
        start, end, period = params["StartTime"], params["EndTime"], params["Period"]
        if start >= end:
            raise InvalidParameterValue(
                "The parameter StartTime must be less than the parameter EndTime."
            )
        if not _valid_period(period):
            raise InvalidParameterValue(
                "The parameter Period must be 1, 5, 10, 30 or a multiple of 60."
            )
        first = start.replace(second=0, microsecond=0)
        requested = math.ceil((end - first).total_seconds() / period)
        if requested > MAX_DATAPOINTS_STATISTICS:
            raise InvalidParameterCombination(
                f"You have requested up to {requested:,} datapoints, which exceeds the limit "
                f"of {MAX_DATAPOINTS_STATISTICS:,}. You may reduce the datapoints requested by "
                "increasing Period, or decreasing the time range."
            )
        dims = _dimensions(params.get("Dimensions"), "Dimensions")
        found = self.store.query(
            params["Namespace"], params["MetricName"], dims, start, end, period,
            unit=params.get("Unit"),
        )  # fmt: skip
        return {
            "Label": params["MetricName"],
            "Datapoints": [
                {"Timestamp": d.timestamp, "Unit": d.unit}
                | {s: d.statistic(s) for s in dict.fromkeys(statistics)}
                for d in found
            ],
        }

    # ------------------------------------------------------------------------- GetMetricData
    def get_metric_data(self, params: dict[str, Any]) -> dict[str, Any]:
        start, end = params["StartTime"], params["EndTime"]
        if start >= end:
            raise ValidationError("The parameter EndTime must be greater than StartTime.")
        queries: list[dict[str, Any]] = params["MetricDataQueries"]
        if not queries:
            raise ValidationError("The collection MetricDataQueries must not be empty.")
        if len(queries) > MAX_QUERIES:
            raise ValidationError(
                f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
            )
        seen: set[str] = set()
        for i, q in enumerate(queries, 1):
            self._check_query(q, i, seen)
        limit = params.get("MaxDatapoints", MAX_DATAPOINTS_DATA)
        if limit < 1:
            raise InvalidParameterValue("The parameter MaxDatapoints must be at least 1.")
        # Keyset: a page resumes after the last datapoint served (by timestamp, one per period),
        # so datapoints arriving meanwhile neither shift nor repeat it.
        at = _data_after(params["NextToken"]) if "NextToken" in params else None
        descending = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        results: list[dict[str, Any]] = []
        budget, next_token = limit, None
        for i, q in enumerate(queries):
            if not q.get("ReturnData", True) or (at is not None and i < at[0]):
                continue
            stat = q["MetricStat"]
            metric = stat["Metric"]
            found = self.store.query(
                metric.get("Namespace", ""), metric.get("MetricName", ""),
                _dimensions(metric.get("Dimensions"), "Dimensions"), start, end,
                stat["Period"], stat["Stat"], stat.get("Unit"),
            )  # fmt: skip
            points: list[Datapoint] = found[::-1] if descending else found
            if at is not None and i == at[0]:
                last = at[1]
                points = [
                    p for p in points if (p.timestamp < last if descending else p.timestamp > last)
                ]
            result: dict[str, Any] = {
                "Id": q["Id"],
                "Label": q.get("Label", metric.get("MetricName", q["Id"])),
                "StatusCode": "Complete",
            }
            if len(points) > budget:
                points, result["StatusCode"] = points[:budget], "PartialData"
                next_token = paging.encode([i, points[-1].timestamp.isoformat()])
            result["Timestamps"] = [d.timestamp for d in points]
            result["Values"] = [d.value for d in points]
            results.append(result)
            budget -= len(points)
            if next_token is not None:
                break
        out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if next_token is not None:
            out["NextToken"] = next_token
        return out

    def _check_query(self, q: dict[str, Any], i: int, seen: set[str]) -> None:
        where = f"MetricDataQueries.member.{i}"
        if not _METRIC_ID.fullmatch(q["Id"]):
            raise ValidationError(
                f"The value {q['Id']} for parameter {where}.Id is invalid: an Id starts with a "
                "lowercase letter and holds only letters, digits and underscores."
            )
        if q["Id"] in seen:
            raise ValidationError(f"The value {q['Id']} for parameter {where}.Id is duplicated.")
        seen.add(q["Id"])
        if "Expression" in q:
            raise ValidationError(
                f"pier does not evaluate metric math or Metrics Insights queries yet "
                f"({where}.Expression): query each metric with MetricStat."
            )
        stat = q.get("MetricStat")
        if stat is None:
            raise ValidationError(f"The parameter {where}.MetricStat is required.")
        metric = stat["Metric"]
        for member in ("Namespace", "MetricName"):
            if member not in metric:
                raise MissingParameter(
                    f"The parameter {where}.MetricStat.Metric.{member} is required."
                )
        if stat["Stat"] not in STATISTICS:
            raise InvalidParameterValue(
                f"The value {stat['Stat']} for parameter {where}.MetricStat.Stat is not "
                f"supported: pier keeps {', '.join(STATISTICS)} (no percentiles)."
            )
        if not _valid_period(stat["Period"]):
            raise InvalidParameterValue(
                f"The value {stat['Period']} for parameter {where}.MetricStat.Period is "
                "invalid: it must be 1, 5, 10, 30 or a multiple of 60."
            )

    # ---------------------------------------------------------------------------- ListMetrics
    def list_metrics(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        window = RECENTLY_ACTIVE.get(params.get("RecentlyActive", ""), LIST_WINDOW)
        filters = [(f["Name"], f.get("Value")) for f in params.get("Dimensions", ())]
        found = self.store.list_metrics(
            params.get("Namespace"), params.get("MetricName"), filters, now - window
        )
        try:
            page = paging.keyset(
                found,
                # the store's order: namespace, name, then the sorted dimension pairs
                lambda m: [m.namespace, m.name, [list(d) for d in sorted(m.dimensions.items())]],
                next_token=params.get("NextToken"),
                size=LIST_PAGE,
                descending=False,
            )
        except paging.BadToken:
            raise _bad_token() from None
        return {
            "Metrics": [
                {
                    "Namespace": m.namespace,
                    "MetricName": m.name,
                    "Dimensions": _dimension_list(m.dimensions),
                }
                for m in page.items
            ],
            **page.token_field(),
        }

    # -------------------------------------------------------------------------- PutMetricData
    def put_metric_data(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace: str = params["Namespace"]
        if namespace.startswith("AWS/"):
            raise InvalidParameterValue(
                f"The value {namespace} for parameter Namespace is invalid: the AWS/ "
                "namespaces are reserved for the services' own metrics."
            )
        data: list[tuple[str, dict[str, Any]]] = [
            (f"MetricData.member.{i}", d) for i, d in enumerate(params.get("MetricData", ()), 1)
        ]
        for e, entity in enumerate(params.get("EntityMetricData", ()), 1):
            data += [
                (f"EntityMetricData.member.{e}.MetricData.member.{i}", d)
                for i, d in enumerate(entity.get("MetricData", ()), 1)
            ]
        if not data:
            raise MissingParameter("The parameter MetricData is required.")
        if len(data) > MAX_PUT_DATA:
            raise InvalidParameterValue(
                f"The collection MetricData must not have a size greater than {MAX_PUT_DATA}."
            )
        now = self.clock()
        points = [self._point(namespace, d, where, now) for where, d in data]
        self.store.write(p for p in points if p is not None)
        return {}

    def _point(
        self, namespace: str, d: dict[str, Any], where: str, now: datetime
    ) -> MetricPoint | None:
        when: datetime = d.get("Timestamp", now)
        if when < now - PUT_MAX_AGE or when > now + PUT_MAX_AHEAD:
            raise InvalidParameterValue(
                f"The parameter {where}.Timestamp must specify a time no more than two weeks "
                "in the past and no more than two hours in the future."
            )
        given = [k for k in ("Value", "StatisticValues", "Values") if k in d]
        if len(given) > 1:
            raise InvalidParameterCombination(
                f"The parameters {where}.{given[0]} and {where}.{given[1]} are mutually "
                "exclusive and you have specified both."
            )
        if not given:
            raise MissingParameter(f"The parameter {where}.Value is required.")
        unit = d.get("Unit", "None")
        dims = _dimensions(d.get("Dimensions"), f"{where}.Dimensions")
        name = d["MetricName"]
        if "Value" in d:
            value = _checked(d["Value"], f"{where}.Value")
            return MetricPoint.single(namespace, name, dims, when, value, unit)
        if "StatisticValues" in d:
            s = d["StatisticValues"]
            n, total, low, high = (
                _checked(s[k], f"{where}.StatisticValues.{k}")
                for k in ("SampleCount", "Sum", "Minimum", "Maximum")
            )
            if n <= 0 or low > high:
                raise InvalidParameterValue(
                    f"The parameter {where}.StatisticValues is invalid: SampleCount must be "
                    "positive and Minimum no greater than Maximum."
                )
            return MetricPoint(namespace, name, dims, when, n, total, low, high, unit)
        values = [_checked(v, f"{where}.Values") for v in d["Values"]]
        counts = [_checked(c, f"{where}.Counts") for c in d.get("Counts", [1.0] * len(values))]
        if len(values) > MAX_VALUES:
            raise InvalidParameterValue(
                f"The collection {where}.Values must not have a size greater than {MAX_VALUES}."
            )
        if len(counts) != len(values):
            raise InvalidParameterValue(
                f"The parameters {where}.Values and {where}.Counts must be of the same size."
            )
        if any(c < 0 for c in counts):
            raise InvalidParameterValue(f"The parameter {where}.Counts must not be negative.")
        kept = [(v, c) for v, c in zip(values, counts, strict=True) if c > 0]
        if not kept:
            return None
        return MetricPoint(
            namespace, name, dims, when, sum(c for _, c in kept), sum(v * c for v, c in kept),
            min(v for v, _ in kept), max(v for v, _ in kept), unit,
        )  # fmt: skip


def _checked(value: float, where: str) -> float:
    """CloudWatch refuses NaN, infinities and magnitudes it cannot store."""
    magnitude = abs(value)
    if math.isnan(value) or magnitude > _LARGEST or 0 < magnitude < _SMALLEST:
        shown = "NaN" if math.isnan(value) else repr(value)
        raise InvalidParameterValue(f"The value {shown} for parameter {where} is invalid.")
    return value
