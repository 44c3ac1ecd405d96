"""`pier serve` and `serve` as real processes: startup, routes, limits, timeout, SIGTERM drain."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.raw_http import MALFORMED_HTTP, raw_http
from tests.serving.models import save_scaler, save_sleeper

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, args: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("w") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )

    def first_ping_statuses(self, timeout: float = 60) -> list[int]:
        """Every /ping status seen until the first 200."""
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited {self.proc.returncode}: {self.log.read_text()}"
                )
            try:
                status = httpx.get(self.url + "/ping", timeout=2).status_code
                seen.append(status)
                if status == 200:
                    return seen
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"not healthy in {timeout} s: {self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def pier_serve(
    model: Path | str, tmp: Path, *extra: str, env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    args = [str(BIN / "pier"), "serve", "--model-uri", str(model), "--port", str(port)]
    args += ["--log-file", str(tmp / f"serve-{port}.log"), *extra]
    if "--workers" not in extra:  # these tests are about one worker (the default is per CPU)
        args += ["--workers", "1"]
    return Server(args, env or {}, port, tmp / f"out-{port}.txt")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"scaler": save_scaler(root / "scaler"), "sleeper": save_sleeper(root / "sleeper")}


@pytest.fixture(scope="module")
def scaler_server(
    models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = pier_serve(models["scaler"], tmp_path_factory.mktemp("logs"), "--max-batch-rows", "64")
    seen = server.first_ping_statuses()
    server.ping_history = seen  # type: ignore[attr-defined]
    yield server
    assert server.stop() == 0


SPLIT = {"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1], [2.0, 2]]}}


def test_ping_is_503_until_the_model_is_warm(scaler_server: Server) -> None:
    history = scaler_server.ping_history  # type: ignore[attr-defined]
    assert history[-1] == 200
    assert 503 in history, "the socket is bound before the model loads, so /ping said 503 first"


def test_invocations_json_csv_and_accept(scaler_server: Server) -> None:
    url = scaler_server.url + "/invocations"
    r = httpx.post(url, json=SPLIT)
    assert (r.status_code, r.json()) == (200, {"predictions": [2.5, 4.0]})
    r = httpx.post(url, content=b"x,n\n1.5,1\n2.0,2\n", headers={"Content-Type": "text/csv"})
    assert r.json() == {"predictions": [2.5, 4.0]}
    # SageMaker's headerless CSV: columns in signature order
    r = httpx.post(url, content=b"1.5,1\n2.0,2\n", headers={"Content-Type": "text/csv"})
    assert r.json() == {"predictions": [2.5, 4.0]}
    r = httpx.post(url, json=SPLIT, headers={"Accept": "text/csv"})
    assert (r.headers["content-type"], r.text) == ("text/csv", "2.5\n4.0\n")
    r = httpx.post(url, json=SPLIT, headers={"Accept": "application/jsonlines"})
    assert [json.loads(line) for line in r.text.splitlines()] == [2.5, 4.0]
    r = httpx.post(url, json={**SPLIT, "params": {"multiplier": 2.0}})
    assert r.json() == {"predictions": [4.0, 6.0]}


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/csv;q=0, application/json", "application/json"),
        ("application/json;q=0.5, text/csv", "text/csv"),
        ("text/csv;q=0.2, application/jsonlines;q=0.4", "application/jsonlines"),
        ("text/csv, application/json", "text/csv"),  # a tie: the first listed
    ],
)
def test_accept_q_values_are_honoured(
    scaler_server: Server, accept: str, content_type: str
) -> None:
    r = httpx.post(scaler_server.url + "/invocations", json=SPLIT, headers={"Accept": accept})
    assert (r.status_code, r.headers["content-type"]) == (200, content_type), r.text


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Content-Type": "application/json"}, b"{not json", 400, "BAD_REQUEST"),
        (
            {"Content-Type": "application/json"},
            b'{"dataframe_records": [{"x": 1}]}',
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        ({}, b"{}", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"Content-Type": "application/xml"}, b"<a/>", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            {"Content-Type": "application/json; charset=latin-1"},
            b"{}",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (  # an Accept pier cannot write: JSON, as MLflow answers whatever the Accept
            {"Content-Type": "application/json", "Accept": "image/png"},
            json.dumps(SPLIT).encode(),
            200,
            None,
        ),
        ({"Content-Type": "text/csv"}, b"x,n\n1.5", 400, "BAD_REQUEST"),  # n missing
        # beyond Python's json: nesting past the recursion limit, integers over 4,300 digits
        ({"Content-Type": "application/json"}, b"[" * 2000 + b"]" * 2000, 400, "BAD_REQUEST"),
        (
            {"Content-Type": "application/json"},
            b'{"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1' + b"0" * 4400 + b"]]}}",
            400,
            "BAD_REQUEST",
        ),
        (
            {"Content-Type": "application/json"},
            json.dumps(SPLIT).encode()[:-1]
            + b', "params": {"multiplier": '
            + b"[" * 2000
            + b"]" * 2000
            + b"}}",
            400,
            "BAD_REQUEST",
        ),
        ({"Content-Type": "application/vnd.apache.parquet"}, b"not parquet", 400, "BAD_REQUEST"),
        (
            {"Content-Type": "application/json"},
            b'{"dataframe_split": {"columns": ["x", "n"], "data": [[-200, 1]]}}',
            500,
            "INTERNAL_ERROR",
        ),
    ],
)
def test_errors_are_json_without_traces(
    scaler_server: Server, headers: dict[str, str], body: bytes, status: int, code: str | None
) -> None:
    r = httpx.post(scaler_server.url + "/invocations", content=body, headers=headers)
    assert r.status_code == status, r.text
    if code is not None:
        assert r.json()["error_code"] == code
        assert "Traceback" not in r.text
        assert "stack_trace" not in r.json()
    # the server keeps serving
    assert httpx.post(scaler_server.url + "/invocations", json=SPLIT).status_code == 200


@pytest.mark.parametrize("request_bytes", MALFORMED_HTTP.values(), ids=MALFORMED_HTTP.keys())
def test_malformed_http_is_a_json_400(scaler_server: Server, request_bytes: bytes) -> None:
    """Errors uvicorn answers before the app (docs/serving.md: every error is JSON)."""
    status, headers, body = raw_http(scaler_server.port, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error_code": "BAD_REQUEST",
        "message": "Invalid HTTP request received.",
        "sqlstate": "KAM00",
        "error_class": "INVALID_PARAMETER_VALUE",
    }
    assert httpx.post(scaler_server.url + "/invocations", json=SPLIT).status_code == 200


def test_body_over_the_limit_is_413(scaler_server: Server) -> None:
    big = (
        b'{"dataframe_split": {"columns": ["x"], "data": ['
        + b"[1]," * (2 * 1024 * 1024)
        + b"[1]]}}"
    )
    r = httpx.post(
        scaler_server.url + "/invocations",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error_code"] == "RESOURCE_LIMIT_EXCEEDED"


def test_execution_parameters_metrics_and_unknown_routes(scaler_server: Server) -> None:
    params = httpx.get(scaler_server.url + "/execution-parameters").json()
    assert params == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    metrics = httpx.get(scaler_server.url + "/metrics").text
    assert 'pier_invocations_total{status="200"}' in metrics
    assert "pier_invocation_latency_seconds_bucket" in metrics
    assert "pier_batch_rows_bucket" in metrics
    assert 'pier_invocation_errors_total{code="UNSUPPORTED_MEDIA_TYPE",status="415"}' in metrics
    assert httpx.get(scaler_server.url + "/nope").status_code == 404
    assert httpx.get(scaler_server.url + "/invocations").status_code == 405


def test_sigterm_drains_in_flight_requests(models: dict[str, Path], tmp_path: Path) -> None:
    server = pier_serve(models["sleeper"], tmp_path)
    server.first_ping_statuses()
    results: list[httpx.Response] = []

    def slow_call() -> None:
        body = {"dataframe_records": [{"seconds": 1.5}]}
        results.append(httpx.post(server.url + "/invocations", json=body, timeout=30))

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.5)  # the request is in predict now
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(httpx.TransportError):  # no longer accepting
        httpx.post(
            server.url + "/invocations", json={"dataframe_records": [{"seconds": 0}]}, timeout=2
        )
    caller.join(30)
    assert results
    assert results[0].status_code == 200
    assert results[0].json() == {"predictions": [1]}
    assert server.proc.wait(30) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_predict_that_never_ends_gives_the_worker_up(
    models: dict[str, Path], tmp_path: Path, workers: str
) -> None:
    """The stuck-predict policy (docs/serving.md): the caller gets its 504 at the timeout;
    once the call has run past PIER_STUCK_SECONDS, /ping says 503 and the server exits with
    code 3 so that it is replaced, instead of answering 504 to everyone behind it forever."""
    server = pier_serve(
        models["sleeper"],
        tmp_path,
        "--timeout",
        "1",
        "--workers",
        workers,
        env={"PIER_STUCK_SECONDS": "3"},
    )
    server.first_ping_statuses()
    stuck = httpx.post(
        server.url + "/invocations", json={"dataframe_records": [{"seconds": 600}]}, timeout=30
    )
    assert stuck.status_code == 504
    assert stuck.json()["error_code"] == "DEADLINE_EXCEEDED"
    try:
        code = server.proc.wait(60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        raise AssertionError(f"still running: {server.log.read_text()}") from None
    assert code == 3
    log = (tmp_path / f"serve-{server.port}.log").read_text()
    assert "a predict call has run for" in log
    assert "giving the worker up" in log


def warm_pids(log: Path) -> set[int]:
    """The pids of the workers that logged "model warm" (the log format has [pid])."""
    text = log.read_text() if log.exists() else ""
    return {
        int(line.split("[", 1)[1].split("]", 1)[0])
        for line in text.splitlines()
        if "model warm" in line
    }


def listening(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on 127.0.0.1:`port`."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A" and fields[9] in inodes:
            return True
    return False


def two_workers_serving(server: Server) -> set[int]:
    """Both workers' pids, once both are warm and listen (the second starts after the first)."""
    log = server.log.parent / f"serve-{server.port}.log"
    deadline = time.monotonic() + 60
    while True:
        pids = warm_pids(log)
        if len(pids) == 2 and all(listening(pid, server.port) for pid in pids):
            return pids
        assert server.proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_two_workers_the_first_answers_then_both_serve_and_stop_together(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """--workers 2: the `pier serve` process is worker 0 and answers /ping 200 on its own; the
    second worker starts once worker 0 is warm and listens once warm itself; SIGTERM to the
    server ends both, exit code 0."""
    server = pier_serve(models["scaler"], tmp_path, "--workers", "2")
    try:
        assert server.first_ping_statuses()[-1] == 200
        pids = two_workers_serving(server)
        assert server.proc.pid in pids
        body = {"dataframe_records": [{"x": 1.5, "n": 1}]}
        statuses = [
            httpx.post(server.url + "/invocations", json=body, headers={"Connection": "close"})
            for _ in range(20)
        ]
        assert [r.status_code for r in statuses] == [200] * 20
    finally:
        assert server.stop() == 0
    for pid in pids:  # the parent waited for (and reaped) its worker before exiting
        assert not Path(f"/proc/{pid}").exists(), pid


def test_sigterm_while_the_second_worker_starts_is_a_clean_stop(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """SIGTERM right after worker 0 started the second one (still starting: importing, or
    loading its model): both stop, exit code 0 (the second never served; dying of the signal
    it was sent, before it could handle it, is not a failure)."""
    server = pier_serve(models["scaler"], tmp_path, "--workers", "2")
    log = tmp_path / f"serve-{server.port}.log"
    try:
        server.first_ping_statuses()
        deadline = time.monotonic() + 60
        while "started 1 more worker" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
    finally:
        code = server.stop()
    assert code == 0, log.read_text()


def test_a_worker_killed_stops_the_server_with_a_non_zero_code(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """One failed worker stops the others (never run degraded); a worker killed by signal N
    makes the server exit 128 + N, not 0."""
    server = pier_serve(models["scaler"], tmp_path, "--workers", "2")
    try:
        server.first_ping_statuses()
        (extra,) = two_workers_serving(server) - {server.proc.pid}
        os.kill(extra, signal.SIGKILL)
        code = server.proc.wait(60)
    finally:
        server.stop()
    assert code == 128 + signal.SIGKILL
    log = (tmp_path / f"serve-{server.port}.log").read_text()
    assert f"worker {extra} ended with exit code -9: stopping the server" in log


def test_container_entry_point_honours_sagemaker_variables(
    models: dict[str, Path], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "PIER_MODEL_URI": str(models["sleeper"]),  # stands in for /opt/ml/model
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "0.5",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    server = Server([str(BIN / "serve"), "serve"], env, port, tmp_path / "out.txt")
    try:
        server.first_ping_statuses()
        # Right after /ping says 200, every new connection is served: a second worker still
        # loading does not listen yet (else SO_REUSEPORT would hand it connections to 503).
        body = {"dataframe_records": [{"seconds": 0}]}
        statuses = [
            httpx.post(server.url + "/invocations", json=body, headers={"Connection": "close"})
            for _ in range(30)
        ]
        assert [r.status_code for r in statuses] == [200] * 30, [
            r.text for r in statuses if r.status_code != 200
        ]
        params = httpx.get(server.url + "/execution-parameters").json()
        assert params["MaxConcurrentTransforms"] == 2
        r = httpx.post(
            server.url + "/invocations", json={"dataframe_records": [{"seconds": 2}]}, timeout=10
        )
        assert r.status_code == 504
        assert r.json()["error_code"] == "DEADLINE_EXCEEDED"
        time.sleep(2)  # a timed-out predict still runs to its end, holding its worker
        fast = httpx.post(server.url + "/invocations", json={"dataframe_records": [{"seconds": 0}]})
        assert fast.status_code == 200
    finally:
        assert server.stop() == 0


def test_a_model_that_cannot_load_exits_1_with_the_reason(tmp_path: Path) -> None:
    server = pier_serve(tmp_path / "no-such-model", tmp_path)
    assert server.proc.wait(60) == 1
    assert "cannot serve" in server.log.read_text()
    assert "no-such-model" in server.log.read_text()


def test_bad_command_line_is_a_clear_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [str(BIN / "pier"), "serve", "--model-uri", "x", "--workers", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert "--workers" in r.stderr
