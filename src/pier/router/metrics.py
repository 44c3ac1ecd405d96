"""SageMaker's endpoint metrics, counted where requests are seen, exposed for Prometheus.

SageMaker (AWS/SageMaker, by EndpointName, VariantName) → Prometheus (GET /metrics):
- Invocations → pier_endpoint_invocations_total{endpoint,variant}
- Invocation4XXErrors → pier_endpoint_invocation_4xx_errors_total{endpoint,variant}
- Invocation5XXErrors → pier_endpoint_invocation_5xx_errors_total{endpoint,variant}
- InvocationModelErrors → pier_endpoint_invocation_model_errors_total{endpoint,variant}
- ModelLatency (µs) → pier_endpoint_model_latency_seconds{endpoint,variant} (histogram)
- OverheadLatency (µs) → pier_endpoint_overhead_latency_seconds{endpoint,variant} (histogram)
- InvocationsPerInstance → rate(pier_endpoint_invocations_total)
  / pier_endpoint_variant_instances
- CPUUtilization (%, per instance) → rate(pier_instance_cpu_seconds_total) × 100
- MemoryUtilization → pier_instance_memory_bytes{endpoint,variant,instance}

Invocation errors are the model container's non-2xx answers (and a lost or timed-out
container), as on SageMaker; requests refused before a variant is chosen (signature, unknown
endpoint) are not counted against a variant.

When a variant leaves the routing table (its endpoint deleted, or an update dropped it), its
labelled series are removed: /metrics names only variants that exist. Instance series are read
at scrape time from the running instances, so a stopped instance's go with it.

The router holds one `VariantMetrics` per (endpoint, variant): Prometheus' labelled children
are looked up once, so a request costs a few counter increments and two histogram observations.

Beside them, each `VariantMetrics` adds the request to the current minute's `MinuteStats`
(counts; SampleCount/Sum/Min/Max of both latencies in µs): a few integer operations, no
allocation but one object per variant and minute, no lock (the platform runs one event loop).
The platform's recorder (pier.platform.metrics_recorder) drains them every few seconds into
the state store as CloudWatch's 1-minute series.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pier.router.table import RoutingTable

# Model latency spans sub-millisecond sklearn models to minute-long ones; overhead should stay
# well under a millisecond, so its buckets start lower.
_MODEL_BUCKETS = (
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
_OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class InstanceProcess:
    endpoint: str
    variant: str
    instance_id: str
    pid: int


_NO_MIN = 1 << 62  # above any latency in µs: the first sample of a minute replaces it


class MinuteStats:
    """What one variant counted in one minute (or in the part of it since the last drain).
    `minute` is epoch seconds // 60; latencies are µs."""

    __slots__ = (
        "ends",
        "errors_4xx",
        "errors_5xx",
        "invocations",
        "minute",
        "model_errors",
        "model_max",
        "model_min",
        "model_n",
        "model_sum",
        "overhead_max",
        "overhead_min",
        "overhead_n",
        "overhead_sum",
    )

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.ends = (minute + 1) * 60  # epoch seconds: the next minute starts here
        self.invocations = self.errors_4xx = self.errors_5xx = self.model_errors = 0
        self.model_n = self.model_sum = self.model_max = 0
        self.overhead_n = self.overhead_sum = self.overhead_max = 0
        self.model_min = self.overhead_min = _NO_MIN

    @property
    def empty(self) -> bool:
        return not (self.invocations or self.overhead_n)


