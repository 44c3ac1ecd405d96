"""The servers under test and how to start each one on a given port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from procs import HOST, free_port

HERE = Path(__file__).resolve().parent
MLSERVER_VENV = HERE / ".venv-mlserver"
# uvloop 0.22 made asyncio.get_event_loop() raise without a running loop, which kills
# MLServer 1.7.1's inference worker at start ("There is no current event loop").
MLSERVER_REQUIREMENTS = ["mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop<0.22"]


@dataclass(frozen=True)
class Context:
    """What every launcher needs: the model, the venv's bin directory, a scratch directory."""

    model_dir: Path
    bin_dir: Path  # the venv running this script: mlflow, pier, uvicorn
    work_dir: Path
    log_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        # `mlflow models serve --env-manager local` execs a bare `uvicorn`: the venv goes first.
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    family: str  # "mlflow", "pier" or "other": the ratios compare pier with mlflow
    command: Callable[[Context, int], tuple[list[str], dict[str, str]]]
    ready_path: str = "/ping"
    invoke_path: str = "/invocations"
    pier_metrics: bool = False  # scrape pier's GET /metrics (single-worker servers only)
    workers: int = 1


def _mlflow(workers: int) -> Callable[[Context, int], tuple[list[str], dict[str, str]]]:
    def command(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(ctx.bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            str(ctx.model_dir),
            "--env-manager",
            "local",
            "-h",
            HOST,
            "-p",
            str(port),
            "--workers",
            str(workers),
        ]
        return argv, ctx.env()

    return command


def _pier(*flags: str) -> Callable[[Context, int], tuple[list[str], dict[str, str]]]:
    def command(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(ctx.bin_dir / "pier"),
            "serve",
            "-m",
            str(ctx.model_dir),
            "--host",
            HOST,
            "--port",
            str(port),
            "--log-file",
            str(ctx.log_dir / f"pier-{port}.log"),
            *flags,
        ]
        return argv, ctx.env(PIER_HOME=str(ctx.work_dir / "pier-home"))

    return command


def _pier_granian(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, str(HERE / "granian_app.py"), str(port)]
    env = ctx.env(
        PIER_MODEL_URI=str(ctx.model_dir),
        PIER_HOME=str(ctx.work_dir / "pier-home"),
        PYTHONPATH=str(HERE),
    )
    return argv, env


def _mlserver(ctx: Context, port: int) -> tuple[list[str], dict[str, str]]:
    root = ctx.work_dir / f"mlserver-{port}"
    model = root / "diabetes"
    model.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": HOST,
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "diabetes",
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(ctx.model_dir)},
    }
    (model / "model-settings.json").write_text(json.dumps(model_settings))
    bin_dir = MLSERVER_VENV / "bin"
    env = ctx.env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return [str(bin_dir / "mlserver"), "start", str(root)], env


MLFLOW_1 = Server("mlflow-1w", "mlflow models serve (1 worker)", "mlflow", _mlflow(1))
MLFLOW_2 = Server("mlflow-2w", "mlflow models serve --workers 2", "mlflow", _mlflow(2), workers=2)
# One worker explicitly: the default is one per CPU (2 here, = pier-2w).
PIER = Server(
    "pier", "pier serve --workers 1 (batching on)", "pier", _pier("--workers", "1"),
    pier_metrics=True,
)  # fmt: skip
PIER_NO_BATCHING = Server(
    "pier-no-batching",
    "pier serve --workers 1 --no-batching",
    "pier",
    _pier("--workers", "1", "--no-batching"),
    pier_metrics=True,
)
PIER_2 = Server("pier-2w", "pier serve --workers 2", "pier", _pier("--workers", "2"), workers=2)
PIER_GRANIAN = Server(
    "pier-granian", "pier's app on granian (batching on)", "pier", _pier_granian, pier_metrics=True
)
MLSERVER = Server(
    "mlserver",
    "MLServer 1.7.1 + mlserver-mlflow",
    "other",
    _mlserver,
    ready_path="/v2/models/diabetes/ready",
)

ALL = [MLFLOW_1, MLFLOW_2, PIER, PIER_NO_BATCHING, PIER_2, PIER_GRANIAN, MLSERVER]


def ensure_mlserver(timeout_s: float = 600.0) -> str | None:
    """Create or update MLServer's own venv; None when ready, else why it is not."""
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    stamp = MLSERVER_VENV / ".bench-requirements"
    wanted = " ".join(MLSERVER_REQUIREMENTS)
    if MLSERVER_VENV.is_dir():
        # Keep the venv out of `git add benchmarks` (Python >= 3.13's venv writes this itself).
        (MLSERVER_VENV / ".gitignore").write_text("*\n")
    if mlserver.exists() and stamp.exists() and stamp.read_text() == wanted:
        return None
    python = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [python, "-m", "venv", str(MLSERVER_VENV)],
        [str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", *MLSERVER_REQUIREMENTS],
    ]
    try:
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                return f"`{' '.join(step[-3:])}` failed: {' / '.join(tail)}"
    except subprocess.TimeoutExpired:
        return f"installing {wanted} took over {timeout_s:.0f} s"
    (MLSERVER_VENV / ".gitignore").write_text("*\n")
    if not mlserver.exists():
        return "the mlserver executable is missing after install"
    stamp.write_text(wanted)
    return None
