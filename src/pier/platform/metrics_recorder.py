"""The platform's metrics recorder: the router's per-minute counts and each instance's CPU and
memory, written to the state store as CloudWatch's 1-minute series (pier.store.metrics).

Every `flush_s` seconds (10 by default, `PIER_METRICS_FLUSH_SECONDS`) and once more on a clean
stop, it drains what each variant counted since the last flush and writes it, merged into the
minute it belongs to, so the store is never more than one flush behind the router:

AWS/SageMaker, dimensions EndpointName, VariantName (SageMaker's names and meanings):
- Invocations: one sample of 1 per request (Sum = requests);
- Invocation4XXErrors, Invocation5XXErrors, InvocationModelErrors: one sample per request, 1
  when it failed that way and 0 otherwise (Sum = errors, Average = error rate);
- InvocationsPerInstance: one sample of 1 / healthy instances per request;
- ModelLatency, OverheadLatency: one sample per request, in microseconds.

/aws/sagemaker/Endpoints, per instance (dimensions EndpointName, VariantName, InstanceId; the
last is pier's) and per variant (EndpointName, VariantName: one sample per instance and minute):
- CPUUtilization: CPU time of the instance's server process over the minute, in % of one core;
- MemoryUtilization: its resident memory, in % of the machine's RAM (mean over the minute).
CPU and memory are written once their minute is over (and the current minute on a clean stop).

Points older than the retention (`PIER_METRICS_RETENTION_DAYS`, 15 days like CloudWatch's
1-minute data) are deleted at start and every hour. A store that cannot be written keeps the
points for the next flush (at most `MAX_PENDING`), and says so in the log once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pier.router.metrics import EndpointMetrics, InstanceProcess, MinuteStats, proc_usage
from pier.router.table import RoutingTable
from pier.store.metrics import MetricPoint, MetricStore

log = logging.getLogger("pier.metrics")

NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
MAX_PENDING = 200_000
RETENTION_EVERY_S = 3600.0


def total_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def request_points(
    endpoint: str, variant: str, m: MinuteStats, instances: int
) -> list[MetricPoint]:
    """The AWS/SageMaker points of what one variant counted in one minute."""
    dims = {"EndpointName": endpoint, "VariantName": variant}
    at = m.minute * 60
    n = m.invocations
    out: list[MetricPoint] = []
    if n:
        out.append(MetricPoint(NAMESPACE, "Invocations", dims, at, n, n, 1, 1))
        for name, errors in (
            ("Invocation4XXErrors", m.errors_4xx),
            ("Invocation5XXErrors", m.errors_5xx),
            ("InvocationModelErrors", m.model_errors),
        ):
            low, high = (0 if errors < n else 1), (1 if errors else 0)
            out.append(MetricPoint(NAMESPACE, name, dims, at, n, errors, low, high))
        if instances > 0:
            share = 1 / instances
            out.append(
                MetricPoint(NAMESPACE, "InvocationsPerInstance", dims, at, n, n * share,
                            share, share)
            )  # fmt: skip
    for name, count, total, low, high in (
        ("ModelLatency", m.model_n, m.model_sum, m.model_min, m.model_max),
        ("OverheadLatency", m.overhead_n, m.overhead_sum, m.overhead_min, m.overhead_max),
    ):
        if count:
            out.append(
                MetricPoint(NAMESPACE, name, dims, at, count, total, low, high, "Microseconds")
            )
    return out


@dataclass
class _Usage:
    """One instance's CPU and memory samples within one minute."""

    endpoint: str
    variant: str
    minute: int
    cpu_s: float = 0.0
    wall_s: float = 0.0
    memory_sum: float = 0.0
    memory_n: int = 0


