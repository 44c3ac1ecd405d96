"""Metric time series at CloudWatch's 1-minute resolution: write, aggregate, list, expire.

One row per (namespace, metric, dimensions, minute) holds that minute's statistic set:
SampleCount, Sum, Minimum, Maximum (Average is Sum / SampleCount). Writing a point for a minute
already stored merges it (counts and sums add, extremes widen), so the platform can flush what
it has every few seconds, PutMetricData can be called many times a minute, and a restart in the
middle of a minute loses nothing.

The interface other modules build on (alarms, the CloudWatch API, `pier metrics`):

    store = MetricStore(sessions)
    store.write([MetricPoint("AWS/SageMaker", "Invocations", {"EndpointName": "e", ...},
                             timestamp=1764583200, sample_count=3, sum=3, minimum=1, maximum=1)])
    store.query("AWS/SageMaker", "Invocations", {"EndpointName": "e", "VariantName": "v"},
                start, end, period_s=60, stat="Sum")   # -> [Datapoint, ...] oldest first
    store.list_metrics(namespace="AWS/SageMaker", dimension_filters=[("EndpointName", "e")])
    store.delete_before(cutoff)                         # retention

`query` matches dimensions exactly (as CloudWatch does: each set of dimensions is a metric of
its own), returns only periods that hold data, and aligns periods on `start` rounded down to
the minute. Times are aware datetimes or epoch seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from pier.store.tables import MetricPointRow

__all__ = [
    "STATISTICS",
    "Datapoint",
    "MetricId",
    "MetricPoint",
    "MetricStore",
    "canonical_dimensions",
    "epoch_seconds",
]

#: The statistics a stored minute can answer (no percentiles: they need the raw values).
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_MINUTE = 60

Dimensions = Mapping[str, str]
Time = datetime | int | float


def epoch_seconds(t: Time) -> int:
    """Whole epoch seconds of an aware datetime or a number (rounded down)."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            # Which zone a naive time means is a guess: refuse it, as the store's columns do.
            raise ValueError(f"naive datetime {t.isoformat()} given for a metric time")
        return math.floor(t.timestamp())
    return math.floor(t)


def canonical_dimensions(dimensions: Dimensions) -> str:
    """The stored form of a dimension set: JSON pairs sorted by name."""
    return json.dumps(sorted(dimensions.items()), separators=(",", ":"), ensure_ascii=False)


