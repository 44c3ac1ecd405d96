"""A small keep-alive HTTP/1.1 client for the hop from the router to model-server instances.

Why not httpx: on this hop every request pays the client's per-call cost, and httpx spends
~200 µs of Python per POST (request/response models, header normalisation, auth and cookie
hooks) — more than the rest of the router together. This client does only what the hop needs:
POST a body to a loopback instance over pooled connections, parse the answer with httptools
(the parser uvicorn uses), and say precisely whether a failure happened before or after the
request was sent, which decides whether the router may retry elsewhere.
tests/router/test_upstream.py checks it against a real `pier serve` and the failure cases.
"""

from __future__ import annotations

import asyncio
import select
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import httptools

IDLE_SECONDS = 20.0  # below the instances' keep-alive timeout (60 s): never reuse a dying socket


class UpstreamConnectError(Exception):
    """The connection could not be made: nothing was sent, another instance may take it."""


class UpstreamLost(Exception):
    """The connection broke after the request was sent: it must not be sent again."""


class UpstreamNotDelivered(UpstreamConnectError):
    """The instance reset the connection with our request unread: it never saw it.

    TCP answers with a reset (RST) when a socket is closed while received data is still
    unread in it; a process that read the request and then died closes with a FIN instead.
    So a reset before any byte of the answer means the request never reached the model, and
    it may go to another instance. This is the window of an instance being killed: its
    listening socket still accepts connections until the last of its threads is gone.
    """


@dataclass(slots=True)  # one per routed request (per bundled one too): cheaper to build
class UpstreamResponse:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


@dataclass(eq=False)
class _Connection(asyncio.Protocol):
    transport: asyncio.Transport | None = None
    waiter: asyncio.Future[UpstreamResponse] | None = None
    closed: bool = False
    idle_since: float = 0.0
    poller: select.poll | None = None
    _status: int = 0
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _body: list[bytes] = field(default_factory=list)
    _parser: httptools.HttpResponseParser | None = None
    _keep_alive: bool = True
    _received: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if isinstance(exc, ConnectionResetError) and not self._received:
                self.waiter.set_exception(UpstreamNotDelivered(f"reset before reading: {exc}"))
            else:
                self.waiter.set_exception(UpstreamLost(f"connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._parser is None:
            return  # bytes nobody asked for: the next request will fail cleanly on close
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(UpstreamLost(f"invalid response: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        response = UpstreamResponse(self._status, self._headers, b"".join(self._body))
        self._parser = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    def send(self, request: bytes) -> asyncio.Future[UpstreamResponse]:
        if self.closed or self.transport is None or self.transport.is_closing():
            # Closed before a byte was written: a port proxy (Docker's) that accepted with
            # nothing behind it, or an instance that closed as it died. Nothing was sent.
            raise UpstreamNotDelivered("the connection closed before the request was sent")
        self._headers, self._body, self._received = {}, [], False
        self._parser = httptools.HttpResponseParser(self)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


def _expire(waiter: asyncio.Future[UpstreamResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _quiet(conn: _Connection) -> bool:
    """Whether an idle connection is still open: nothing to read and no hang-up pending.

    An instance that just died has closed its end, but the event loop may not have processed
    that yet; sending on such a connection would fail *after* sending, which the router must
    not retry. One poll() with a zero timeout tells, for about a microsecond.
    """
    poller = conn.poller
    if poller is None:
        sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
        if sock is None:
            return False
        poller = conn.poller = select.poll()  # registered once per connection
        poller.register(sock.fileno(), select.POLLIN | select.POLLRDHUP | select.POLLHUP)
    return not poller.poll(0)


class UpstreamPool:
    """Keep-alive connections per (host, port)."""

    def __init__(self, connect_timeout_s: float = 2.0) -> None:
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._connect_timeout_s = connect_timeout_s

    async def _acquire(self, host: str, port: int) -> _Connection:
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS and _quiet(conn):
                return conn
            if conn.transport is not None:
                conn.transport.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port), self._connect_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return conn

    def _release(self, host: str, port: int, conn: _Connection) -> None:
        if conn.closed or not conn._keep_alive:
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.idle_since = time.monotonic()
        conn.waiter = None
        self._idle.setdefault((host, port), deque()).append(conn)

    async def post(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        headers: list[tuple[str, str]],
        timeout_s: float,
    ) -> UpstreamResponse:
        conn = await self._acquire(host, port)
        head = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        waiter = conn.send(request)
        # A timer on the answer's future rather than asyncio.wait_for, which costs a second
        # future and its callbacks on every request (≈ 10 % of the platform, measured).
        timer = asyncio.get_running_loop().call_later(timeout_s, _expire, waiter)
        try:
            response = await waiter
        except BaseException:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
            raise
        finally:
            timer.cancel()
        self._release(host, port, conn)
        return response

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