class VariantMetrics:
    """The labelled children of one endpoint variant, and its per-minute statistics."""

    def __init__(
        self,
        metrics: EndpointMetrics,
        endpoint: str,
        variant: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        labels = (endpoint, variant)
        self.endpoint = endpoint
        self.variant = variant
        self.invocations = metrics.invocations.labels(*labels)
        self.errors_4xx = metrics.errors_4xx.labels(*labels)
        self.errors_5xx = metrics.errors_5xx.labels(*labels)
        self.model_errors = metrics.model_errors.labels(*labels)
        self.model_latency = metrics.model_latency.labels(*labels)
        self.overhead_latency = metrics.overhead_latency.labels(*labels)
        self._clock = clock
        self._open = MinuteStats(int(clock()) // 60)
        self._closed: list[MinuteStats] = []

    def _minute(self) -> MinuteStats:
        """The current minute's stats; a new minute closes the previous one."""
        current = self._open
        return current if self._clock() < current.ends else self._roll()

    def _roll(self) -> MinuteStats:
        minute = int(self._clock()) // 60
        current = self._open
        if current.minute != minute:
            if not current.empty:
                self._closed.append(current)
            current = self._open = MinuteStats(minute)
        return current

    def answered(self, status: int, model_latency_us: int) -> None:
        """The container answered with `status` after `model_latency_us`."""
        self.invocations.inc()
        self.model_latency.observe(model_latency_us / 1e6)
        m = self._open
        if self._clock() >= m.ends:  # one float comparison per request
            m = self._roll()
        m.invocations += 1
        m.model_n += 1
        m.model_sum += model_latency_us
        if model_latency_us < m.model_min:
            m.model_min = model_latency_us
        if model_latency_us > m.model_max:
            m.model_max = model_latency_us
        if status >= 400:
            self.model_errors.inc()
            m.model_errors += 1
            if status < 500:
                self.errors_4xx.inc()
                m.errors_4xx += 1
            else:
                self.errors_5xx.inc()
                m.errors_5xx += 1

    def lost(self) -> None:
        """The container timed out or the connection broke: a 5xx model error."""
        self.invocations.inc()
        self.model_errors.inc()
        self.errors_5xx.inc()
        m = self._minute()
        m.invocations += 1
        m.model_errors += 1
        m.errors_5xx += 1

    def overhead(self, overhead_us: int) -> None:
        """OverheadLatency of an answered request: the histogram and the minute's statistics."""
        self.overhead_latency.observe(overhead_us / 1e6)
        m = self._open
        if self._clock() >= m.ends:
            m = self._roll()
        m.overhead_n += 1
        m.overhead_sum += overhead_us
        if overhead_us < m.overhead_min:
            m.overhead_min = overhead_us
        if overhead_us > m.overhead_max:
            m.overhead_max = overhead_us

    def drain(self) -> list[MinuteStats]:
        """What was counted since the last drain, oldest minute first; the current minute
        starts again from zero. Called on the event loop, like the counting."""
        self._minute()  # an idle variant's finished minute is closed too
        out, self._closed = self._closed, []
        current = self._open
        if not current.empty:
            out.append(current)
            self._open = MinuteStats(current.minute)
        return out


class EndpointMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        table: RoutingTable,
        instances: Callable[[], list[InstanceProcess]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = ["endpoint", "variant"]
        self.registry = registry
        self.clock = clock  # epoch seconds: which minute a request is counted in
        self.invocations = Counter(
            "pier_endpoint_invocations", "Requests sent to a variant (SageMaker Invocations)",
            names, registry=registry,
        )  # fmt: skip
        self.errors_4xx = Counter(
            "pier_endpoint_invocation_4xx_errors",
            "Requests the model answered with a 4xx (Invocation4XXErrors)", names,
            registry=registry,
        )  # fmt: skip
        self.errors_5xx = Counter(
            "pier_endpoint_invocation_5xx_errors",
            "Requests the model answered with a 5xx, timed out or lost (Invocation5XXErrors)",
            names, registry=registry,
        )  # fmt: skip
        self.model_errors = Counter(
            "pier_endpoint_invocation_model_errors",
            "Requests that ended in a model error (InvocationModelErrors)", names,
            registry=registry,
        )  # fmt: skip
        self.model_latency = Histogram(
            "pier_endpoint_model_latency_seconds",
            "Time the model container took, as the router sees it (ModelLatency)", names,
            buckets=_MODEL_BUCKETS, registry=registry,
        )  # fmt: skip
        self.overhead_latency = Histogram(
            "pier_endpoint_overhead_latency_seconds",
            "Time pier added: request received to answer ready, less ModelLatency "
            "(OverheadLatency)", names, buckets=_OVERHEAD_BUCKETS, registry=registry,
        )  # fmt: skip
        registry.register(_LiveCollector(table, instances))
        self._variants: dict[tuple[str, str], VariantMetrics] = {}
        # Retired variants whose last counts the recorder has not drained yet.
        self._retired: list[VariantMetrics] = []
        table.on_retired(self.forget)

    def variant(self, endpoint: str, variant: str) -> VariantMetrics:
        key = (endpoint, variant)
        found = self._variants.get(key)
        if found is None:
            found = self._variants[key] = VariantMetrics(self, endpoint, variant, self.clock)
        return found

    def existing(self, endpoint: str, variant: str) -> VariantMetrics | None:
        """The variant's metrics if it is still routed (an answer that goes out after its
        endpoint was deleted must not bring its series back)."""
        return self._variants.get((endpoint, variant))

    def variants(self) -> list[VariantMetrics]:
        """Every variant that has been counted, and those retired since the last call (for
        the recorder's drain: their last counts still reach the store)."""
        retired, self._retired = self._retired, []
        return [*self._variants.values(), *retired]

    def forget(self, endpoint: str, variants: frozenset[str]) -> None:
        """Remove the labelled series of variants that are no longer routed."""
        for variant in variants:
            found = self._variants.pop((endpoint, variant), None)
            if found is not None:
                self._retired.append(found)
            for metric in (
                self.invocations, self.errors_4xx, self.errors_5xx, self.model_errors,
                self.model_latency, self.overhead_latency,
            ):  # fmt: skip
                with contextlib.suppress(KeyError):  # never counted
                    metric.remove(endpoint, variant)


class _LiveCollector(Collector):
    """Read at scrape time: instances per variant, and each instance's CPU and memory."""

    def __init__(self, table: RoutingTable, instances: Callable[[], list[InstanceProcess]]):
        self._table = table
        self._instances = instances

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        count = GaugeMetricFamily(
            "pier_endpoint_variant_instances", "Healthy instances serving a variant",
            labels=["endpoint", "variant"],
        )  # fmt: skip
        for name in self._table.names():
            route = self._table.get(name)
            for variant in route.variants.values() if route else ():
                count.add_metric([name, variant.name], len(variant.targets))
        yield count
        labels = ["endpoint", "variant", "instance"]
        cpu = CounterMetricFamily(
            "pier_instance_cpu_seconds", "CPU time of an instance's processes",
            labels=labels,
        )  # fmt: skip
        memory = GaugeMetricFamily(
            "pier_instance_memory_bytes", "Resident memory of an instance's processes",
            labels=labels,
        )  # fmt: skip
        for p in self._instances():
            usage = proc_usage(p.pid)
            if usage is not None:
                key = [p.endpoint, p.variant, p.instance_id]
                cpu.add_metric(key, usage[0])
                memory.add_metric(key, usage[1])
        yield cpu
        yield memory


def proc_usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of a process and its live descendants, from /proc; None if
    the process is gone.

    The tree, not the one pid: a server's worker processes (`--workers`), and a container whose
    main process is an init (tini, dumb-init) that starts the real server. CPU counts each
    process's own time plus its reaped children's (cutime, cstime), so the sum only grows as
    workers come and go; resident memory is summed (pages shared between forked workers count
    once per worker). psutil would do it too; a few small reads of /proc are all this needs."""
    own = _proc_one(pid)
    if own is None:
        return None
    cpu, rss = own
    seen = {pid}
    todo = _children(pid)
    while todo and len(seen) < _MAX_TREE:
        child = todo.pop()
        if child in seen:
            continue
        seen.add(child)
        usage = _proc_one(child)
        if usage is not None:
            cpu += usage[0]
            rss += usage[1]
            todo.extend(_children(child))
    return cpu, rss


_MAX_TREE = 256  # processes looked at per instance: a bound, not a limit any server reaches


def _proc_one(pid: int) -> tuple[float, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/statm", "rb") as f:
            statm = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # the name may hold spaces: skip past it
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / _CLOCK_TICKS, int(statm.split()[1]) * _PAGE


def _children(pid: int) -> list[int]:
    """The pids of a process's children (every thread's, as proc(5)'s task/TID/children)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return found
