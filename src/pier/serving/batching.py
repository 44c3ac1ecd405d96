"""Adaptive batching: concurrent requests merged into one predict call, split back after.

Policy (Triton's default, chosen because it never adds latency under low load): while one
predict runs, requests queue up; when the model is free, everything compatible that is queued
(same merge key, up to ``max_rows`` rows) goes in the next call. ``max_wait`` optionally holds a
non-full batch a little longer. Requests with different columns or params run in separate
calls. If a merged call fails, each of its requests is retried alone, so a bad request fails
only itself.

Gather (on unless ``gather=False``): when the model is idle and fewer requests are queued than
the last call took, the batcher waits for the rest of the burst, until that many are queued or
GATHER_SHARE of a predict call's average duration has passed (at most ``gather_max_s``).
Why: clients answered by one call send their next requests at once, but they arrive spread
out (behind a proxy, one by one); without the wait the first starts a call alone and the rest
wait a whole call for the next. A model busy or a lone client (last call: 1 request) is never
waited for, and the wait is bounded by a fraction of the call it saves. Measured on the
diabetes forest (a ~4 ms call whatever its size), direct to `pier serve`: 1,155 -> 1,605 req/s
at c8, 5,005 -> 8,230 at c64, one run each (docs/benchmarks.md, "Hosting", has the benchmark).

A request past its deadline gets RequestTimeout at once, but a predict call cannot be
interrupted (a thread running C code cannot be stopped). One that runs longer than
``stuck_after_s`` is reported once to ``on_stuck`` (with how long it has run): the server then
gives up the worker, since every later request would wait behind it (pier.serving.app).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pier.errors import RequestTimeout
from pier.serving.inputs import Prepared, merge, split

log = logging.getLogger("pier.serving")

BatchObserver = Callable[[int, int], None]  # (requests, rows) of each predict call


@dataclass(slots=True, eq=False)
class _Waiting:
    prepared: Prepared
    deadline: float | None  # loop.time() after which the caller gets a timeout
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


REAP_INTERVAL_S = 0.05
GATHER_SHARE = 0.125  # of a predict call's average duration
GATHER_MAX_S = 0.002


class Batcher:
    def __init__(
        self,
        predict: Callable[[Prepared], Any],
        *,
        enabled: bool = True,
        max_rows: int = 256,
        max_wait_s: float = 0.0,
        gather: bool = True,
        gather_max_s: float = GATHER_MAX_S,
        observe: BatchObserver | None = None,
        stuck_after_s: float | None = None,
        on_stuck: Callable[[float], None] | None = None,
    ) -> None:
        self._predict = predict
        self.stuck_after_s = stuck_after_s
        self._on_stuck = on_stuck or (lambda seconds: None)
        self._busy_since: float | None = None  # time.monotonic() of the running predict call
        self._stuck_reported = False
        self.enabled = enabled
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.gather = gather
        self.gather_max_s = gather_max_s
        self._last_batch = 1  # requests in the last predict call
        self._predict_s = 0.0  # moving average of a predict call's duration
        self._observe = observe or (lambda requests, rows: None)
        # One thread: one predict at a time per worker; the event loop keeps parsing meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pier-predict")
        self._queue: deque[_Waiting] = deque()
        self._pending: set[_Waiting] = set()  # submitted, not answered: watched for deadlines
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="pier-batcher")
        self._reaper = asyncio.create_task(self._reap(), name="pier-deadlines")

    async def stop(self) -> None:
        for task in (self._task, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._executor.shutdown(wait=True)

    async def submit(self, prepared: Prepared, deadline: float | None = None) -> Any:
        """The prediction for one request (its own rows only).

        Past `deadline` (the loop's clock) the caller gets RequestTimeout; the predict call
        itself cannot be interrupted and runs to its end. One timer checks every deadline
        (asyncio.timeout per request cost ~17% of the event loop at c64, measured).
        """
        waiting = _Waiting(prepared, deadline)
        self._pending.add(waiting)
        try:
            if not self.enabled:
                self._observe(1, prepared.n_rows)
                done = self._executor.submit(self._call, prepared)
                loop = asyncio.get_running_loop()
                done.add_done_callback(
                    lambda f: loop.call_soon_threadsafe(_resolve_from, waiting.future, f)
                )
            else:
                self._queue.append(waiting)
                assert self._wakeup is not None
                self._wakeup.set()
            return await waiting.future
        finally:
            self._pending.discard(waiting)

    def _call(self, prepared: Prepared) -> Any:
        """One predict call, in the predict thread, timed for the stuck check."""
        self._busy_since = time.monotonic()
        try:
            return self._predict(prepared)
        finally:
            self._busy_since = None

    def _check_stuck(self) -> None:
        busy = self._busy_since
        if self.stuck_after_s is None or busy is None or self._stuck_reported:
            return
        running = time.monotonic() - busy
        if running > self.stuck_after_s:
            self._stuck_reported = True
            self._on_stuck(running)

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            self._check_stuck()  # also when every caller has timed out and gone
            if not self._pending:
                continue
            now = loop.time()
            for w in list(self._pending):
                if w.deadline is not None and now >= w.deadline and not w.future.done():
                    w.future.set_exception(
                        RequestTimeout("Request processing time exceeded the limit.")
                    )

    def _take_batch(self) -> list[_Waiting]:
        """The oldest live request plus every queued request that can join it."""
        while self._queue and self._queue[0].future.done():  # timed out or cancelled
            self._queue.popleft()
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch = [first]
        key = first.prepared.merge_key
        if key is None:
            return batch
        rows = first.prepared.n_rows
        kept: deque[_Waiting] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():
                continue
            p = item.prepared
            if p.merge_key == key and rows + p.n_rows <= self.max_rows:
                batch.append(item)
                rows += p.n_rows
            else:
                kept.append(item)
        self._queue = kept
        return batch

    def _queued_rows(self) -> int:
        return sum(w.prepared.n_rows for w in self._queue)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.max_wait_s > 0 and self._queued_rows() < self.max_rows:
                await asyncio.sleep(self.max_wait_s)
            elif self.gather and len(self._queue) < self._last_batch:
                await self._gather(loop)
            batch = self._take_batch()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except Exception:  # never let the batcher die: the next requests must be served
                log.exception("batch failed unexpectedly")
                outcomes = [(None, RuntimeError("internal batching error"))] * len(batch)
            took = time.perf_counter() - started
            self._predict_s = took if not self._predict_s else 0.8 * self._predict_s + 0.2 * took
            self._last_batch = len(batch)
            for w, (result, error) in zip(batch, outcomes, strict=True):
                _resolve(w.future, result, error)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """The model is idle and fewer requests are queued than the last call took: wait for
        the rest of the burst, up to GATHER_SHARE of a predict call (at most GATHER_MAX_S)."""
        assert self._wakeup is not None
        wait = min(self._predict_s * GATHER_SHARE, self.gather_max_s)
        deadline = loop.time() + wait
        while len(self._queue) < self._last_batch and self._queued_rows() < self.max_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _run_batch(self, batch: list[_Waiting]) -> list[tuple[Any, BaseException | None]]:
        """Runs in the predict thread: (result, error) per request, in order."""
        if len(batch) > 1:
            sizes = [w.prepared.n_rows for w in batch]
            self._observe(len(batch), sum(sizes))
            try:
                parts = split(self._call(merge([w.prepared for w in batch])), sizes)
            except Exception:
                parts = None  # find the culprit: each request alone below
            if parts is not None:
                return [(part, None) for part in parts]
        outcomes: list[tuple[Any, BaseException | None]] = []
        for w in batch:
            self._observe(1, w.prepared.n_rows)
            try:
                outcomes.append((self._call(w.prepared), None))
            except Exception as exc:
                outcomes.append((None, exc))
        return outcomes


def _resolve_from(future: asyncio.Future[Any], done: Future[Any]) -> None:
    try:
        result, error = done.result(), None
    except Exception as exc:
        result, error = None, exc
    _resolve(future, result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
