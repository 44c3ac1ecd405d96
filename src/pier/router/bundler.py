"""Bundles to one instance: the requests the router holds for it go in one exchange.

Why: an instance behind the router got its requests one at a time, spread out by the router's
own work on each, so it started a predict call for the first while the rest of the burst was
still on its way, and woke, read and answered for every request alone (pier.contract.bundle
has the measurements). Bundling gives it every waiting request at once.

Policy (the model server's adaptive batching, one hop up): at most DEPTH bundles are in
flight to an instance. When fewer are, what waits goes at the end of the event loop's current
step if at least as many requests wait as the last bundle carried, so a lone client waits for
nothing; otherwise the rest of the burst is given GATHER_SHARE of a bundle's round trip (at most
GATHER_MAX_S) to arrive, as the clients answered by the last bundle send their next requests.
Requests that arrive while DEPTH bundles are in flight wait until one comes back. At most
MAX_ITEMS requests and about MAX_BYTES go in one bundle. A request's timeout counts from when
its bundle is sent.

Failures are the bundle's, with the hop's rules (pier.router.upstream): not sent (cannot
connect, or reset before the instance read it) -> every request in it may go to another
instance; lost after sending or timed out -> every request in it fails, none is sent again.
An instance that refuses the bundle as a whole (an HTTP error for the exchange) gives that
answer to each of its requests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from pier.contract import bundle
from pier.router.upstream import UpstreamLost, UpstreamPool, UpstreamResponse

#: Bundles in flight per instance. Two: one predicting, the next already there when it ends
#: (one left the instance idle while the router turned a bundle's answers around: 0.68 of
#: direct at c64 against 0.72, docs/benchmarks.md, "Hosting").
DEPTH = 2
MAX_ITEMS = 256
#: How long a bundle waits for the rest of a burst: this share of a bundle's round trip (the
#: instance's predict time, mostly), at most GATHER_MAX_S.
GATHER_SHARE = 0.3
GATHER_MAX_S = 0.002
MAX_BYTES = 4 * 1024 * 1024
_HEADERS = [("content-type", bundle.CONTENT_TYPE)]


@dataclass(slots=True, eq=False)
class _Held:
    request: bundle.BundledRequest
    answer: asyncio.Future[UpstreamResponse]


class Bundler:
    """The requests for one instance (host, port), sent in bundles over `pool`."""

    def __init__(
        self, pool: UpstreamPool, host: str, port: int, timeout_s: float, depth: int = DEPTH
    ) -> None:
        self._pool = pool
        self._host, self._port = host, port
        self._timeout_s = timeout_s
        self._depth = depth
        self._queue: deque[_Held] = deque()
        self._in_flight = 0
        self._flush_due = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_size = 1  # requests in the last bundle sent
        self._round_trip_s = 0.0  # moving average of a bundle's round trip
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight (the router may forget this bundler)."""
        return not self._queue and not self._in_flight

    def submit(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> asyncio.Future[UpstreamResponse]:
        """The instance's answer to one request, once its bundle comes back."""
        loop = asyncio.get_running_loop()
        held = _Held(
            bundle.BundledRequest(
                content_type.encode("latin-1") if content_type is not None else None,
                accept.encode("latin-1") if accept is not None else None,
                body,
            ),
            loop.create_future(),
        )
        self._queue.append(held)
        if self._in_flight < self._depth:
            self._schedule(loop)
        return held.answer

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """A bundle can go: at the end of this step when as many requests wait as the last
        bundle carried (or it is the first), else once GATHER_SHARE of a round trip passes."""
        if self._flush_due:
            return
        if len(self._queue) >= self._last_size or not self._round_trip_s:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._flush_due = True
            loop.call_soon(self._flush)
        elif self._timer is None:
            wait = min(self._round_trip_s * GATHER_SHARE, GATHER_MAX_S)
            self._timer = loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue and self._in_flight < self._depth:
            items: list[_Held] = []
            size = 0
            while self._queue and len(items) < MAX_ITEMS and size < MAX_BYTES:
                held = self._queue.popleft()
                if held.answer.done():  # its caller is gone (cancelled)
                    continue
                items.append(held)
                size += len(held.request.body)
            if not items:
                return
            self._in_flight += 1
            self._last_size = len(items)
            task = asyncio.get_running_loop().create_task(self._send(items))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, items: list[_Held]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            data = bundle.encode_requests([h.request for h in items])
            response = await self._pool.post(
                self._host, self._port, bundle.BUNDLE_PATH, data, _HEADERS, self._timeout_s
            )
            answers = _answers(response, len(items))
        except asyncio.CancelledError:  # the router is closing
            for held in items:
                held.answer.cancel()
            raise
        except Exception as exc:
            for held in items:
                if not held.answer.done():  # a fresh exception each: each caller raises its own
                    held.answer.set_exception(_copy(exc))
        else:
            took = loop.time() - started
            rtt = self._round_trip_s
            self._round_trip_s = took if not rtt else 0.8 * rtt + 0.2 * took
            for held, answer in zip(items, answers, strict=True):
                if not held.answer.done():
                    held.answer.set_result(answer)
        finally:
            self._in_flight -= 1
            if self._queue:
                self._schedule(loop)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._sending):
            task.cancel()
        for held in self._queue:
            held.answer.cancel()
        self._queue.clear()


def _copy(exc: Exception) -> Exception:
    try:
        return type(exc)(*exc.args)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return UpstreamLost(f"the bundle failed: {exc!r}")


def _answers(response: UpstreamResponse, count: int) -> list[UpstreamResponse]:
    """One UpstreamResponse per request of the bundle."""
    if response.status != 200:  # refused as a whole: the same answer for each request
        return [response] * count
    try:
        answers = bundle.decode_answers(response.body)
    except bundle.BundleError as exc:
        raise UpstreamLost(f"invalid bundle answer: {exc}") from None
    if len(answers) != count:
        raise UpstreamLost(f"a bundle of {count} requests got {len(answers)} answers")
    return [UpstreamResponse(a.status, {b"content-type": a.content_type}, a.body) for a in answers]
