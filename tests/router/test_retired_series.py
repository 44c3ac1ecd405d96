"""/metrics names only endpoints and variants that exist: when the routing table drops a
variant (its endpoint deleted, or an update that removed it), the router's and data capture's
labelled series go with it, and the recorder still drains the variant's last counts."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from pier.monitor.capture.writer import CaptureMetrics
from pier.router.invoke import Invocation, Router
from pier.router.metrics import EndpointMetrics
from pier.router.table import EndpointRoute, RoutingTable, Target, VariantRoute


def route(name: str, *variants: str) -> EndpointRoute:
    return EndpointRoute(
        name, {v: VariantRoute(v, 1.0, [Target("i-1", "http://127.0.0.1:1")]) for v in variants}
    )


def setup() -> tuple[RoutingTable, CollectorRegistry, EndpointMetrics, CaptureMetrics]:
    table, registry = RoutingTable(), CollectorRegistry()
    metrics = EndpointMetrics(registry, table, lambda: [])
    capture = CaptureMetrics(registry)
    table.on_retired(capture.forget)  # as the platform wires it (pier.platform.server)
    return table, registry, metrics, capture


def count(metrics: EndpointMetrics, capture: CaptureMetrics, endpoint: str, variant: str) -> None:
    v = metrics.variant(endpoint, variant)
    v.answered(200, 1000)
    v.overhead(100)
    v.answered(500, 1000)
    capture.records.labels(endpoint, variant).inc()
    capture.dropped.labels(endpoint, variant, "overload").inc()
    capture.upload_errors.labels(endpoint, variant).inc()


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_deleted_endpoints_leave_no_series_and_live_ones_keep_theirs() -> None:
    table, registry, metrics, capture = setup()
    table.set(route("live", "AllTraffic"))
    count(metrics, capture, "live", "AllTraffic")
    for i in range(20):
        table.set(route(f"gone-{i}", "AllTraffic", "B"))
        count(metrics, capture, f"gone-{i}", "AllTraffic")
        count(metrics, capture, f"gone-{i}", "B")
    for i in range(20):
        table.remove(f"gone-{i}")
    text = scrape(registry)
    assert "gone-" not in text
    for family in (
        "pier_endpoint_invocations_total", "pier_endpoint_invocation_5xx_errors_total",
        "pier_endpoint_model_latency_seconds_count", "pier_endpoint_overhead_latency_seconds_count",
        "pier_capture_records_total", "pier_capture_dropped_records_total",
        "pier_capture_upload_errors_total", "pier_endpoint_variant_instances",
    ):  # fmt: skip
        lines = [line for line in text.splitlines() if line.startswith(family + "{")]
        assert any('endpoint="live"' in x and 'variant="AllTraffic"' in x for x in lines), family
    # The recorder drains the deleted variants' last counts once, then they are gone.
    drained = {(v.endpoint, v.variant) for v in metrics.variants() if v.drain()}
    assert ("gone-3", "B") in drained
    assert {(v.endpoint, v.variant) for v in metrics.variants()} == {("live", "AllTraffic")}


def test_a_variant_dropped_by_an_update_loses_its_series() -> None:
    table, registry, metrics, capture = setup()
    table.set(route("ep", "A", "B"))
    count(metrics, capture, "ep", "A")
    count(metrics, capture, "ep", "B")
    table.set(route("ep", "A"))
    text = scrape(registry)
    assert 'variant="B"' not in text
    assert 'pier_endpoint_invocations_total{endpoint="ep",variant="A"} 2.0' in text


def test_an_answer_after_the_delete_does_not_bring_the_series_back() -> None:
    table, registry, metrics, _ = setup()
    router = Router(table, "123456789012", metrics=metrics)
    table.set(route("ep", "A"))
    metrics.variant("ep", "A").answered(200, 1000)  # the request reached the model...
    table.remove("ep")  # ...the endpoint is deleted before its answer goes out
    answer = Invocation(200, b"{}", "application/json", "A", None, 1000, None)
    router.answered("ep", answer, time.perf_counter_ns())
    assert 'endpoint="ep"' not in scrape(registry)