def _series(namespace: str, name: str, dims: str) -> str:
    key = json.dumps([namespace, name, dims], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MetricPoint:
    """A statistic set for one metric in one minute (`timestamp` is rounded down to it)."""

    namespace: str
    name: str
    dimensions: Dimensions
    timestamp: Time
    sample_count: float
    sum: float
    minimum: float
    maximum: float
    unit: str = "None"

    @classmethod
    def single(
        cls,
        namespace: str,
        name: str,
        dimensions: Dimensions,
        timestamp: Time,
        value: float,
        unit: str = "None",
    ) -> MetricPoint:
        """One observed value."""
        return cls(namespace, name, dimensions, timestamp, 1.0, value, value, value, unit)


@dataclass(frozen=True)
class Datapoint:
    """The statistics of one period; `value` is the one asked for."""

    timestamp: datetime  # the period's start, UTC
    sample_count: float
    sum: float
    minimum: float
    maximum: float
    unit: str
    value: float

    def statistic(self, stat: str) -> float:
        """SampleCount, Average, Sum, Minimum or Maximum."""
        return _statistic(stat, self.sample_count, self.sum, self.minimum, self.maximum)


@dataclass(frozen=True)
class MetricId:
    namespace: str
    name: str
    dimensions: dict[str, str] = field(default_factory=dict)


def _statistic(stat: str, n: float, total: float, low: float, high: float) -> float:
    if stat == "SampleCount":
        return n
    if stat == "Average":
        return total / n if n else 0.0
    if stat == "Sum":
        return total
    if stat == "Minimum":
        return low
    if stat == "Maximum":
        return high
    raise ValueError(f"unknown statistic {stat!r}; one of {', '.join(STATISTICS)}")


class MetricStore:
    """The repository of metric points; every method is one short transaction (call it from
    a thread when on an event loop)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ----------------------------------------------------------------------------- write
    def write(self, points: Iterable[MetricPoint]) -> int:
        """Store `points`, merged per minute with what is there; returns rows written."""
        merged: dict[tuple[str, int], dict[str, Any]] = {}
        for p in points:
            dims = canonical_dimensions(p.dimensions)
            series = _series(p.namespace, p.name, dims)
            minute = epoch_seconds(p.timestamp) // _MINUTE * _MINUTE
            row = merged.get((series, minute))
            if row is None:
                merged[(series, minute)] = {
                    "series": series,
                    "timestamp": minute,
                    "namespace": p.namespace,
                    "metric_name": p.name,
                    "dimensions": dims,
                    "sample_count": float(p.sample_count),
                    "sum": float(p.sum),
                    "minimum": float(p.minimum),
                    "maximum": float(p.maximum),
                    "unit": p.unit,
                }
            else:
                row["sample_count"] += p.sample_count
                row["sum"] += p.sum
                row["minimum"] = min(row["minimum"], p.minimum)
                row["maximum"] = max(row["maximum"], p.maximum)
        if not merged:
            return 0
        rows = list(merged.values())
        with self._sessions.begin() as session:
            _upsert(session, rows)
        return len(rows)

    # ----------------------------------------------------------------------------- read
    def query(
        self,
        namespace: str,
        name: str,
        dimensions: Dimensions,
        start: Time,
        end: Time,
        period_s: int,
        stat: str = "Average",
        unit: str | None = None,
    ) -> list[Datapoint]:
        """The periods of [start, end) that hold data, oldest first, each with every
        statistic and `value` = `stat`. Periods start at `start` rounded down to the minute,
        every `period_s` seconds; `unit` keeps only points stored with that unit."""
        if period_s < 1:
            raise ValueError("period_s must be at least 1")
        _statistic(stat, 1, 0, 0, 0)  # unknown statistics fail before the database is asked
        first = epoch_seconds(start) // _MINUTE * _MINUTE
        last = epoch_seconds(end)
        if last <= first:
            return []
        t = MetricPointRow
        series = _series(namespace, name, canonical_dimensions(dimensions))
        bucket = ((t.timestamp - first) // period_s).label("bucket")
        q = (
            select(
                bucket,
                func.sum(t.sample_count),
                func.sum(t.sum),
                func.min(t.minimum),
                func.max(t.maximum),
                func.max(t.unit),
            )
            .where(t.series == series, t.timestamp >= first, t.timestamp < last)
            .group_by(bucket)
            .order_by(bucket)
        )
        if unit is not None:
            q = q.where(t.unit == unit)
        with self._sessions() as session:
            rows = session.execute(q).all()
        return [
            Datapoint(
                timestamp=datetime.fromtimestamp(first + int(b) * period_s, UTC),
                sample_count=n,
                sum=total,
                minimum=low,
                maximum=high,
                unit=u,
                value=_statistic(stat, n, total, low, high),
            )
            for b, n, total, low, high, u in rows
        ]

    def list_metrics(
        self,
        namespace: str | None = None,
        name: str | None = None,
        dimension_filters: Sequence[tuple[str, str | None]] = (),
        since: Time | None = None,
    ) -> list[MetricId]:
        """Metrics with data (since `since`, if given), sorted by namespace, name, dimensions.
        A filter (name, value) keeps metrics having that dimension with that value; (name,
        None) keeps metrics having that dimension at all."""
        t = MetricPointRow
        q = select(t.namespace, t.metric_name, t.dimensions).distinct()
        if namespace is not None:
            q = q.where(t.namespace == namespace)
        if name is not None:
            q = q.where(t.metric_name == name)
        if since is not None:
            q = q.where(t.timestamp >= epoch_seconds(since) // _MINUTE * _MINUTE)
        with self._sessions() as session:
            rows = session.execute(q).all()
        found = []
        for ns, metric, dims_json in rows:
            dims = dict(json.loads(dims_json))
            if all(k in dims and (v is None or dims[k] == v) for k, v in dimension_filters):
                found.append(MetricId(ns, metric, dims))
        found.sort(key=lambda m: (m.namespace, m.name, sorted(m.dimensions.items())))
        return found

    # ----------------------------------------------------------------------------- retention
    def delete_before(self, cutoff: Time) -> int:
        """Delete the minutes that start before `cutoff`; returns how many."""
        t = MetricPointRow
        with self._sessions.begin() as session:
            result = session.execute(delete(t).where(t.timestamp < epoch_seconds(cutoff)))
        return int(getattr(result, "rowcount", 0) or 0)


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (series, timestamp) DO UPDATE merging the statistic sets, on
    SQLite and PostgreSQL alike (one statement per row, batched by the driver)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        stmt: Any = postgresql.insert(MetricPointRow)
    elif dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        stmt = sqlite.insert(MetricPointRow)
    else:  # pragma: no cover - pier supports the two above
        raise NotImplementedError(f"metric points on {dialect}")
    t = MetricPointRow
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.series, t.timestamp],
        set_={
            "sample_count": t.sample_count + new.sample_count,
            "sum": t.sum + new.sum,
            "minimum": case((new.minimum < t.minimum, new.minimum), else_=t.minimum),
            "maximum": case((new.maximum > t.maximum, new.maximum), else_=t.maximum),
        },
    )
    session.execute(stmt, rows)
