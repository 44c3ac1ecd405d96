"""Helpers for the boto3 contract tests: a real `pier up` process, boto3 clients pointed at it,
small MLflow models, a throwaway PostgreSQL database, and a /proc view of `pier serve` instances.

Nothing here reaches into pier's code: the platform is a subprocess, spoken to with boto3.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import pandas as pd
from botocore.config import Config

BIN = Path(sys.executable).parent
REGION = "us-east-1"
ACCOUNT = "000000000000"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# No client-side retries: a request pier fails must be seen failing, not retried away.
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=120, connect_timeout=10)
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    probe: Callable[[], T | None], timeout: float, interval: float = 0.2, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}: last {last!r}")


# ----------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class LinearModel:
    """y = a * coef_a + b * coef_b + intercept, saved as an MLflow sklearn model in `path`."""

    path: Path
    coef_a: float
    coef_b: float
    intercept: float

    def predict(self, rows: list[list[float]]) -> list[float]:
        return [a * self.coef_a + b * self.coef_b + self.intercept for a, b in rows]


def save_linear_model(path: Path, coef_a: float, coef_b: float, intercept: float) -> LinearModel:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 5.0], "b": [1.0, 0.0, 1.0, 2.0, -1.0]})
    y = X["a"] * coef_a + X["b"] * coef_b + intercept
    model = LinearRegression().fit(X, y)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        input_example=X.head(2),
        serialization_format="cloudpickle",
        pip_requirements=["mlflow", "scikit-learn"],  # skips MLflow's slow inference
    )
    return LinearModel(path, coef_a, coef_b, intercept)


def save_broken_model(path: Path) -> Path:
    """A directory that exists but holds no loadable model: `pier serve` starts and fails."""
    path.mkdir(parents=True)
    (path / "MLmodel").write_text("flavors: [this is not yaml\n")
    return path


def split_json(rows: list[list[float]], columns: tuple[str, ...] = ("a", "b")) -> bytes:
    return json.dumps({"dataframe_split": {"columns": list(columns), "data": rows}}).encode()


def predictions(body: bytes) -> list[float]:
    return [float(p) for p in json.loads(body)["predictions"]]


# --------------------------------------------------------------------------------- postgres


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database `pier_test_<random>` on the local server; dropped afterwards."""
    import psycopg

    name = f"pier_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------------- pier serve processes


@dataclass(frozen=True)
class ServeProcess:
    pid: int
    ppid: int
    instance_dir: Path  # the process's working directory, named after the instance id


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, ppid) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def serve_processes(home: Path) -> list[ServeProcess]:
    """Live (not zombie) instance processes of the platform in HOME, whoever their parent is:
    `pier serve` processes whose working directory is an instance directory under
    HOME/instances (pier runs each instance in its own directory named after the instance id),
    and the main processes of running containers labelled `pier.home=HOME` (the Docker
    backend's instances; their instance_dir is HOME/instances/<the pier.instance label>)."""
    return _serve_children(home) + container_processes(home)


def _serve_children(home: Path) -> list[ServeProcess]:
    instances = (home / "instances").resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if b"serve" not in argv or b"--model-uri" not in argv:
            continue
        if not cwd.is_relative_to(instances) or cwd == instances:
            continue
        stat = _stat(pid)
        if stat is None or stat[0] in "ZXx":
            continue
        found.append(ServeProcess(pid, stat[1], cwd))
    return found


def _home_containers(home: Path, running_only: bool = True) -> list[Any]:
    import docker

    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return []  # no engine: no container can run (the process backend's tests)
    client = docker.from_env()
    try:
        label = f"pier.home={home.absolute()}"
        return list(
            client.containers.list(
                all=not running_only, filters={"label": label}, ignore_removed=True
            )
        )
    finally:
        client.close()


def container_processes(home: Path) -> list[ServeProcess]:
    """The main processes (host pids) of the running containers of the platform in HOME."""
    if not (home / "instances").exists():
        return []
    found = []
    for container in _home_containers(home):
        pid = int(container.attrs["State"].get("Pid") or 0)
        stat = _stat(pid) if pid else None
        if stat is None or stat[0] in "ZXx":
            continue
        instance = container.labels.get("pier.instance", "")
        found.append(ServeProcess(pid, stat[1], home / "instances" / instance))
    return found


