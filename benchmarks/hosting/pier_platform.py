"""The platform under test: the diabetes model trained, `pier up` started and stopped."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procs  # (benchmarks/serving: launching, readiness, stopping)
from bench import ROOT, say

REGION = "us-east-1"


def train_model(out_dir: Path) -> Path:
    """examples/train_diabetes.py's train(), imported by path."""
    spec = importlib.util.spec_from_file_location(
        "train_diabetes", ROOT / "examples" / "train_diabetes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path: Path = module.train(out_dir)
    return path


@dataclass
class Platform:
    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    key_id: str
    secret: str
    instance_pids: dict[int, int | None] = field(default_factory=dict)  # pid -> start ticks

    @property
    def url(self) -> str:
        return f"http://{procs.HOST}:{self.port}"

    def clients(self) -> tuple[Any, Any]:
        import boto3

        session = boto3.Session(
            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret, region_name=REGION
        )
        return (
            session.client("sagemaker", endpoint_url=self.url),
            session.client("sagemaker-runtime", endpoint_url=self.url),
        )

    def instances(self, endpoint: str) -> list[dict[str, Any]]:
        """The instance records (home/instances/<id>/instance.json) of one endpoint."""
        out = []
        for record in sorted((self.home / "instances").glob("*/instance.json")):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(record.read_text())
                if data["spec"]["endpoint"] == endpoint:
                    out.append(data)
                    self.instance_pids[int(data["pid"])] = data.get("start_ticks")
        return out


def start_platform(home: Path, log_path: Path, settings: dict[str, str] | None = None) -> Platform:
    port = procs.free_port()
    pier = Path(sys.executable).with_name("pier")
    # The platform's own settings come from its command line (and `settings`, PIER_*
    # variables the caller names) only, not from this shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    env.update(settings or {})
    cmd = [str(pier), "up", "--home", str(home), "--port", str(port), "--no-mlflow"]
    t0 = time.perf_counter()
    proc = procs.launch(cmd, env, log_path)
    ready = procs.wait_ready(proc, port, "/ping", t0, log_path, timeout_s=120.0)
    creds = json.loads((home / "credentials.json").read_text())
    say(f"pier up on port {port} (pid {proc.pid}), answering /ping after {ready:.2f} s")
    return Platform(proc, port, home, creds["access_key_id"], creds["secret_access_key"])


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] in "ZXx" else int(fields[19])


def stop_platform(plat: Platform) -> list[int]:
    """SIGTERM the platform (it drains and stops its instances); pids of instances it left."""
    procs.stop(plat.proc, grace_s=45.0)
    left = []
    for pid, ticks in plat.instance_pids.items():
        if ticks is not None and _start_ticks(pid) == ticks:  # still the instance we saw
            left.append(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        left = [p for p in left if _start_ticks(p) == plat.instance_pids[p]]
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left
