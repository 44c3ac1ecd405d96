"""examples/byoc-r/README.md runs as written: every ```bash block, in order, in one shell.

It builds the R image, trains in a container, packs model.tar.gz, serves it with `docker run`,
then deploys it with boto3 beside an MLflow model on a `pier up` of its own and reads its logs,
metrics and captured records, and cleans up. The README's fixed paths (/tmp/byoc-r) and port
(7437, pier's default) are used as they are: the test fails up front if that port is taken.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker  # needs a Docker Engine: the main Python's suite only

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "examples" / "byoc-r" / "README.md"
WORK = Path("/tmp/byoc-r")
TIMEOUT_S = 900.0


def blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_leftovers() -> None:
    """A failed run must not leave its platform (and its instances) behind."""
    found = subprocess.run(["pkill", "-TERM", "-f", f"[-]-home {WORK}/home"], check=False)
    if found.returncode == 0:  # it drains and stops its instances, then exits
        for _ in range(300):  # 60 s: a container's stop grace is 30 s
            alive = subprocess.run(
                ["pgrep", "-f", f"[-]-home {WORK}/home"], capture_output=True, check=False
            )
            if alive.returncode:
                break
            time.sleep(0.2)
    subprocess.run(["docker", "rm", "-f", "byoc-r-try"], capture_output=True, check=False)


@pytest.fixture
def clean_work() -> Any:
    _stop_leftovers()
    if not _port_free(7437):
        pytest.fail("port 7437 (the README's pier up) is taken: stop what listens there")
    shutil.rmtree(WORK, ignore_errors=True)
    yield
    _stop_leftovers()
    shutil.rmtree(WORK, ignore_errors=True)


def test_the_readme_runs_as_written(clean_work: None, docker_client: Any) -> None:
    script = "set -euo pipefail\n" + "\n".join(blocks())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "MLFLOW_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # an activated venv
    env["COLUMNS"] = "250"
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=ROOT, env=env, text=True, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    assert proc.returncode == 0, output[-6000:]
    # The R variant answered through the endpoint (variant name, then its prediction).
    assert re.search(r"^r [-0-9.e]+$", output, flags=re.M), output[-6000:]
    # Its container's log, its invocation counted, its request captured.
    assert 'pier_endpoint_invocations_total{endpoint="byoc"' in output, output[-6000:]
    assert re.search(r"/tmp/byoc-r/captured/byoc/r/.*\.jsonl", output), output[-6000:]