def endpoint_processes(home: Path, endpoint: str) -> list[ServeProcess]:
    """The `pier serve` processes of one endpoint (instance ids start with `<endpoint>-`; the
    tests give their endpoints names that are not prefixes of each other)."""
    return [p for p in serve_processes(home) if p.instance_dir.name.startswith(f"{endpoint}-")]


def pid_alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZXx"


# ------------------------------------------------------------------------------- the platform


def platform_env() -> dict[str, str]:
    """pier reads PIER_* and AWS region variables: start it from a clean slate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_", "SAGEMAKER_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


@dataclass
class Platform:
    """A `pier up` subprocess on a fixed port and home; restartable on the same both."""

    home: Path
    port: int
    state_url: str | None
    backend: str
    # Most tests need no MLflow server: they save models to directories. Tests of the whole
    # stack pass their own MLflow options (e.g. ("--mlflow-port", "0")).
    options: tuple[str, ...] = ("--no-mlflow",)
    env: dict[str, str] = field(default_factory=dict)  # added to platform_env(): PIER_*, ...
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        args = [str(BIN / "pier"), "up", "--home", str(self.home), "--port", str(self.port)]
        if self.state_url:
            args += ["--state-url", self.state_url]
        args += self.options
        env = {**platform_env(), **self.env}
        log = self.home.parent / f"pier-up-{self.backend}-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"pier up exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/ping", timeout=2).status_code == 200 and (
                    self.mlflow_joined()
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"pier up did not answer /ping in {timeout} s")
            time.sleep(0.1)

    def mlflow_joined(self) -> bool:
        """pier serves before its own MLflow server answers: whether that one does (it
        writes home/mlflow.url then), or there is none of pier's."""
        if "--no-mlflow" in self.options or "--mlflow-uri" in self.options:
            return True
        return (self.home / "mlflow.url").exists()

    def credentials(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.home / "credentials.json").read_text())
        return data

    def client(self, service: str, **overrides: Any) -> Any:
        creds = self.credentials()
        kwargs: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": creds["access_key_id"],
            "aws_secret_access_key": creds["secret_access_key"],
            "config": NO_RETRIES,
        }
        kwargs.update(overrides)
        return boto3.client(service, **kwargs)

    def terminate(self, timeout: float = 90) -> int:
        """SIGTERM (pier's `down`): drain, stop every instance, exit. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pier up did not exit {timeout} s after SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL: the platform dies at once, its instances (own sessions) keep running."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()  # reap it, or its pid file would name a live (zombie) process

    def log_tail(self, chars: int = 4000) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
            for log in self.logs
            if log.exists()
        )


@contextlib.contextmanager
def running_platform(
    home: Path,
    options: tuple[str, ...] = ("--no-mlflow",),
    stop_timeout: float = 180,
    env: dict[str, str] | None = None,
) -> Iterator[Platform]:
    """A started `pier up` on a free port (with `env` added to its environment); on exit it
    must stop cleanly (exit 0) on SIGTERM, and whatever a failure left running is killed."""
    p = Platform(home, free_port(), None, "sqlite", options=options, env=env or {})
    code: int | None = None
    try:
        p.start()
        yield p
        code = p.terminate(timeout=stop_timeout)
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        kill_leftovers(p.home)
    assert code == 0, p.log_tail()


def kill_leftovers(home: Path) -> list[int]:
    """SIGKILL what a failed test run left behind under `home` (by pid, one at a time), and
    remove the containers labelled with it."""
    pids = [p.pid for p in serve_processes(home)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if (home / "instances").exists():
        for container in _home_containers(home, running_only=False):
            with contextlib.suppress(Exception):
                container.remove(force=True)
    return pids


BASE_IMAGE = os.environ.get("PIER_BASE_IMAGE", "pier-base:bookworm")
# How the contract tests start `pier up` on each instance backend (options, environment).
BACKENDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "process": ((), {}),
    "docker": (("--backend", "docker"), {"PIER_BASE_IMAGE": BASE_IMAGE}),
}
