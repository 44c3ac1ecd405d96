"""(2) The model's environment: created the first time, then found in the cache.

pier: `pier serve --env-manager virtualenv --model-uri MODEL` with a fresh pier home (the
environment is built: uv, a wheel cache), then again with the same home (the environment is
found by the hash of what it installs); each timed from the command to the first /ping 200.
MLflow: `mlflow models serve -m MODEL --env-manager virtualenv`, with a fresh MLFLOW_ENV_ROOT,
then the same, timed the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from common import MLFLOW, PIER, clean_env, free_port, say, train_model, wait_ping

TIMEOUT_S = 1200.0


def time_to_ping(cmd: list[str], env: dict[str, str], port: int, log: Path) -> dict[str, Any]:
    """Start `cmd` (own session), seconds to its first /ping 200, then stop it."""
    say("$ " + " ".join(cmd))
    with log.open("ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        seconds = wait_ping(port, t0, TIMEOUT_S, alive=lambda: proc.poll() is None)
        return {"ran": True, "seconds": round(seconds, 2)}
    except RuntimeError as exc:
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-8:])
        return {"ran": False, "reason": f"{exc}; the log ends:\n{tail}"}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pier_serve(model: Path, home: Path, log: Path) -> dict[str, Any]:
    port = free_port()
    cmd = [str(PIER), "serve", "--model-uri", str(model), "--env-manager", "virtualenv",
           "--port", str(port)]  # fmt: skip
    return time_to_ping(cmd, clean_env(PIER_HOME=str(home)), port, log)


def mlflow_serve(model: Path, env_root: Path, log: Path) -> dict[str, Any]:
    port = free_port()
    cmd = [str(MLFLOW), "models", "serve", "-m", str(model), "--env-manager", "virtualenv",
           "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    return time_to_ping(cmd, clean_env(MLFLOW_ENV_ROOT=str(env_root)), port, log)


def measure(work: Path) -> dict[str, Any]:
    say("== (2) environment: pier serve --env-manager virtualenv vs mlflow models serve")
    model = train_model(work / "model-v1", random_state=0)
    out: dict[str, Any] = {}
    home, env_root = work / "env-home", work / "mlflow-envs"
    out["pier_first"] = pier_serve(model, home, work / "pier-serve-env.log")
    out["pier_cached"] = pier_serve(model, home, work / "pier-serve-env.log")
    out["mlflow_first"] = mlflow_serve(model, env_root, work / "mlflow-serve-env.log")
    out["mlflow_cached"] = mlflow_serve(model, env_root, work / "mlflow-serve-env.log")
    for key, value in out.items():
        shown = f"{value['seconds']:.1f} s" if value["ran"] else "did not run: " + value["reason"]
        say(f"  {key}: {shown}")
    return out
