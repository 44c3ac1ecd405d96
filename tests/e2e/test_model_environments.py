"""A model logged with another scikit-learn, served in its own environment: `pier serve` and an
endpoint of a real `pier up` answer exactly as `mlflow models serve --env-manager virtualenv`.

Real processes everywhere: the model is trained in a venv with scikit-learn 1.6.1 (pier has
1.9.x), MLflow builds its virtualenv (pyenv + venv + pip) and serves it, pier builds its own
with uv. Model environments are shared by every test of the session (one cache directory).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_diabetes

from tests.boto3.platform_fixtures import free_port, running_platform, wait_for
from tests.e2e.other_sklearn import FEATURES, OTHER_SKLEARN, trained_model

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ROWS = load_diabetes(as_frame=True).data.head(25).to_numpy().tolist()
BODY = json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": ROWS}}).encode()
JSON = {"Content-Type": "application/json"}
# MLflow's virtualenvs, kept between sessions like the training venv (MLflow names each by a
# hash of what it installs, and removes one whose creation failed).
MLFLOW_ENV_ROOT = Path(tempfile.gettempdir()) / "pier-test-mlflow-envs"


@pytest.fixture(scope="session")
def model() -> Path:
    return trained_model()


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pier's model environments for the whole session (pier serve and pier up share it)."""
    return tmp_path_factory.mktemp("pier-envs")


