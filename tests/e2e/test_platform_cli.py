"""`pier up` refuses bad setups with one clear line and a non-zero exit; `pier env`/`status`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
PIER = str(Path(sys.executable).parent / "pier")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_unreachable_state_database(tmp_path: Path) -> None:
    r = run("up", "--home", str(tmp_path), "--port", "0", "--no-mlflow",
            "--state-url", "postgresql://nobody@127.0.0.1:1/none")  # fmt: skip
    assert r.returncode == 1
    assert "cannot reach the state database" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_home(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run("up", "--home", str(blocker / "home"), "--port", "0", "--no-mlflow")
    assert r.returncode == 1
    assert "is not writable" in r.stderr
    assert "Traceback" not in r.stderr


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("up", "--home", str(tmp_path), "--port", str(port), "--no-mlflow")
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
        # The same port for pier's MLflow server: pier says so before it starts MLflow.
        r = run("up", "--home", str(tmp_path), "--port", "0", "--mlflow-port", str(port))
        assert r.returncode == 1
        assert f"the port of pier's MLflow server, 127.0.0.1:{port}, is taken" in r.stderr
        assert "PIER_MLFLOW_PORT" in r.stderr
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "pier.pid").exists()
        assert not (tmp_path / "mlflow.pid").exists()
        # Detached, twice: each start's console log is its own.
        for _ in range(2):
            r = run("up", "--home", str(tmp_path), "--port", "0", "--mlflow-port", str(port),
                    "--detach", timeout=120)  # fmt: skip
            assert r.returncode == 1
            assert "is taken by another program" in r.stderr
        console = (tmp_path / "logs" / "platform.console.log").read_text()
        assert console.count("is taken by another program") == 1, console


def test_mlflow_store_password_never_shown(tmp_path: Path) -> None:
    r = run("up", "--home", str(tmp_path), "--port", "0", "--mlflow-port", "0",
            "--backend-store-uri", "postgresql://pier:s3cr3t-pw@127.0.0.1:1/none",
            timeout=180)  # fmt: skip
    assert r.returncode == 1
    assert "cannot reach MLflow's backend store postgresql://pier:***@127.0.0.1:1/none" in r.stderr
    assert "s3cr3t-pw" not in r.stderr
    assert "s3cr3t-pw" not in (tmp_path / "logs" / "platform.log").read_text()


def test_env_and_status_before_the_first_start(tmp_path: Path) -> None:
    r = run("env", "--home", str(tmp_path))
    assert r.returncode == 1
    assert "run `pier up` first" in r.stderr
    r = run("status", "--home", str(tmp_path))
    assert r.returncode == 3
    assert "not running" in r.stdout


def test_detach_status_env_down(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    up = run("up", "--home", str(tmp_path), "--port", str(port), "--detach", timeout=200)
    assert up.returncode == 0, up.stderr
    try:
        again = run("up", "--home", str(tmp_path), "--port", str(port), "--detach")
        assert again.returncode == 0, again.stderr  # scripts after `make demo` go on
        assert f"pier is already up on http://127.0.0.1:{port}" in again.stdout
        assert "`pier down` first to change them" in again.stdout
        page = httpx.get(f"http://127.0.0.1:{port}/", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<a href="/console/">' in page.text
        mlflow = (tmp_path / "mlflow.url").read_text()
        assert f'<a href="{mlflow}">MLflow UI</a>' in page.text
        links = httpx.get(f"http://127.0.0.1:{port}/").json()  # API clients: JSON
        assert links["console"] == "/console/"
        assert links["mlflow"] == mlflow
        assert "POST /endpoints/{name}/invocations" in links["apis"]
        status = run("status", "--home", str(tmp_path))
        assert status.returncode == 0
        assert f"http://127.0.0.1:{port}" in status.stdout
        assert f"Console on http://127.0.0.1:{port}/console/" in status.stdout
        env = run("env", "--home", str(tmp_path))
        assert f"export AWS_ENDPOINT_URL_SAGEMAKER=http://127.0.0.1:{port}" in env.stdout
        assert "export AWS_SECRET_ACCESS_KEY=" in env.stdout
        secret = env.stdout.split("AWS_SECRET_ACCESS_KEY=")[1].split()[0]
        log = (tmp_path / "logs" / "platform.log").read_text()
        assert secret not in log
    finally:
        down = run("down", "--home", str(tmp_path), timeout=150)
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert run("status", "--home", str(tmp_path)).returncode == 3
    env = run("env", "--home", str(tmp_path))  # down: the settings, and a warning beside them
    assert env.returncode == 0
    assert "export AWS_SECRET_ACCESS_KEY=" in env.stdout
    assert "warning: pier is not running" in env.stderr
