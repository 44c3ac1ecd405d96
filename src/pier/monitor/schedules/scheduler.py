"""The platform's monitoring scheduler: runs due schedules, one execution per thread.

Every ``poll_interval_s`` (and when the control API changes a schedule) the scheduler looks
for schedules in status ``Scheduled`` whose cron expression ticked since the tick they last
ran; it records a ``Pending`` execution for the latest such tick and hands it to its thread
pool. A platform that was down for hours runs the latest missed tick only, as SageMaker does
not backfill either. ``run_now`` starts an execution at once (``pier monitor run``), covering
one interval of the schedule before now.

An execution (:meth:`Scheduler.execute`) reads the schedule and the endpoint's current
DataCaptureConfig from the state store, loads the baseline (``file:``, ``s3://`` or
``models:/name/version``), runs :func:`pier.monitor.schedules.analysis.analyse` on the window,
records the outcome (``Completed``, ``CompletedWithViolations`` or ``Failed`` with its reason) and
hands the drift metrics to ``publish``. Executions left ``Pending`` or ``InProgress`` by a
platform that stopped are marked ``Failed`` at the next start.

The analysis runs in a worker process (``processes=True``, as the platform runs it): a window
of a million rows takes seconds of CPU, which in the platform's own process would hold the GIL
from the event loop serving invocations. The process is spawned on the first execution and
kept; one that dies (out of memory) fails its execution and is replaced for the next.

Platforms sharing a state database: only the leader runs the scheduler (pier.store.leader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pier.monitor.errors import MonitorError
from pier.monitor.schedules import cron
from pier.monitor.schedules.analysis import (
    DataMetric,
    ExecutionStatus,
    analyse,
    load_baseline,
    output_location,
    resolve_location,
)
from pier.storage import S3ClientFactory, resolve, s3_client
from pier.store.db import Sessions
from pier.store.metrics import MetricPoint, MetricStore
from pier.store.monitoring import MonitoringStore, MonitoringTx
from pier.store.tables import MonitoringExecutionRow, MonitoringScheduleRow

log = logging.getLogger("pier.monitor.schedules.scheduler")

DEFAULT_POLL_INTERVAL_S = 15.0

Publish = Callable[[list[DataMetric]], None]
FromModel = Callable[[str, Path], Path]


class ScheduleStatus(StrEnum):
    """A monitoring schedule's status, with SageMaker's values (MonitoringScheduleStatus)."""

    PENDING = "Pending"
    FAILED = "Failed"
    SCHEDULED = "Scheduled"
    STOPPED = "Stopped"


def _now() -> datetime:
    return datetime.now(UTC)


def schedule_expression(config: dict[str, Any]) -> str:
    """The schedule's expression (hourly when the request gave none)."""
    return str((config.get("ScheduleConfig") or {}).get("ScheduleExpression") or cron.HOURLY)


def parse_expression(config: dict[str, Any]) -> cron.Cron | None:
    """The schedule's cron (None for NOW, SageMaker's one-time schedule)."""
    expression = schedule_expression(config)
    return None if expression.strip().upper() == cron.NOW else cron.parse(expression)


def analysis_window(
    config: dict[str, Any], scheduled: datetime, *, on_demand: bool
) -> tuple[datetime, datetime]:
    """``[start, end)`` of an execution of the schedule ``config`` at ``scheduled``."""
    schedule = config.get("ScheduleConfig") or {}
    endpoint_input = _endpoint_input(config)
    start = schedule.get("DataAnalysisStartTime") or endpoint_input.get("StartTimeOffset")
    end = schedule.get("DataAnalysisEndTime") or endpoint_input.get("EndTimeOffset")
    return cron.window(parse_expression(config), scheduled, start, end, on_demand=on_demand)


def _config(row: MonitoringScheduleRow) -> dict[str, Any]:
    """The MonitoringScheduleConfig of a schedule's stored request."""
    config: dict[str, Any] = row.request["MonitoringScheduleConfig"]
    return config


