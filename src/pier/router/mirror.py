"""Shadow variants: a copy of a sampled share of an endpoint's requests, answers recorded.

SageMaker's rule (docs/shadow.md cites it): a shadow variant gets a copy of each request with
probability `share` = its weight over the production weight (capped at 1); an inference
experiment's SamplingPercentage sets that weight. The caller only ever gets the production
answer: the copy is sent after the production call returned (or failed), as a task nobody
awaits, so the production response never waits for it.

Bounded: at most `max_in_flight` copies are in flight at once (all shadows together). A copy
that does not fit is dropped and counted in `pier_shadow_dropped_requests_total{reason=
"overload"}` (visible on /metrics); the caller is never blocked. A clean stop awaits the copies
in flight (`aclose`): nothing sent is lost.

The shadow's answers and errors are counted in the endpoint metrics under its variant name,
like any variant's; when the endpoint captures data, both halves of a mirrored request (the
production's and the shadow's) are handed to `record` with one shared event id, so that
`pier compare` can pair them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from pier.contract.capture_config import CaptureSettings
from pier.router.metrics import EndpointMetrics
from pier.router.table import ShadowRoute, least_outstanding
from pier.router.upstream import UpstreamConnectError, UpstreamLost, UpstreamPool

DEFAULT_MAX_IN_FLIGHT = 64


@dataclass(slots=True)
class Recorded:
    """One half of a mirrored request, for data capture: what went in, what came out."""

    capture: CaptureSettings
    endpoint: str
    variant: str
    event_id: str
    inference_id: str | None
    request: bytes
    request_type: str | None
    response: bytes
    response_type: str | None
    status: int  # the model's HTTP status (504: timed out, 502: connection lost)
    model_latency_us: int


Record = Callable[[Recorded], None]


class Mirror:
    """Sends copies of requests to shadow variants, fire-and-forget, bounded."""

    def __init__(
        self,
        pool: UpstreamPool,
        metrics: EndpointMetrics | None,
        registry: CollectorRegistry | None,
        *,
        timeout_s: float = 60.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._max = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random()
        self.record: Record | None = None  # set by the platform when data capture runs
        self.dropped = Counter(
            "pier_shadow_dropped_requests",
            "Copies of requests not sent to a shadow variant (overload: too many in flight; "
            "no_instance: the shadow had no healthy instance)",
            ["endpoint", "variant", "reason"],
            registry=registry,
        )
        in_flight = Gauge(
            "pier_shadow_requests_in_flight",
            "Copies of requests sent to shadow variants and not answered yet",
            registry=registry,
        )
        in_flight.set_function(self.in_flight)

    def send(
        self,
        endpoint: str,
        shadow: ShadowRoute,
        body: bytes,
        forward: list[tuple[str, str]],
        capture: CaptureSettings | None,
        event_id: str | None,
        inference_id: str | None,
    ) -> None:
        """Start sending a copy of a request to `shadow`; returns at once, never raises.
        With `capture` and `event_id`, its answer is handed to `record`."""
        if len(self._tasks) >= self._max:
            self.dropped.labels(endpoint, shadow.name, "overload").inc()
            return
        if not shadow.targets:
            self.dropped.labels(endpoint, shadow.name, "no_instance").inc()
            return
        task = asyncio.ensure_future(
            self._run(endpoint, shadow, body, forward, capture, event_id, inference_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def in_flight(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Wait for the copies in flight (a clean stop loses none of their answers)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(
        self,
        endpoint: str,
        shadow: ShadowRoute,
        body: bytes,
        forward: list[tuple[str, str]],
        capture: CaptureSettings | None,
        event_id: str | None,
        inference_id: str | None,
    ) -> None:
        measured = self._metrics.variant(endpoint, shadow.name) if self._metrics else None
        target = least_outstanding(shadow.targets, self._rng)
        target.outstanding += 1
        started = time.perf_counter_ns()
        status, answer, answer_type, lost = 200, b"", "application/json", False
        try:
            response = await self._pool.post(
                target.host, target.port, "/invocations", body, forward, self._timeout_s
            )
            status, answer = response.status, response.body
            answer_type = response.headers.get(b"content-type", b"application/json").decode(
                "latin-1"
            )
        except (UpstreamConnectError, UpstreamLost, TimeoutError, OSError) as exc:
            status, lost = (504 if isinstance(exc, TimeoutError) else 502), True
            answer = f"The shadow variant did not answer: {exc or 'timeout'}".encode()
        finally:
            target.outstanding -= 1
        latency_us = (time.perf_counter_ns() - started) // 1000
        if measured is not None:
            if lost:
                measured.lost()
            else:
                measured.answered(status, latency_us)
        if capture is not None and event_id is not None and self.record is not None:
            self.record(
                Recorded(
                    capture, endpoint, shadow.name, event_id, inference_id, body,
                    dict(forward).get("content-type"), answer, answer_type, status, latency_us,
                )
            )  # fmt: skip
