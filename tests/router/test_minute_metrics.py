"""The per-minute accumulator beside the Prometheus children (pier.router.metrics): what a
variant counted, split by minute on an injected clock, drained once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from pier.router.metrics import EndpointMetrics, MinuteStats
from pier.router.table import RoutingTable

T0 = 1_764_583_200.0  # a minute boundary


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 5

    def __call__(self) -> float:
        return self.now


def metrics(clock: Clock) -> EndpointMetrics:
    return EndpointMetrics(CollectorRegistry(), RoutingTable(), lambda: [], clock=clock)


def fields(m: MinuteStats) -> dict[str, int]:
    return {k: getattr(m, k) for k in MinuteStats.__slots__}


def test_requests_counted_in_their_minute() -> None:
    clock = Clock()
    em = metrics(clock)
    v = em.variant("e", "a")
    v.answered(200, 300)
    v.answered(200, 100)
    v.answered(404, 500)
    v.answered(503, 200)
    v.lost()
    v.overhead(40)  # what Router.answered does
    v.overhead(20)
    [m] = v.drain()
    assert fields(m) == {
        "minute": int(T0) // 60, "ends": int(T0) + 60, "invocations": 5, "errors_4xx": 1,
        "errors_5xx": 2,
        "model_errors": 3, "model_n": 4, "model_sum": 1100, "model_min": 100,
        "model_max": 500, "overhead_n": 2, "overhead_sum": 60, "overhead_min": 20,
        "overhead_max": 40,
    }  # fmt: skip
    assert v.drain() == []  # drained once
    # Prometheus counts the same requests
    assert (
        em.registry.get_sample_value(
            "pier_endpoint_invocations_total", {"endpoint": "e", "variant": "a"}
        )
        == 5
    )
    assert (
        em.registry.get_sample_value(
            "pier_endpoint_overhead_latency_seconds_count", {"endpoint": "e", "variant": "a"}
        )
        == 2
    )


def test_minutes_split_on_the_clock_and_drain_resets() -> None:
    clock = Clock()
    v = metrics(clock).variant("e", "a")
    v.answered(200, 10)
    current = v._open
    v.answered(200, 20)
    assert v._open is current  # no allocation per request within a minute
    clock.now = T0 + 61
    v.answered(200, 30)
    clock.now = T0 + 70
    first, second = v.drain()
    assert (first.minute, first.invocations, first.model_max) == (int(T0) // 60, 2, 20)
    assert (second.minute, second.invocations, second.model_min) == (int(T0) // 60 + 1, 1, 30)
    v.answered(500, 40)  # the same minute, after a drain: counted from zero
    [third] = v.drain()
    assert (third.minute, third.invocations, third.errors_5xx, third.model_sum) == (
        second.minute, 1, 1, 40,
    )  # fmt: skip


def test_an_idle_minute_is_drained_and_empty_ones_are_not() -> None:
    clock = Clock()
    em = metrics(clock)
    v = em.variant("e", "a")
    assert v.drain() == []
    v.answered(200, 10)
    clock.now = T0 + 600  # nothing since: the old minute still comes out
    assert [m.invocations for m in v.drain()] == [1]
    assert v.drain() == []
    assert em.variants() == [v]
