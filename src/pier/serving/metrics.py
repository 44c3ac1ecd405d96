"""Prometheus metrics of one model-server worker (GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pier_invocations",
            "POST /invocations requests, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "pier_invocation_errors",
            "POST /invocations requests answered with an error, by status and error code",
            ["status", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pier_invocation_latency_seconds",
            "Time from request received to response ready",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "pier_batch_rows",
            "Rows per predict call",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "pier_batch_requests",
            "Requests merged into one predict call",
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        # Resolve label children once: .labels() costs microseconds on every request.
        self._by_status: dict[int, Counter] = {}

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def observe_request(self, status: int, seconds: float, code: str | None = None) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self.requests.labels(str(status))
        child.inc()
        self.latency.observe(seconds)
        if code is not None:
            self.errors.labels(str(status), code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