def _job(config: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = config.get("MonitoringJobDefinition") or {}
    return job


def _endpoint_input(config: dict[str, Any]) -> dict[str, Any]:
    inputs = _job(config).get("MonitoringInputs") or [{}]
    endpoint_input: dict[str, Any] = inputs[0].get("EndpointInput") or {}
    return endpoint_input


class Scheduler:
    def __init__(
        self,
        sessions: Sessions,
        *,
        capture_base: Path,
        output_base: Path,
        publish: Publish | None = None,
        s3: S3ClientFactory = s3_client,
        from_model: FromModel | None = None,
        clock: Callable[[], datetime] = _now,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        workers: int = 1,
        processes: bool = False,
    ) -> None:
        self._store = MonitoringStore(sessions)
        self.capture_base = capture_base  # relative file: capture destinations
        self.output_base = output_base  # relative file: outputs and baselines
        self._publish = publish
        self._s3 = s3
        self._from_model = from_model
        self._clock = clock
        self._interval = poll_interval_s
        # Executions profile whole windows: on a small machine one at a time is plenty.
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pier-monitor")
        # The analyses, in worker processes (spawned: the platform's threads and event loop
        # are not forked), or in the pool's threads.
        self._workers = workers if processes else 0
        self._processes: ProcessPoolExecutor | None = self._new_processes()
        self._running: set[Future[str]] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        await asyncio.to_thread(self.recover)
        if self._processes is not None:
            # Spawn the worker now (it imports pandas and the analysis: seconds), not when
            # the first execution is due.
            self._processes.submit(_ready)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="pier-monitor-scheduler")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Queued executions are dropped (the next start marks them Failed); a running one ends.
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        if self._processes is not None:
            await asyncio.to_thread(self._processes.shutdown, wait=True)

    def _new_processes(self) -> ProcessPoolExecutor | None:
        if not self._workers:
            return None
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            self._workers, mp_context=context, initializer=_follow_parent, initargs=(os.getpid(),)
        )

    def notify(self) -> None:
        """A schedule changed: look again now (thread-safe)."""
        wake, task = self._wake, self._task
        if wake is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                task.get_loop().call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                log.exception("monitoring scheduler: looking for due schedules failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    def recover(self) -> int:
        """Mark executions a stopped platform left unfinished as Failed; how many."""
        now = self._clock()
        with self._store.begin() as tx:
            rows = tx.executions(statuses=(ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS))
            for row in rows:
                row.status = ExecutionStatus.FAILED
                row.failure_reason = "The platform stopped before the execution finished."
                row.last_modified_at = now
        return len(rows)

    # ---------------------------------------------------------------- scheduling
    def tick(self) -> list[int]:
        """Record and start an execution for every schedule with a tick due; their ids."""
        now = self._clock()
        due: list[int] = []
        with self._store.begin() as tx:
            for row in tx.schedules(status=ScheduleStatus.SCHEDULED):
                try:
                    parsed = parse_expression(_config(row))
                except cron.CronError:
                    continue  # refused at creation; an old row cannot stop the others
                if parsed is None:
                    continue
                latest = parsed.latest_at_or_before(now)
                last = row.last_tick_at or row.created_at
                if latest is None or latest <= last:
                    continue
                row.last_tick_at = latest
                due.append(self._record(tx, row, latest, on_demand=False))
        for execution_id in due:
            self._submit(execution_id)
        return due

    def run_now(self, name: str) -> int:
        """Start an execution of schedule ``name`` now; its id (MonitorError: no schedule)."""
        with self._store.begin() as tx:
            row = tx.schedule(name)
            if row is None:
                raise MonitorError(f"no monitoring schedule {name!r}")
            scheduled = self._clock().replace(microsecond=0)
            execution_id = self._record(tx, row, scheduled, on_demand=True)
        self._submit(execution_id)
        return execution_id

    def _submit(self, execution_id: int) -> None:
        try:
            future = self._pool.submit(self.execute, execution_id)
        except RuntimeError:  # shut down: the next start marks the execution Failed
            raise MonitorError("the platform is stopping; run the schedule again later") from None
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for the executions started so far to end."""
        wait(list(self._running), timeout)

    def _record(
        self, tx: MonitoringTx, row: MonitoringScheduleRow, scheduled: datetime, *, on_demand: bool
    ) -> int:
        now = self._clock()
        execution = MonitoringExecutionRow(
            schedule_name=row.name,
            endpoint_name=row.endpoint_name,
            monitoring_type=row.monitoring_type,
            scheduled_at=scheduled,
            created_at=now,
            last_modified_at=now,
            status=ExecutionStatus.PENDING,
        )
        try:
            execution.window_start, execution.window_end = analysis_window(
                _config(row), scheduled, on_demand=on_demand
            )
        except cron.CronError as exc:
            execution.status, execution.failure_reason = ExecutionStatus.FAILED, str(exc)
        return tx.add_execution(execution)

    # ---------------------------------------------------------------- one execution
    def execute(self, execution_id: int) -> str:
        """Run one recorded execution to its end (in a pool thread); its final status."""
        with self._store.begin() as tx:
            execution = tx.execution(execution_id)
            if execution is None or execution.status != ExecutionStatus.PENDING:
                return execution.status if execution is not None else ExecutionStatus.FAILED
            execution.status = ExecutionStatus.IN_PROGRESS
            execution.last_modified_at = self._clock()
            schedule = tx.schedule(execution.schedule_name)
            config = _config(schedule) if schedule is not None else None
            endpoint = tx.endpoint(execution.endpoint_name)
            capture_config = (
                (endpoint.deployed.get("config") or {}).get("DataCaptureConfig")
                if endpoint is not None
                else None
            )
            scheduled = execution.scheduled_at
            assert execution.window_start is not None
            assert execution.window_end is not None
            start, end = execution.window_start, execution.window_end
            name, endpoint_name = execution.schedule_name, execution.endpoint_name
        environment = (_job(config).get("Environment") or {}) if config is not None else {}
        work = _Work(
            config, name, endpoint_name, endpoint is not None, capture_config,
            scheduled, start, end, self.capture_base, self.output_base, self._s3,
            self._from_model,
            metrics=self._publish is not None
            and environment.get("publish_cloudwatch_metrics") != "Disabled",
        )  # fmt: skip
        try:
            result = self._analyse(work)
        except Exception as exc:
            log.exception("monitoring execution %s of %s failed", execution_id, name)
            result = _Result(ExecutionStatus.FAILED, f"Internal error: {exc}")
        if result.metrics and self._publish is not None:
            try:
                self._publish(result.metrics)
            except Exception:  # metrics are a side channel: the execution's result stands
                log.exception("publishing the drift metrics of %s failed", name)
        status, reason, report, output = result.status, result.reason, result.report, result.output
        with self._store.begin() as tx:
            execution = tx.execution(execution_id)
            if execution is not None:
                execution.status = status
                execution.failure_reason = reason[:1024] if reason else None
                execution.report = report
                execution.output_uri = output
                execution.last_modified_at = self._clock()
        log.info("monitoring execution of %s (%s): %s", name, endpoint_name, status)
        return status

    def _analyse(self, work: _Work) -> _Result:
        """The analysis, in a worker process when there are (a broken pool: replaced)."""
        processes = self._processes
        if processes is None:
            return analyse_work(work)
        try:
            future = processes.submit(analyse_work, work)
        except BrokenProcessPool:  # the worker died while idle: a new one takes the work
            processes = self._replace_processes(processes)
            future = processes.submit(analyse_work, work)
        try:
            return future.result()
        except BrokenProcessPool:
            self._replace_processes(processes)
            return _Result(
                ExecutionStatus.FAILED,
                "The monitoring worker process ended during the analysis (out of memory?).",
            )

    def _replace_processes(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        broken.shutdown(wait=False)
        fresh = self._new_processes()
        assert fresh is not None
        self._processes = fresh
        return fresh


def _follow_parent(parent: int) -> None:
    """A worker's initializer: exit when the platform does, even killed (SIGKILL leaves no
    chance to stop the pool, and the worker holds its own end of the work queue)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="pier-follow-parent", daemon=True).start()


