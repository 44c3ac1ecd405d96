"""The MLflow tracking server (tracking, registry, UI) that `pier up` runs beside the platform.

Embedded default: a SQLite backend store and a local artefact store under the home. Production
setups name their own (`--backend-store-uri postgresql://...`, `--artifacts-destination
s3://...|ftp://...`), or point pier at a server they already run (`--mlflow-uri`).

The server is `mlflow server` in a child process (its own session, so Ctrl-C in a terminal
reaches pier, which stops it in order). Its pid is kept in the home: a platform that died
without stopping it (SIGKILL) has the leftover stopped by the next `pier up`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from pier.errors import PierError
from pier.platform.home import Home
from pier.store import db

log = logging.getLogger("pier.mlflow")

STARTUP_TIMEOUT_S = 120.0


class MlflowStartFailed(PierError):
    code = "MlflowStartFailed"


def redact(uri: str) -> str:
    """A store URI without its password, for logs and `pier status`."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class MlflowOptions:
    port: int
    backend_store_uri: str
    artifacts_destination: str
    host: str = "127.0.0.1"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--host", self.host, "--port", str(self.port),
            "--serve-artifacts",
            "--workers", "1",  # one machine, shared with the model instances
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        # The stores go by environment, not argv: their URIs may hold passwords, and argv is
        # readable by every user of the machine (ps).
        return {
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            "MLFLOW_ARTIFACTS_DESTINATION": self.artifacts_destination,
        }


def default_options(
    home: Home, port: int, backend: str | None, artifacts: str | None
) -> MlflowOptions:
    root = home.root / "mlflow"
    return MlflowOptions(
        port=port,
        backend_store_uri=backend or f"sqlite:///{root / 'mlflow.db'}",
        artifacts_destination=artifacts or str(root / "artifacts"),
    )


class MlflowServer:
    """Start, watch and stop one `mlflow server` child process."""

    def __init__(self, home: Home, options: MlflowOptions) -> None:
        self.home = home
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}"

    def start(self) -> None:
        """Launch the server (returns at once; `wait_ready` waits for /health)."""
        stop_leftover(self.home)
        self._check_port()
        backend = self.options.backend_store_uri
        if "://" in backend and not backend.startswith(("sqlite:", "file:")):
            # MLflow retries an unreachable database for minutes before it gives up: ask once.
            db.create(backend, what="MLflow's backend store").dispose()
        (self.home.root / "mlflow").mkdir(exist_ok=True)
        if "://" not in self.options.artifacts_destination:
            Path(self.options.artifacts_destination).mkdir(parents=True, exist_ok=True)
        log.info(
            "starting MLflow on %s (backend store %s, artefacts %s, log %s)",
            self.url,
            redact(self.options.backend_store_uri),
            redact(self.options.artifacts_destination),
            self.home.mlflow_log_file,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
        env.update(self.options.environment())
        # MLflow 3's job runner (GenAI scorers, trace archival) starts seven huey consumer
        # processes beside the server; nothing pier does needs them, and on a small machine
        # they cost seconds of start-up and hundreds of MB. Set the variable to turn them on.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        with self.home.mlflow_log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                self.options.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.home.mlflow_pid_file.write_text(str(self.proc.pid))

    def _check_port(self) -> None:
        """Fail at once when another program answers on the port: MLflow would only find out
        after its own start-up (a minute on a small machine) and say it less clearly."""
        host, port = self.options.host, self.options.port
        with socket.socket() as probe:
            probe.settimeout(1.0)
            taken = probe.connect_ex((host, port)) == 0
        if taken:
            raise MlflowStartFailed(
                f"the port of pier's MLflow server, {host}:{port}, is taken by another program"
                + (" (on macOS, AirPlay Receiver listens on 5000)" if port == 5000 else "")
                + "; choose another with --mlflow-port PORT or PIER_MLFLOW_PORT=PORT, "
                "0 for any free port"
            )

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Block until /health answers; MlflowStartFailed with the log's tail otherwise."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise MlflowStartFailed(
                        f"the MLflow server exited with code {self.proc.returncode}: "
                        f"{self._log_tail()} (full log: {self.home.mlflow_log_file})"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/health").status_code == 200:
                        self.home.mlflow_url_file.write_text(self.url)
                        log.info("MLflow is up on %s", self.url)
                        return
                time.sleep(0.2)
        raise MlflowStartFailed(
            f"the MLflow server did not answer in {timeout_s:.0f} s; "
            f"see {self.home.mlflow_log_file}"
        )

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, SIGKILL after `grace_s`."""
        self.home.mlflow_url_file.unlink(missing_ok=True)
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.home.mlflow_pid_file.unlink(missing_ok=True)
        log.info("MLflow stopped")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.home.mlflow_log_file.read_text(errors="replace")
        except OSError:
            return ""
        return redact_text(" | ".join(text.strip().splitlines()[-lines:]), self.options)


def redact_text(text: str, options: MlflowOptions) -> str:
    for uri in (options.backend_store_uri, options.artifacts_destination):
        password = urlsplit(uri).password
        if password:
            text = text.replace(password, "***")
    return text


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_leftover(home: Home) -> None:
    """Stop an MLflow server a dead platform of this home left running (checked by cmdline)."""
    try:
        pid = int(home.mlflow_pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        cmdline = []
    if b"mlflow" in cmdline and b"server" in cmdline:
        log.warning("stopping the MLflow server (pid %d) an earlier pier left running", pid)
        _signal_group(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        else:
            _signal_group(pid, signal.SIGKILL)
    home.mlflow_pid_file.unlink(missing_ok=True)