class MetricsRecorder:
    def __init__(
        self,
        metrics: EndpointMetrics,
        table: RoutingTable,
        instances: Callable[[], list[InstanceProcess]],
        store: MetricStore,
        flush_s: float = 10.0,
        retention: timedelta = timedelta(days=15),
        clock: Callable[[], float] = time.time,
        memory_bytes: int | None = None,
    ) -> None:
        self.metrics = metrics
        self.table = table
        self.instances = instances
        self.store = store
        self.flush_s = flush_s
        self.retention = retention
        self.clock = clock
        self.memory_bytes = memory_bytes or total_memory()
        self._pending: list[MetricPoint] = []
        self._cpu: dict[str, tuple[float, float]] = {}  # instance id -> (CPU s, wall s) last seen
        self._usage: dict[str, _Usage] = {}  # instance id -> the minute being sampled
        self._task: asyncio.Task[None] | None = None
        self._last_retention = -RETENTION_EVERY_S
        self._last_error_log = -60.0

    # ------------------------------------------------------------------------- collecting
    def collect(self, final: bool = False) -> list[MetricPoint]:
        """Drain the router's counts and sample the instances (on the event loop: no lock).
        `final`: also the current minute's CPU and memory."""
        points: list[MetricPoint] = []
        for v in self.metrics.variants():
            minutes = v.drain()
            if minutes:
                healthy = self._healthy(v.endpoint, v.variant)
                for m in minutes:
                    points += request_points(v.endpoint, v.variant, m, healthy)
        points += self._sample(final)
        return points

    def _healthy(self, endpoint: str, variant: str) -> int:
        route = self.table.get(endpoint)
        found = route.variants.get(variant) if route else None
        return len(found.targets) if found else 0

    def _sample(self, final: bool) -> list[MetricPoint]:
        now = self.clock()
        minute = int(now) // 60
        over: list[tuple[str, _Usage]] = []
        seen: set[str] = set()
        for p in self.instances():
            usage = proc_usage(p.pid)
            if usage is None:
                continue
            cpu_s, rss = usage
            seen.add(p.instance_id)
            current = self._usage.get(p.instance_id)
            if current is None or current.minute != minute:
                if current is not None:
                    over.append((p.instance_id, current))
                current = self._usage[p.instance_id] = _Usage(p.endpoint, p.variant, minute)
            previous = self._cpu.get(p.instance_id)
            self._cpu[p.instance_id] = (cpu_s, now)
            if previous is not None and now > previous[1]:
                current.cpu_s += max(0.0, cpu_s - previous[0])
                current.wall_s += now - previous[1]
            current.memory_sum += rss
            current.memory_n += 1
        for instance_id in list(self._usage):
            if final or instance_id not in seen:  # stopping, or the instance is gone
                over.append((instance_id, self._usage.pop(instance_id)))
        for gone in set(self._cpu) - seen:
            del self._cpu[gone]
        return [p for instance_id, u in over for p in self._usage_points(instance_id, u)]

    def _usage_points(self, instance_id: str, u: _Usage) -> list[MetricPoint]:
        """CPUUtilization and MemoryUtilization of one instance-minute, per instance (with
        pier's InstanceId dimension) and per variant (one sample per instance)."""
        at = u.minute * 60
        variant = {"EndpointName": u.endpoint, "VariantName": u.variant}
        instance = {**variant, "InstanceId": instance_id}
        values = []
        if u.wall_s > 0:
            values.append(("CPUUtilization", 100.0 * u.cpu_s / u.wall_s))
        if u.memory_n:
            share = u.memory_sum / u.memory_n / self.memory_bytes
            values.append(("MemoryUtilization", 100.0 * share))
        return [
            MetricPoint.single(INSTANCE_NAMESPACE, name, dims, at, value, "Percent")
            for name, value in values
            for dims in (instance, variant)
        ]

    # ------------------------------------------------------------------------- writing
    async def flush(self, final: bool = False) -> None:
        points = self._pending + self.collect(final)
        self._pending = []
        if not points:
            return
        try:
            await asyncio.to_thread(self.store.write, points)
        except Exception as exc:
            self._pending = points[-MAX_PENDING:]
            now = time.monotonic()
            if now - self._last_error_log >= 60:
                self._last_error_log = now
                log.warning("could not write %d metric points (kept for retry): %s",
                            len(points), exc)  # fmt: skip

    async def expire(self) -> None:
        """Delete the points older than the retention."""
        cutoff = self.clock() - self.retention.total_seconds()
        try:
            deleted = await asyncio.to_thread(self.store.delete_before, cutoff)
        except Exception as exc:
            log.warning("could not delete expired metric points: %s", exc)
            return
        if deleted:
            log.info("deleted %d metric points older than %s", deleted, self.retention)

    # ------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pier-metrics")

    async def _run(self) -> None:
        while True:
            if time.monotonic() - self._last_retention >= RETENTION_EVERY_S:
                self._last_retention = time.monotonic()
                await self.expire()
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except Exception:
                log.exception("metrics recorder failure")

    async def aclose(self) -> None:
        """A clean stop: write everything counted, the current minute included."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(final=True)
