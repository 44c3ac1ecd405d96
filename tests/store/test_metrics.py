"""pier.store.metrics: per-minute merge, aggregation by period and statistic, listing and
retention, on SQLite and on PostgreSQL (a throwaway database, migrated like the platform's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete

from pier.store import db
from pier.store.metrics import MetricPoint, MetricStore
from pier.store.tables import MetricPointRow

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a whole hour
NS = "AWS/SageMaker"
DIMS = {"EndpointName": "e", "VariantName": "v"}


@pytest.fixture(scope="module")
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


@pytest.fixture
def store(engine: Engine) -> MetricStore:
    with engine.begin() as conn:
        conn.execute(delete(MetricPointRow))
    return MetricStore(db.sessions(engine))


def point(minute: int, value: float, name: str = "ModelLatency", **dims: str) -> MetricPoint:
    at = T0 + timedelta(minutes=minute, seconds=17)  # anywhere in the minute
    return MetricPoint.single(NS, name, dims or DIMS, at, value, "Microseconds")


def test_points_of_a_minute_merge_across_writes(store: MetricStore) -> None:
    store.write([point(0, 10), point(0, 30)])
    store.write([point(0, 5)])
    store.write([MetricPoint(NS, "ModelLatency", DIMS, T0, 4, 400, 50, 200, "Microseconds")])
    [d] = store.query(NS, "ModelLatency", DIMS, T0, T0 + timedelta(minutes=1), 60, "Average")
    assert (d.timestamp, d.sample_count, d.sum, d.minimum, d.maximum) == (T0, 7, 445, 5, 200)
    assert d.value == pytest.approx(445 / 7)
    assert d.unit == "Microseconds"


def test_periods_and_statistics(store: MetricStore) -> None:
    # minutes 0..9 hold value = minute + 1, twice; minute 12 once
    store.write([point(m, m + 1) for m in range(10)] + [point(m, m + 1) for m in range(10)])
    store.write([point(12, 100)])
    end = T0 + timedelta(minutes=15)
    by_minute = store.query(NS, "ModelLatency", DIMS, T0, end, 60, "Sum")
    assert [d.timestamp for d in by_minute] == [T0 + timedelta(minutes=m) for m in [*range(10), 12]]
    assert [d.value for d in by_minute] == [2 * (m + 1) for m in range(10)] + [100]

    def stat(s: str) -> list[float]:
        return [d.value for d in store.query(NS, "ModelLatency", DIMS, T0, end, 300, s)]

    assert stat("SampleCount") == [10, 10, 1]
    assert stat("Sum") == [2 * 15, 2 * 40, 100]
    assert stat("Average") == [3, 8, 100]
    assert stat("Minimum") == [1, 6, 100]
    assert stat("Maximum") == [5, 10, 100]
    five = store.query(NS, "ModelLatency", DIMS, T0, end, 300)
    assert [d.timestamp for d in five] == [T0 + timedelta(minutes=m) for m in (0, 5, 10)]
    assert [d.statistic("Maximum") for d in five] == [5, 10, 100]
    with pytest.raises(ValueError, match="unknown statistic"):
        store.query(NS, "ModelLatency", DIMS, T0, end, 60, "p99")


def test_range_alignment_dimensions_and_unit(store: MetricStore) -> None:
    store.write([point(m, 1) for m in range(5)])
    store.write([point(2, 7, EndpointName="e", VariantName="other")])
    # start inside minute 1 rounds down to it; end is exclusive
    got = store.query(NS, "ModelLatency", DIMS, T0 + timedelta(minutes=1, seconds=30),
                      T0 + timedelta(minutes=3), 60, "Sum")  # fmt: skip
    assert [d.timestamp for d in got] == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    # dimensions match exactly, in any order
    assert (
        store.query(NS, "ModelLatency", {"EndpointName": "e"}, T0, T0 + timedelta(hours=1), 60)
        == []
    )
    other = {"VariantName": "other", "EndpointName": "e"}
    assert [
        d.value
        for d in store.query(NS, "ModelLatency", other, T0, T0 + timedelta(hours=1), 3600, "Sum")
    ] == [7]
    assert (
        store.query(NS, "ModelLatency", DIMS, T0, T0 + timedelta(hours=1), 60, unit="Count") == []
    )
    assert store.query(NS, "ModelLatency", DIMS, T0, T0, 60) == []


def test_list_metrics_filters(store: MetricStore) -> None:
    store.write([point(0, 1, "Invocations"), point(0, 1, "ModelLatency")])
    store.write([point(1, 1, "Invocations", EndpointName="f", VariantName="v")])
    store.write([MetricPoint.single("Custom", "Drift", {"Feature": "age"}, T0, 0.2)])
    everything = store.list_metrics()
    assert [(m.namespace, m.name) for m in everything] == [
        ("AWS/SageMaker", "Invocations"), ("AWS/SageMaker", "Invocations"),
        ("AWS/SageMaker", "ModelLatency"), ("Custom", "Drift"),
    ]  # fmt: skip
    assert everything[0].dimensions == DIMS
    assert [m.name for m in store.list_metrics(namespace="Custom")] == ["Drift"]
    assert len(store.list_metrics(name="Invocations")) == 2
    by_endpoint = store.list_metrics(dimension_filters=[("EndpointName", "f")])
    assert [(m.name, m.dimensions["EndpointName"]) for m in by_endpoint] == [("Invocations", "f")]
    assert len(store.list_metrics(dimension_filters=[("VariantName", None)])) == 3
    assert store.list_metrics(dimension_filters=[("Nope", None)]) == []
    assert len(store.list_metrics(since=T0 + timedelta(minutes=1))) == 1


def test_retention_deletes_whole_old_minutes(store: MetricStore) -> None:
    store.write([point(m, 1) for m in range(5)])
    assert store.delete_before(T0 + timedelta(minutes=2, seconds=30)) == 3
    left = store.query(NS, "ModelLatency", DIMS, T0, T0 + timedelta(hours=1), 60)
    assert [d.timestamp.minute for d in left] == [3, 4]


def test_migrations_match_the_tables(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from pier.store.tables import Base

    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
