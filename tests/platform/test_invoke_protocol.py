"""The invoke fast path (pier.platform.invoke_protocol) answers exactly as the ASGI path.

One platform composition (router, metrics, data capture, SigV4, access control, audit trail)
served on two ports: one with the fast protocol, one with uvicorn's plain protocol, in front
of a real `pier serve`. The same requests go to both, over raw sockets; status, headers (less
the date, the request id and the framing), body, metrics, data capture and the audit trail
must agree. Then the HTTP details only the fast path owns: one Content-Length answer, keep-
alive, `Connection: close`, HTTP/1.0, a body over the limit, a client that leaves early.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from prometheus_client import CollectorRegistry

from pier.contract.capture_config import CaptureSettings
from pier.monitor.capture.capture import Capturer
from pier.platform.access import Principal, principal
from pier.platform.api import Request, sigv4
from pier.platform.app import Ping, PlatformApp
from pier.platform.invoke_protocol import invoke_protocol
from pier.platform.runtime_api import RuntimeApi
from pier.router.invoke import Router
from pier.router.metrics import EndpointMetrics
from pier.router.table import EndpointRoute, RoutingTable, Target, VariantRoute
from pier.serving.protocol import json_errors_protocol
from tests.e2e.test_serve_process import Server, pier_serve
from tests.serving.models import save_scaler

pytestmark = pytest.mark.slow

ACCOUNT = "000000000000"
ADMIN = principal("AKIDFASTADMIN", "admin-secret", "ada", "admin", ACCOUNT)
# A key whose role grants nothing: every signed call is denied (and audited).
NOBODY = Principal("AKIDFASTNOBODY", "nobody-secret", "nobody", "nobody", "arn:nobody")
KEYS = {p.access_key_id: p for p in (ADMIN, NOBODY)}
ROW = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1]]}}).encode()
# Differ from call to call, or frame the body: compared apart (or not at all).
UNCOMPARED = {"date", "x-amzn-requestid", "content-length", "transfer-encoding"}


def _error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


@dataclass
class Platform:
    fast_port: int
    plain_port: int
    loop: asyncio.AbstractEventLoop
    registry: CollectorRegistry
    capturer: Capturer
    capture_dir: Path
    runtime: RuntimeApi
    trail: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def counters(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every counter and histogram count of the registry (router metrics, data capture's
        records; after capture has written)."""
        self.run(self.capturer.flush())
        out = {}
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name.endswith(("_total", "_count")):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = save_scaler(tmp_path_factory.mktemp("m") / "scaler")
    srv = pier_serve(model, tmp_path_factory.mktemp("logs"))
    srv.first_ping_statuses()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def platform(instance: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    capture_dir = tmp_path_factory.mktemp("capture")
    ready: Future[Platform] = Future()
    stop = threading.Event()

    async def main() -> None:
        table = RoutingTable()
        capture = CaptureSettings(
            destination=f"file://{capture_dir}/out", percentage=100, capture_input=True,
            capture_output=True, json_types=frozenset({"application/json"}),
        )  # fmt: skip
        target = Target("i-1", f"http://127.0.0.1:{instance.port}")
        table.set(EndpointRoute("ep", {"main": VariantRoute("main", 1.0, [target])}, capture))
        table.set(EndpointRoute("empty", {"main": VariantRoute("main", 1.0, [])}))
        registry = CollectorRegistry()
        metrics = EndpointMetrics(registry, table, list)
        router = Router(table, ACCOUNT, metrics=metrics)
        capturer = Capturer(capture_dir, registry)
        await capturer.start()
        runtime = RuntimeApi(router, capturer)
        plat = Platform(0, 0, asyncio.get_running_loop(), registry, capturer, capture_dir,
                        runtime)  # fmt: skip

        def trail(caller: Principal, op: str, request: Request, status: int, code: str | None
                  ) -> None:  # fmt: skip
            plat.trail.append((caller.user, op, status, code))

        app = PlatformApp([runtime, Ping()], sigv4(KEYS.get), trail)
        servers = []
        for protocol in (invoke_protocol(app, [runtime], _error_body),
                         json_errors_protocol(_error_body)):  # fmt: skip
            config = uvicorn.Config(app, http=protocol, lifespan="off", access_log=False,
                                    log_config=None, proxy_headers=False)  # fmt: skip
            server = uvicorn.Server(config)
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            servers.append((server, sock))
        plat.fast_port = servers[0][1].getsockname()[1]
        plat.plain_port = servers[1][1].getsockname()[1]
        tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in servers]
        while not all(s.started for s, _ in servers):
            await asyncio.sleep(0.01)
        ready.set_result(plat)
        await asyncio.to_thread(stop.wait)
        for s, _ in servers:
            s.should_exit = True
        await asyncio.gather(*tasks)
        await capturer.aclose()
        await router.aclose()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    yield ready.result(30)
    stop.set()
    thread.join(30)


