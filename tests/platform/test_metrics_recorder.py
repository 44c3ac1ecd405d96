"""pier.platform.metrics_recorder: the router's minutes and the instances' CPU and memory,
written to a real (SQLite) store and read back as CloudWatch statistics."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pier.platform.metrics_recorder import INSTANCE_NAMESPACE, NAMESPACE, MetricsRecorder
from pier.router.metrics import EndpointMetrics, InstanceProcess
from pier.router.table import EndpointRoute, RoutingTable, Target, VariantRoute
from pier.store import db
from pier.store.metrics import MetricPoint, MetricStore

T0 = 1_764_583_200  # a minute boundary
DIMS = {"EndpointName": "e", "VariantName": "a"}


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 5.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetricStore]:
    engine = db.create(f"sqlite:///{tmp_path}/pier.db")
    db.migrate(engine)
    yield MetricStore(db.sessions(engine))
    engine.dispose()


def setup(
    store: MetricStore, clock: Clock, instances: int = 2
) -> tuple[EndpointMetrics, MetricsRecorder]:
    table = RoutingTable()
    targets = [Target(f"e-{i}", f"http://127.0.0.1:{9000 + i}") for i in range(instances)]
    table.set(EndpointRoute("e", {"a": VariantRoute("a", 1.0, targets)}))
    metrics = EndpointMetrics(CollectorRegistry(), table, lambda: [], clock=clock)
    me = [InstanceProcess("e", "a", "e-0", os.getpid())]  # this process stands in for one
    recorder = MetricsRecorder(metrics, table, lambda: me, store, clock=clock,
                               memory_bytes=1 << 40)  # fmt: skip
    return metrics, recorder


def stat(store: MetricStore, name: str, stat: str, namespace: str = NAMESPACE,
         dims: dict[str, str] = DIMS) -> list[float]:  # fmt: skip
    return [d.value for d in store.query(namespace, name, dims, T0 - 60, T0 + 600, 60, stat)]


def test_request_metrics_with_sagemaker_semantics(store: MetricStore) -> None:
    clock = Clock()
    metrics, recorder = setup(store, clock)
    v = metrics.variant("e", "a")
    for status, latency in [(200, 100), (200, 300), (400, 200), (500, 400)]:
        v.answered(status, latency)
    v.overhead(50)
    asyncio.run(recorder.flush())
    v.answered(200, 1000)  # later in the same minute: merged into it by the next flush
    clock.now = T0 + 65
    v.answered(200, 50)  # the next minute
    asyncio.run(recorder.flush())

    assert stat(store, "Invocations", "Sum") == [5, 1]
    assert stat(store, "Invocations", "SampleCount") == [5, 1]
    assert stat(store, "Invocation4XXErrors", "Sum") == [1, 0]
    assert stat(store, "Invocation5XXErrors", "Average") == [0.2, 0]  # the error rate
    assert stat(store, "InvocationModelErrors", "Sum") == [2, 0]
    assert stat(store, "InvocationModelErrors", "Maximum") == [1, 0]
    assert stat(store, "InvocationsPerInstance", "Sum") == [2.5, 0.5]  # two instances
    assert stat(store, "ModelLatency", "Average") == [2000 / 5, 50]
    assert stat(store, "ModelLatency", "Maximum") == [1000, 50]
    assert stat(store, "ModelLatency", "Minimum") == [100, 50]
    assert stat(store, "OverheadLatency", "Sum") == [50]
    [unit] = {d.unit for d in store.query(NAMESPACE, "ModelLatency", DIMS, T0, T0 + 120, 60)}
    assert unit == "Microseconds"


def test_cpu_and_memory_per_instance_and_variant(store: MetricStore) -> None:
    clock = Clock()
    _, recorder = setup(store, clock)
    recorder.collect()  # the first sample: a baseline for CPU time
    total = 0
    for i in range(300_000):  # burn a little CPU so the next sample sees it
        total += i * i
    clock.now = T0 + 30
    assert recorder.collect() == []  # the minute is not over
    clock.now = T0 + 61  # a new minute: the first one is written
    asyncio.run(recorder.flush())
    instance = {**DIMS, "InstanceId": "e-0"}
    [cpu] = stat(store, "CPUUtilization", "Average", INSTANCE_NAMESPACE, instance)
    assert 0 < cpu <= 100 * (os.cpu_count() or 1)
    [memory] = stat(store, "MemoryUtilization", "Maximum", INSTANCE_NAMESPACE, instance)
    assert 0 < memory < 1  # of a pretend 1 TiB machine
    assert stat(store, "CPUUtilization", "SampleCount", INSTANCE_NAMESPACE) == [1]  # variant
    asyncio.run(recorder.aclose())  # a clean stop writes the minute in progress too
    assert stat(store, "MemoryUtilization", "SampleCount", INSTANCE_NAMESPACE) == [1, 1]


def test_a_failed_write_is_retried(store: MetricStore) -> None:
    clock = Clock()
    metrics, recorder = setup(store, clock)
    metrics.variant("e", "a").answered(200, 10)
    real = store.write

    def broken(points: object) -> int:
        raise OSError("disk full")

    store.write = broken  # type: ignore[method-assign]
    asyncio.run(recorder.flush())
    store.write = real  # type: ignore[method-assign]
    asyncio.run(recorder.flush())
    assert stat(store, "Invocations", "Sum") == [1]


def test_retention(store: MetricStore) -> None:
    clock = Clock()
    _, recorder = setup(store, clock)
    recorder.retention = timedelta(minutes=5)
    store.write(
        [MetricPoint.single("c", "m", {}, T0 - 600, 1), MetricPoint.single("c", "m", {}, T0, 1)]
    )
    asyncio.run(recorder.expire())
    assert [d.timestamp.timestamp() for d in store.query("c", "m", {}, T0 - 3600, T0 + 60, 60)] == [
        T0
    ]