def _ready() -> None:
    """A worker's first task: it has imported this module (and the analysis) to run it."""


@dataclass(frozen=True)
class _Work:
    """What one execution's analysis needs (picklable: it may run in a worker process)."""

    config: dict[str, Any] | None
    name: str
    endpoint: str
    endpoint_exists: bool
    capture_config: dict[str, Any] | None
    scheduled: datetime
    start: datetime
    end: datetime
    capture_base: Path
    output_base: Path
    s3: S3ClientFactory
    from_model: FromModel | None
    metrics: bool  # compute the drift metrics to publish


@dataclass(frozen=True)
class _Result:
    status: str
    reason: str | None = None
    report: dict[str, Any] | None = None
    output: str | None = None
    metrics: list[DataMetric] = field(default_factory=list)


def analyse_work(w: _Work) -> _Result:
    """One execution's analysis: read the window and the baseline, write the outputs."""
    if w.config is None:
        return _Result(ExecutionStatus.FAILED, f"The monitoring schedule {w.name} was deleted.")
    if not w.endpoint_exists:
        return _Result(ExecutionStatus.FAILED, f"Endpoint {w.endpoint} does not exist.")
    capture_config = w.capture_config
    if not capture_config or not capture_config.get("EnableCapture", True):
        return _Result(
            ExecutionStatus.FAILED, f"Endpoint {w.endpoint} does not capture its requests."
        )
    capture = resolve(capture_config["DestinationS3Uri"], w.capture_base)
    job = _job(w.config)
    resources = job.get("BaselineConfig") or {}
    statistics = (resources.get("StatisticsResource") or {}).get("S3Uri")
    constraints = (resources.get("ConstraintsResource") or {}).get("S3Uri")
    baseline = None
    if statistics or constraints:
        try:
            baseline = load_baseline(
                statistics or constraints or "", constraints or statistics or "",
                w.output_base, s3=w.s3, from_model=w.from_model,
            )  # fmt: skip
        except MonitorError as exc:
            return _Result(ExecutionStatus.FAILED, f"Could not read the baseline: {exc}")
    outputs = job["MonitoringOutputConfig"]["MonitoringOutputs"]
    target = resolve_location(outputs[0]["S3Output"]["S3Uri"], w.output_base)
    output = output_location(target, w.endpoint, w.name, w.scheduled)
    outcome = analyse(baseline, capture, w.endpoint, w.start, w.end, output, s3=w.s3)
    metrics = outcome.data_metrics(w.endpoint, w.name) if w.metrics else []
    return _Result(
        outcome.status, outcome.failure_reason, outcome.report(), outcome.output, metrics
    )


def publish_to(store: MetricStore) -> Publish:
    """``publish`` for the platform's metric store (CloudWatch's API and alarms read it)."""

    def publish(metrics: list[DataMetric]) -> None:
        store.write(
            MetricPoint.single(m.namespace, m.name, dict(m.dimensions), m.timestamp, m.value)
            for m in metrics
        )

    return publish


__all__ = [
    "ScheduleStatus",
    "Scheduler",
    "analysis_window",
    "parse_expression",
    "publish_to",
    "schedule_expression",
]