@pytest.fixture(scope="session")
def broken_env_model(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model declaring a scikit-learn that does not exist."""
    path = tmp_path_factory.mktemp("broken-env") / "model"
    shutil.copytree(model, path)
    requirements = path / "requirements.txt"
    text = requirements.read_text()
    assert f"scikit-learn=={OTHER_SKLEARN}" in text
    requirements.write_text(text.replace(f"scikit-learn=={OTHER_SKLEARN}", "scikit-learn==0.0.1"))
    return path


def wait_ping(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"no /ping 200 in {timeout} s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def started(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own session; SIGTERM to its group at the end (then SIGKILL)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def predictions(body: bytes | str) -> list[float]:
    return [float(p) for p in json.loads(body)["predictions"]]


@pytest.fixture(scope="session")
def mlflow_predictions(model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    """What `mlflow models serve --env-manager virtualenv` answers for ROWS."""
    tmp = tmp_path_factory.mktemp("mlflow-serve")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIER_"))}
    env["MLFLOW_ENV_ROOT"] = str(MLFLOW_ENV_ROOT)
    args = [str(BIN / "mlflow"), "models", "serve", "-m", str(model), "--env-manager"]
    args += ["virtualenv", "-h", "127.0.0.1", "-p", str(port)]
    with started(args, tmp / "mlflow-serve.log", env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ping(url, proc, tmp / "mlflow-serve.log", timeout=900)
        response = httpx.post(url + "/invocations", content=BODY, headers=JSON, timeout=60)
        assert response.status_code == 200, response.text
        return predictions(response.content)


def pier_serve_args(model: Path | str, port: int, tmp: Path, *extra: str) -> list[str]:
    args = [str(BIN / "pier"), "serve", "--model-uri", str(model), "--port", str(port)]
    return [*args, "--log-file", str(tmp / f"serve-{port}.log"), *extra]


def serve_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIER_"))}
    return {**env, "PIER_HOME": str(tmp / "home")}


# ----------------------------------------------------------------------------- pier serve
def test_pier_serve_builds_the_model_environment_and_answers_like_mlflow(
    model: Path, env_cache: Path, mlflow_predictions: list[float], tmp_path: Path
) -> None:
    port = free_port()
    args = pier_serve_args(model, port, tmp_path, "--env-cache", str(env_cache))
    with started(args, tmp_path / "out.txt", serve_env(tmp_path)) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ping(url, proc, tmp_path / "out.txt", timeout=600)
        response = httpx.post(url + "/invocations", content=BODY, headers=JSON, timeout=60)
        assert response.status_code == 200, response.text
        assert predictions(response.content) == mlflow_predictions
        # The pid pier serve started with is the server's, running the environment's Python.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-m", b"pier.serving"]
        assert Path(cmdline[0].decode()).is_relative_to(env_cache)
        versions = subprocess.run(
            [cmdline[0].decode(), "-c", "import sklearn; print(sklearn.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert versions.stdout.strip() == OTHER_SKLEARN
    log = (tmp_path / f"serve-{port}.log").read_text()
    assert "scikit-learn==1.6.1: " in log  # why it needed its own environment
    assert f"serving {model} in the model's environment {env_cache}/" in log


def test_pier_serve_local_keeps_pier_environment_and_logs_what_differs(
    model: Path, env_cache: Path, tmp_path: Path
) -> None:
    port = free_port()
    args = pier_serve_args(model, port, tmp_path, "--env-manager", "local")
    env = {**serve_env(tmp_path), "PIER_ENV_CACHE": str(env_cache)}
    with started(args, tmp_path / "out.txt", env) as proc:
        wait_ping(f"http://127.0.0.1:{port}", proc, tmp_path / "out.txt", timeout=120)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline  # still `pier serve`, in pier's own environment
    log = (tmp_path / f"serve-{port}.log").read_text()
    assert "env manager 'local'" in log
    assert "scikit-learn==1.6.1: " in log


def test_pier_serve_exits_1_with_the_resolver_message(
    broken_env_model: Path, env_cache: Path, tmp_path: Path
) -> None:
    port = free_port()
    args = pier_serve_args(broken_env_model, port, tmp_path, "--env-cache", str(env_cache))
    done = subprocess.run(
        args, env=serve_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "error: Cannot build the model's environment" in done.stderr
    assert "no version of scikit-learn==0.0.1" in done.stderr
    assert "Traceback" not in done.stderr
    assert "no version of scikit-learn==0.0.1" in (tmp_path / f"serve-{port}.log").read_text()


# ----------------------------------------------------------------------------- pier up
def register(platform_home: Path, model: Path, name: str) -> str:
    """Log `model`'s files to the platform's MLflow and register them: models:/name/1."""
    code = (
        "import sys, mlflow\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_artifacts(sys.argv[1], 'model')\n"
        "v = mlflow.register_model(f'runs:/{run.info.run_id}/model', sys.argv[2])\n"
        "print(v.version)\n"
    )
    tracking = (platform_home / "mlflow.url").read_text().strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = tracking
    done = subprocess.run(
        [sys.executable, "-c", code, str(model), name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return f"models:/{name}/{done.stdout.strip().splitlines()[-1]}"


def deploy(sm: Any, name: str, container: dict[str, Any], count: int = 1) -> None:
    sm.create_model(ModelName=name, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": count,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def settled(sm: Any, name: str, timeout: float = 600) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        d: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        return d if d["EndpointStatus"] in ("InService", "Failed") else None

    return wait_for(probe, timeout, interval=0.5, what=f"endpoint {name} to settle")


def instance_pids(home: Path, endpoint: str = "") -> dict[int, list[bytes]]:
    """pid -> argv of the live processes running in the (endpoint's) instance directories."""
    found = {}
    instances = (home / "instances").resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cwd.parent == instances and cwd.name.startswith(f"{endpoint}-" if endpoint else ""):
            found[int(entry.name)] = argv
    return found


def instance_cmdlines(home: Path, endpoint: str) -> list[list[bytes]]:
    return list(instance_pids(home, endpoint).values())


@pytest.fixture
def platform_home(tmp_path: Path) -> Iterator[Path]:
    """The platform's home; instances a failed test left running are killed (by pid)."""
    home = tmp_path / "home"
    yield home
    for pid in instance_pids(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_endpoints_serve_each_model_in_its_environment(
    model: Path,
    broken_env_model: Path,
    env_cache: Path,
    mlflow_predictions: list[float],
    platform_home: Path,
) -> None:
    home = platform_home
    options = ("--mlflow-port", "0")
    with running_platform(home, options, env={"PIER_ENV_CACHE": str(env_cache)}) as platform:
        sm = platform.client("sagemaker")
        runtime = platform.client("sagemaker-runtime")
        uri = register(home, model, "other-sklearn")
        # Two instances launched at once share one environment (downloaded once to read it).
        deploy(sm, "own-env", {"ModelDataUrl": uri}, count=2)
        deploy(sm, "bad-env", {"ModelDataUrl": str(broken_env_model)})
        deploy(
            sm,
            "forced-local",
            {"ModelDataUrl": str(model), "Environment": {"PIER_ENV_MANAGER": "local"}},
        )

        assert settled(sm, "own-env")["EndpointStatus"] == "InService"
        for _ in range(4):  # both instances
            out = runtime.invoke_endpoint(
                EndpointName="own-env", Body=BODY, ContentType="application/json"
            )
            assert predictions(out["Body"].read()) == mlflow_predictions
        argvs = instance_cmdlines(home, "own-env")
        assert len(argvs) == 2
        env_dirs = {Path(a[0].decode()).parent.parent for a in argvs}
        assert len(env_dirs) == 1  # one environment for both
        assert env_dirs.pop().parent == env_cache
        assert all(a[1:3] == [b"-m", b"pier.serving"] for a in argvs)

        failed = settled(sm, "bad-env")
        assert failed["EndpointStatus"] == "Failed"
        assert "Cannot build the model's environment" in failed["FailureReason"]
        assert "no version of scikit-learn==0.0.1" in failed["FailureReason"]

        assert settled(sm, "forced-local")["EndpointStatus"] == "InService"
        [local] = instance_cmdlines(home, "forced-local")
        assert b"serve" in local  # pier serve, in pier's own environment
        assert b"pier.serving" not in local
        for name in ("own-env", "bad-env", "forced-local"):
            sm.delete_endpoint(EndpointName=name)
