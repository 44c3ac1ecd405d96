"""Restarts never make an existing endpoint "not found" (issue 13): after `pier down` and
`pier up`, or a SIGKILL of the platform and of every instance (a reboot: nothing survives),
InvokeEndpoint answers a retryable 503 until the endpoint's instances serve again, and
`pier up --detach` returns once they do; an instance adopted while it was still loading, and
never healthy, is replaced; an endpoint that cannot get its instances back says so
(OutOfService, FailureReason) and comes back when it can; MLflow keeps its automatic port.

Real `pier up` processes (process backend, SQLite), real boto3."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    ServeProcess,
    _serve_children,
    free_port,
    pid_alive,
    platform_env,
    predictions,
    save_linear_model,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow

ENDPOINT = "phoenix"
ROWS = [[1.0, 2.0]]
SHORT = {"Delay": 1, "MaxAttempts": 120}
START = 300  # s for `pier up` to answer: a loaded machine starts it slowly


def endpoint_processes(home: Path, endpoint: str) -> list[ServeProcess]:
    """The endpoint's `pier serve` processes (the process backend's: no Docker needed)."""
    return [p for p in _serve_children(home) if p.instance_dir.name.startswith(f"{endpoint}-")]


def kill_leftovers(home: Path) -> list[int]:
    """SIGKILL every instance process of the home, one pid at a time (a reboot)."""
    pids = [p.pid for p in _serve_children(home)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _invoke(rt: Any, name: str = ENDPOINT) -> list[float]:
    response = rt.invoke_endpoint(
        EndpointName=name, Body=split_json(ROWS), ContentType="application/json"
    )
    return predictions(response["Body"].read())


def _code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def _deploy(sm: Any, model_dir: Path, name: str = ENDPOINT, **container: Any) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelDataUrl": str(model_dir), **container},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/pier",
    )
    variant = {
        "VariantName": "main",
        "ModelName": name,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "ContainerStartupHealthCheckTimeoutInSeconds": 60,  # SageMaker's least
    }
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)


def _served_after_restart(rt: Any) -> tuple[list[float], set[tuple[str, int]]]:
    """Invoke (no client retries) until an answer comes: it, and every error seen before."""
    seen: set[tuple[str, int]] = set()

    def attempt() -> list[float] | None:
        try:
            return _invoke(rt)
        except ClientError as exc:
            seen.add(_code(exc))
            return None

    return wait_for(attempt, 240, 0.02, "an answer after the restart"), seen


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    p = Platform(tmp_path / "home", free_port(), None, "sqlite")
    try:
        yield p
    finally:
        if p.proc is not None and p.proc.poll() is None:
            with contextlib.suppress(AssertionError):
                p.terminate()  # it stops its instances and its MLflow
        _down(p)
        kill_leftovers(p.home)


def _down(p: Platform) -> None:
    subprocess.run(  # a detached `pier up` is no child of ours: `pier down` stops it
        [str(BIN / "pier"), "down", "--home", str(p.home)],
        env=platform_env(), capture_output=True, timeout=180, check=False,
    )  # fmt: skip


def test_after_pier_down_and_up_the_endpoint_is_never_not_found(
    platform: Platform, tmp_path: Path
) -> None:
    """`pier down` stops the instances; the next `pier up` knows the endpoint from its first
    request: a 503 ServiceUnavailable (botocore retries it in every retry mode) until the
    relaunched instance serves, never the 400 "not found"; and a client with retries gets
    its answer right after the restart."""
    model = save_linear_model(tmp_path / "model", 2.0, 3.0, 1.0)
    platform.start(timeout=START)
    _deploy(platform.client("sagemaker"), model.path)
    assert platform.terminate() == 0
    assert endpoint_processes(platform.home, ENDPOINT) == []
    platform.start(timeout=START)
    answer, seen = _served_after_restart(platform.client("sagemaker-runtime"))
    assert answer == pytest.approx(model.predict(ROWS))
    assert seen <= {("ServiceUnavailable", 503)}, seen

    assert platform.terminate() == 0
    platform.start(timeout=START)
    retrying = platform.client(
        "sagemaker-runtime", config=Config(retries={"mode": "standard", "max_attempts": 30})
    )
    assert _invoke(retrying) == pytest.approx(model.predict(ROWS))


def test_after_a_sigkill_and_a_reboot_pier_up_detach_waits_for_the_endpoint(
    platform: Platform, tmp_path: Path
) -> None:
    """SIGKILL the platform and every instance (a reboot: nothing survives): `pier up
    --detach` returns once the endpoint serves again, so the first request succeeds."""
    model = save_linear_model(tmp_path / "model", 2.0, 3.0, 1.0)
    platform.start(timeout=START)
    _deploy(platform.client("sagemaker"), model.path)
    platform.kill()
    assert kill_leftovers(platform.home)  # its instance, alive until now
    up = subprocess.run(
        [str(BIN / "pier"), "up", "--detach", "--home", str(platform.home),
         "--port", str(platform.port), "--no-mlflow"],
        env=platform_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    assert "does not serve yet" not in up.stderr
    rt = platform.client("sagemaker-runtime")  # no retries
    assert _invoke(rt) == pytest.approx(model.predict(ROWS))


def test_pier_up_detach_names_an_endpoint_that_does_not_serve_again(
    platform: Platform, tmp_path: Path
) -> None:
    """An endpoint whose model directory is gone after a reboot cannot serve: `pier up
    --detach` does not wait forever for it, and names it with DescribeEndpoint's reason."""
    model = save_linear_model(tmp_path / "model", 2.0, 3.0, 1.0)
    platform.start(timeout=START)
    _deploy(platform.client("sagemaker"), model.path)
    platform.kill()
    kill_leftovers(platform.home)
    shutil.rmtree(model.path)
    up = subprocess.run(
        [str(BIN / "pier"), "up", "--detach", "--home", str(platform.home),
         "--port", str(platform.port), "--no-mlflow", "--endpoints-timeout", "20"],
        env=platform_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    said = " ".join(up.stderr.split())
    assert f"endpoint {ENDPOINT} does not serve yet after 20 s" in said, up.stderr


def test_an_endpoint_that_cannot_get_its_instance_back_says_so(
    platform: Platform, tmp_path: Path
) -> None:
    """The instance dies and the model directory is gone: the endpoint is OutOfService with a
    FailureReason naming the directory, requests get 429 ModelNotReadyException; with the
    directory back, healing brings it InService again and the reason goes."""
    model = save_linear_model(tmp_path / "model", 2.0, 3.0, 1.0)
    platform.start(timeout=START)
    sm = platform.client("sagemaker")
    _deploy(sm, model.path)
    aside = tmp_path / "aside"
    model.path.rename(aside)
    [victim] = endpoint_processes(platform.home, ENDPOINT)
    kill_leftovers(platform.home)
    wait_for(lambda: not pid_alive(victim.pid), 30, 0.05, "the instance to die")

    def out_of_service() -> dict[str, Any] | None:
        d: dict[str, Any] = sm.describe_endpoint(EndpointName=ENDPOINT)
        return d if d["EndpointStatus"] == "OutOfService" else None

    d = wait_for(out_of_service, 180, 0.2, "OutOfService")
    assert str(model.path) in d["FailureReason"], d["FailureReason"]
    assert d["FailureReason"].startswith("Could not replace an instance: ")
    rt = platform.client("sagemaker-runtime")
    with pytest.raises(ClientError) as excinfo:
        _invoke(rt)
    assert _code(excinfo.value) == ("ModelNotReadyException", 429)

    aside.rename(model.path)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=SHORT)
    assert "FailureReason" not in sm.describe_endpoint(EndpointName=ENDPOINT)
    wait_for(lambda: endpoint_processes(platform.home, ENDPOINT), 180, 0.2, "a new instance")
    answer, _ = _served_after_restart(rt)
    assert answer == pytest.approx(model.predict(ROWS))


