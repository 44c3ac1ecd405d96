"""The router's upstream client: same answers as httpx (the plain path), and the right error
for each way the hop can fail (retry-safe before sending, never after)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pier.router.upstream import UpstreamConnectError, UpstreamLost, UpstreamPool
from tests.e2e.test_serve_process import Server, free_port, pier_serve
from tests.serving.models import save_scaler

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = save_scaler(tmp_path_factory.mktemp("m") / "scaler")
    srv = pier_serve(model, tmp_path_factory.mktemp("logs"))
    srv.first_ping_statuses()
    yield srv
    srv.stop()


CASES = [
    (
        "application/json",
        json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1]]}}),
    ),
    ("application/json", '{"dataframe_records": [{"x": 1}]}'),  # 400 from the model server
    ("text/csv", "x,n\n1,2\n3,4\n"),
    ("application/xml", "<a/>"),  # 415
    ("application/json", "{broken"),
    (
        "application/json",
        json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.0, 1]] * 5000}}),
    ),
]


@pytest.mark.parametrize(("content_type", "body"), CASES)
def test_same_answers_as_httpx(server: Server, content_type: str, body: str) -> None:
    async def ours() -> tuple[int, bytes, bytes | None]:
        pool = UpstreamPool()
        try:
            r = await pool.post(
                "127.0.0.1", server.port, "/invocations", body.encode(),
                [("content-type", content_type), ("accept", "application/json")], 10,
            )  # fmt: skip
            return r.status, r.body, r.headers.get(b"content-type")
        finally:
            pool.close()

    status, payload, ctype = asyncio.run(ours())
    reference = httpx.post(
        server.url + "/invocations", content=body.encode(),
        headers={"content-type": content_type, "accept": "application/json"},
    )  # fmt: skip
    assert status == reference.status_code
    assert payload == reference.content
    assert ctype == reference.headers["content-type"].encode()


def test_connections_are_reused(server: Server) -> None:
    async def run() -> int:
        pool = UpstreamPool()
        body = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1]]}})
        headers = [("content-type", "application/json")]
        for _ in range(20):
            r = await pool.post(
                "127.0.0.1", server.port, "/invocations", body.encode(), headers, 10
            )
            assert r.status == 200
        idle = len(pool._idle[("127.0.0.1", server.port)])
        pool.close()
        return idle

    assert asyncio.run(run()) == 1  # twenty sequential requests, one connection


def test_refused_connection_is_a_connect_error() -> None:
    async def run() -> None:
        pool = UpstreamPool()
        await pool.post("127.0.0.1", free_port(), "/invocations", b"{}", [], 5)

    with pytest.raises(UpstreamConnectError):
        asyncio.run(run())


async def _one_shot_server(reply: bytes | None, delay: float = 0.0) -> tuple[asyncio.Server, int]:
    """A server that reads a request, then writes `reply` (or nothing) and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(delay)
            if reply is not None:
                writer.write(reply)
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    "reply",
    [None, b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", b"not http at all\r\n\r\n"],
)
def test_a_break_after_sending_is_lost_not_retryable(reply: bytes | None) -> None:
    async def run() -> None:
        srv, port = await _one_shot_server(reply)
        pool = UpstreamPool()
        try:
            await pool.post("127.0.0.1", port, "/invocations", b"{}", [], 5)
        finally:
            pool.close()
            srv.close()
            await srv.wait_closed()

    with pytest.raises(UpstreamLost):
        asyncio.run(run())


def test_a_slow_instance_times_out() -> None:
    async def run() -> None:
        srv, port = await _one_shot_server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 2.0)
        pool = UpstreamPool()
        try:
            await pool.post("127.0.0.1", port, "/invocations", b"{}", [], 0.2)
        finally:
            pool.close()
            srv.close()
            await srv.wait_closed()

    with pytest.raises(TimeoutError):
        asyncio.run(run())


def test_connection_close_is_honoured(tmp_path: Path) -> None:
    async def run() -> int:
        srv, port = await _one_shot_server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        )
        pool = UpstreamPool()
        r = await pool.post("127.0.0.1", port, "/invocations", b"{}", [], 5)
        assert (r.status, r.body) == (200, b"ok")
        idle = len(pool._idle.get(("127.0.0.1", port), []))
        pool.close()
        srv.close()
        await srv.wait_closed()
        return idle

    assert asyncio.run(run()) == 0


def test_an_idle_connection_closed_by_the_instance_is_not_reused() -> None:
    """The race of a dying instance: its end is closed, the loop has not noticed yet."""
    from pier.router.upstream import _quiet

    async def run() -> tuple[bool, bool]:
        closers: list[asyncio.StreamWriter] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            closers.append(writer)

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        pool = UpstreamPool()
        await pool.post("127.0.0.1", port, "/invocations", b"{}", [], 5)
        conn = pool._idle[("127.0.0.1", port)][-1]
        before = _quiet(conn)
        closers[0].get_extra_info("socket").shutdown(socket.SHUT_RDWR)  # the instance dies
        time.sleep(0.05)  # blocking: the event loop does not see the close
        after = _quiet(conn)
        pool.close()
        closers[0].close()
        with contextlib.suppress(ConnectionError):
            await closers[0].wait_closed()
        srv.close()
        await srv.wait_closed()
        return before, after

    assert asyncio.run(run()) == (True, False)


def test_a_reset_with_the_request_unread_is_not_delivered() -> None:
    """A server that closes without reading the request resets the connection: the request
    never reached it, so the router may send it to another instance."""
    from pier.router.upstream import UpstreamNotDelivered

    async def run() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.2)  # the request arrives, unread
            sock = writer.get_extra_info("socket")
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            writer.transport.abort()  # close with unread data: the kernel sends RST

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        pool = UpstreamPool()
        try:
            await pool.post("127.0.0.1", port, "/invocations", b"{}", [], 5)
        finally:
            pool.close()
            srv.close()
            await srv.wait_closed()

    with pytest.raises(UpstreamNotDelivered):
        asyncio.run(run())


def test_a_connection_accepted_and_closed_at_once_is_not_delivered() -> None:
    """What Docker's port proxy does for a container that has just died: it accepts, finds
    nothing behind it, and closes. A close seen before the write means the request never left:
    the router may send it elsewhere. (A close seen only after the write is indistinguishable
    from a model that dropped the connection: lost.) The event loop (uvloop, as in the
    platform) must never be asked to write on a closed transport."""
    import uvloop  # the platform's loop: asyncio's own ignores a write on a closed transport

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    stop = False

    def accept_and_close() -> None:
        while not stop:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                conn.close()

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()

    async def run() -> list[str]:
        outcomes = []
        pool = UpstreamPool()
        for _ in range(100):
            try:
                await pool.post("127.0.0.1", port, "/invocations", b"{}", [], 5)
                outcomes.append("answered")
            except UpstreamConnectError:
                outcomes.append("not delivered")
            except UpstreamLost:  # written before the close was seen: the peer's FIN came first
                outcomes.append("lost")
            except Exception as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
        pool.close()
        return outcomes

    try:
        outcomes = uvloop.run(run())
    finally:
        stop = True
        listener.close()
        thread.join(5)
    # Never an error of the event loop (a write on a closed transport); and the closes seen
    # before writing, most of the hundred, are "not delivered", so the router may retry them.
    assert set(outcomes) <= {"not delivered", "lost"}, sorted(set(outcomes))
    assert outcomes.count("not delivered") > outcomes.count("lost"), outcomes
