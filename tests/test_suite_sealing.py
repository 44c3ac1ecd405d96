"""The suite is sealed from the shell that runs it, and no process it starts outlives it.

Each check runs pytest in a subprocess on a small test file with the suite's conftest loaded
(`-p tests.conftest`), from the shell environment a user might have.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(test_file: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            "--rootdir",
            str(test_file.parent),
            "-c",
            os.devnull,
            str(test_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pier_aws_and_mlflow_variables_of_the_shell_do_not_reach_the_tests(
    tmp_path: Path,
) -> None:
    inner = tmp_path / "test_inner.py"
    inner.write_text(
        "import os\n"
        "def test_environment():\n"
        "    sealed = {'PIER_PORT', 'PIER_HOME', 'AWS_PROFILE', 'AWS_ENDPOINT_URL',\n"
        "              'MLFLOW_TRACKING_URI'}\n"
        "    assert not sealed & set(os.environ), sorted(sealed & set(os.environ))\n"
        "    assert os.environ['PIER_BASE_IMAGE'] == 'pier-base:bookworm'\n"
    )
    shell = {
        **os.environ,
        "PIER_PORT": "9999",
        "PIER_HOME": "/nonexistent",
        "AWS_PROFILE": "production",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "PIER_BASE_IMAGE": "pier-base:bookworm",  # the suite's own knob stays
    }
    result = run_pytest(inner, shell)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_process_that_outlives_its_test_fails_the_run_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    inner = tmp_path / "test_inner.py"
    inner.write_text(
        "import subprocess, sys\n"
        "LEAK = []\n"
        "def test_forgets_its_child():\n"
        "    child = subprocess.Popen(['sleep', '300'])\n"
        "    LEAK.append(child)  # held, so no ResourceWarning muddies the point\n"
        f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "def test_next():\n"
        "    pass\n"
    )
    result = run_pytest(inner, dict(os.environ))
    assert result.returncode != 0, result.stdout
    pid = int(pid_file.read_text())
    assert f"pid {pid}: sleep 300 (running after " in result.stdout, result.stdout
    assert "test_inner.py::test_forgets_its_child)" in result.stdout, result.stdout
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # killed; reaped by init once its parent, pytest, exited
    assert not Path(f"/proc/{pid}").exists()