STALLING_MODEL = '''
import os
import time

import mlflow
from mlflow.pyfunc import PythonModel


class Stalling(PythonModel):
    """Counts its loads in the file $LOADS_FILE; the second load never ends."""

    def load_context(self, context):
        path = os.environ["LOADS_FILE"]
        with open(path, "a") as f:
            f.write("x")
        if os.path.getsize(path) == 2:
            time.sleep(3600)

    def predict(self, context, model_input):
        return [float(len(model_input))] * len(model_input)


mlflow.models.set_model(Stalling())
'''


def test_an_adopted_instance_that_never_turns_healthy_is_replaced(
    platform: Platform, tmp_path: Path
) -> None:
    """The endpoint's instance dies; its replacement hangs while loading; the platform is
    SIGKILLed then and restarted: it adopts the loading instance and, as it never answers
    /ping within its startup health check timeout, replaces it. The endpoint serves again."""
    import mlflow.pyfunc

    code = tmp_path / "stalling.py"
    code.write_text(STALLING_MODEL)
    model_dir = tmp_path / "stalling"
    mlflow.pyfunc.save_model(str(model_dir), python_model=str(code), pip_requirements=["mlflow"])
    loads = tmp_path / "loads"
    platform.start(timeout=START)
    sm = platform.client("sagemaker")
    env = {"LOADS_FILE": str(loads), "PIER_ENV_MANAGER": "local"}
    _deploy(sm, model_dir, Environment=env)
    [first] = endpoint_processes(platform.home, ENDPOINT)
    kill_leftovers(platform.home)
    wait_for(lambda: loads.exists() and loads.stat().st_size == 2, 180, 0.1, "the stalled load")
    [stalled] = endpoint_processes(platform.home, ENDPOINT)
    assert stalled.pid != first.pid
    platform.kill()
    platform.start(timeout=START)

    def replaced() -> bool:
        procs = endpoint_processes(platform.home, ENDPOINT)
        v = sm.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"][0]
        return v["CurrentInstanceCount"] == 1 and [p.pid for p in procs] != [stalled.pid]

    wait_for(replaced, 300, 0.5, "the stalled instance to be replaced")
    assert not pid_alive(stalled.pid)
    rt = platform.client("sagemaker-runtime")
    response = rt.invoke_endpoint(
        EndpointName=ENDPOINT, Body=split_json(ROWS, ("x", "y")), ContentType="application/json"
    )
    assert predictions(response["Body"].read()) == [1.0]


def test_mlflow_keeps_its_automatic_port_across_restarts(platform: Platform) -> None:
    """`--mlflow-port 0`: the port chosen is used again by the next `pier up`, after a
    `pier down` and after a SIGKILL of the platform."""
    platform.options = ("--mlflow-port", "0")
    platform.start(timeout=300)  # MLflow's first start creates its database
    first = (platform.home / "mlflow.url").read_text()
    assert platform.terminate() == 0
    platform.start(timeout=300)
    assert (platform.home / "mlflow.url").read_text() == first
    platform.kill()  # its MLflow lives on, holding the port: the next `pier up` stops it
    platform.start(timeout=300)
    assert (platform.home / "mlflow.url").read_text() == first