def signed(
    path: str, body: bytes, headers: dict[str, str], key: Principal = ADMIN, port: int = 0
) -> dict[str, str]:
    """botocore's SigV4 headers for a POST of `body` to `path` (the Host is part of it)."""
    host = f"127.0.0.1:{port}"
    request = AWSRequest(
        "POST", f"http://{host}{path}", data=body, headers={"Host": host, **headers}
    )
    credentials = BotoCredentials(key.access_key_id, key.secret_access_key)
    SigV4Auth(credentials, "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def http(port: int, request: bytes, answers: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes, read `answers` responses (Content-Length or chunked) and whether the
    server closed the connection after them: the last entry's headers get "x-closed"."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")
        out = []
        for _ in range(answers):
            status_line = reader.readline().decode("latin-1")
            headers: dict[str, str] = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = reader.read(int(headers["content-length"]))
            else:  # chunked
                parts = []
                while size := int(reader.readline().strip(), 16):
                    parts.append(reader.read(size))
                    reader.readline()
                reader.readline()
                body = b"".join(parts)
            out.append((int(status_line.split()[1]), headers, body))
        # A server that closes does so right after its answer; one that keeps the connection
        # says nothing more: a short look tells the second, a long wait confirms the first.
        sock.settimeout(0.3)
        try:
            closed = reader.read(1) == b""
        except TimeoutError:
            closed = False
        out[-1][1]["x-closed"] = "yes" if closed else "no"
        return out


def frame(path: str, body: bytes, headers: dict[str, str], version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def same(fast: tuple[int, dict[str, str], bytes], plain: tuple[int, dict[str, str], bytes]
         ) -> None:  # fmt: skip
    assert fast[0] == plain[0]
    assert fast[2] == plain[2]
    strip = lambda h: {k: v for k, v in h.items() if k not in UNCOMPARED}  # noqa: E731
    assert strip(fast[1]) == strip(plain[1])


Answer = tuple[int, dict[str, str], bytes]


def ask_both(
    plat: Platform,
    path: str,
    body: bytes,
    headers: dict[str, str],
    key: Principal | None = ADMIN,
    version: str = "1.1",
) -> tuple[Answer, Answer]:
    """The same request to the plain then the fast port; each signed for its own Host.
    The metrics, data capture and audit trail must move by the same amount for each."""
    answers = []
    moves = []
    for port in (plat.plain_port, plat.fast_port):
        all_headers = {"Content-Type": "application/json", **headers}
        if key is not None:
            all_headers = signed(path, body, all_headers, key, port)
        else:
            all_headers["Host"] = f"127.0.0.1:{port}"
        before, trailed = plat.counters(), len(plat.trail)
        [answer] = http(port, frame(path, body, all_headers, version))
        after = plat.counters()
        moved = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
        moves.append((moved, plat.trail[trailed:]))
        answers.append(answer)
    plain, fast = answers
    assert moves[0] == moves[1], "metrics, capture or trail differ between the two paths"
    return fast, plain


def test_a_good_invocation_is_the_same_and_moves_metrics_and_capture(platform: Platform) -> None:
    headers = {"Accept": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "a=1"}
    fast, plain = ask_both(platform, "/endpoints/ep/invocations", ROW, headers)
    same(fast, plain)
    assert fast[0] == 200
    assert fast[1]["x-amzn-invoked-production-variant"] == "main"
    assert fast[1]["content-length"] == str(len(fast[2]))  # one framed answer, never chunked
    assert "transfer-encoding" not in fast[1]
    assert fast[1]["x-closed"] == "no"  # kept alive


TARGET_OTHER = {"X-Amzn-SageMaker-Target-Variant": "other"}
ERRORS = {
    "unsigned": ("/endpoints/ep/invocations", ROW, {}, None),
    "denied, and audited": ("/endpoints/ep/invocations", ROW, {}, NOBODY),
    "no such endpoint": ("/endpoints/nope/invocations", ROW, {}, ADMIN),
    "no healthy instance": ("/endpoints/empty/invocations", ROW, {}, ADMIN),
    "no such TargetVariant": ("/endpoints/ep/invocations", ROW, TARGET_OTHER, ADMIN),
    "the model refuses the body": ("/endpoints/ep/invocations", b"{broken", {}, ADMIN),
}


@pytest.mark.parametrize(("path", "body", "headers", "key"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_the_same(
    platform: Platform, path: str, body: bytes, headers: dict[str, str], key: Principal | None
) -> None:
    fast, plain = ask_both(platform, path, body, headers, key)
    same(fast, plain)
    assert fast[0] >= 400
    assert json.loads(fast[2])["message"]


def test_a_percent_encoded_name_is_the_same(platform: Platform) -> None:
    fast, plain = ask_both(platform, "/endpoints/e%70/invocations", ROW, {})
    same(fast, plain)


def test_a_body_over_the_limit_is_refused_the_same(platform: Platform) -> None:
    platform.runtime.max_body = 1024
    try:
        fast, plain = ask_both(platform, "/endpoints/ep/invocations", b"x" * 5000, {})
    finally:
        del platform.runtime.max_body  # the class's limit again
    same(fast, plain)
    assert fast[0] == 400
    assert "exceeds the limit" in json.loads(fast[2])["message"]


def test_http_1_0_and_connection_close_end_the_connection(platform: Platform) -> None:
    fast, plain = ask_both(platform, "/endpoints/ep/invocations", ROW, {}, version="1.0")
    same(fast, plain)
    assert fast[1]["x-closed"] == "yes"
    fast, plain = ask_both(platform, "/endpoints/ep/invocations", ROW, {"Connection": "close"})
    same(fast, plain)
    assert (fast[0], fast[1]["x-closed"]) == (200, "yes")


def test_keep_alive_and_pipelined_requests_are_answered_in_order(platform: Platform) -> None:
    port = platform.fast_port
    one = frame("/endpoints/ep/invocations", ROW,
                signed("/endpoints/ep/invocations", ROW, {"Content-Type": "application/json"},
                       port=port))  # fmt: skip
    other = ROW.replace(b"1.5", b"3.0")
    two = frame("/endpoints/ep/invocations", other,
                signed("/endpoints/ep/invocations", other, {"Content-Type": "application/json"},
                       port=port))  # fmt: skip
    ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = http(port, one + two + ping + one, answers=4)
    assert [a[0] for a in answers] == [200, 200, 200, 200]
    assert answers[0][2] == answers[3][2] != answers[1][2]
    assert answers[2][2] == b"{}"
    assert answers[-1][1]["x-closed"] == "no"


def test_a_client_that_leaves_early_does_not_stop_the_platform(platform: Platform) -> None:
    port = platform.fast_port
    headers = signed("/endpoints/ep/invocations", ROW, {"Content-Type": "application/json"},
                     port=port)  # fmt: skip
    request = frame("/endpoints/ep/invocations", ROW, headers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request[:-5])  # the body never completes
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)  # the answer is never read
    [answer] = http(port, request)
    assert answer[0] == 200
