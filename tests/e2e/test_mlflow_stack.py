"""The whole stack `pier up` starts: MLflow (tracking + registry) beside the platform.

For each backing setup — the embedded default (SQLite + local artefacts), the local PostgreSQL
as MLflow's backend store, and an FTP artefact store (pyftpdlib, started here) — a model is
trained, logged and registered through pier's MLflow server with the MLflow client, then
deployed by registry alias with boto3 and invoked. DescribeEndpoint says which version runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import psycopg
import pytest
from botocore.config import Config

from tests.boto3.platform_fixtures import (
    BIN,
    POSTGRES_ADMIN_URL,
    kill_leftovers,
    platform_env,
    postgres_database,
    wait_for,
)

pytestmark = pytest.mark.slow
PIER = str(BIN / "pier")
NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pier(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIER, *args], capture_output=True, text=True, timeout=timeout, check=False,
        env=platform_env(),
    )  # fmt: skip


def exported(home: Path) -> dict[str, str]:
    env = pier("env", "--home", str(home))
    assert env.returncode == 0, env.stderr
    return dict(
        line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines() if line
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A home and the `pier up` options of the test; the test starts it, this stops it."""
    home = tmp_path / "home"
    options: list[str] = []
    yield home, options
    down = pier("down", "--home", str(home), timeout=180)
    kill_leftovers(home)
    assert down.returncode == 0, down.stderr


def up(home: Path, *options: str) -> dict[str, str]:
    r = pier("up", "--detach", "--home", str(home), "--port", str(free_port()),
             "--mlflow-port", "0", *options)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return exported(home)


def train_and_register(tracking_uri: str, name: str, slope: float) -> str:
    """Log a linear model in a run, register it as the next version of `name`; its version."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("stack-test")
    x = np.arange(20, dtype=float).reshape(-1, 1)
    model = LinearRegression().fit(x, slope * x[:, 0] + 1.0)
    with mlflow.start_run():
        mlflow.log_param("slope", slope)
        mlflow.log_metric("r2", 1.0)
        info = mlflow.sklearn.log_model(
            model, name="model", input_example=x[:2], registered_model_name=name
        )
    version = str(info.registered_model_version)
    MlflowClient(tracking_uri).set_registered_model_alias(name, "champion", version)
    return version


def deploy_and_invoke(env: dict[str, str], model_uri: str) -> dict[str, object]:
    kwargs = {
        "endpoint_url": env["AWS_ENDPOINT_URL_SAGEMAKER"],
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "config": NO_RETRIES,
    }
    sm = boto3.client("sagemaker", **kwargs)
    runtime = boto3.client("sagemaker-runtime", **kwargs)
    sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": model_uri},
                    ExecutionRoleArn="arn:aws:iam::000000000000:role/pier")  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[{"VariantName": "main", "ModelName": "m",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="e", WaiterConfig={"Delay": 1, "MaxAttempts": 240}
    )
    answer = runtime.invoke_endpoint(
        EndpointName="e", ContentType="application/json",
        Body=json.dumps({"inputs": [[2.0], [10.0]]}),
    )  # fmt: skip
    described = sm.describe_endpoint(EndpointName="e")
    return {
        "predictions": json.loads(answer["Body"].read())["predictions"],
        "resolved": described["ProductionVariants"][0]["DeployedImages"][0]["ResolvedImage"],
    }


def test_embedded_default(stack: tuple[Path, list[str]]) -> None:
    home, _ = stack
    env = up(home)
    tracking = env["MLFLOW_TRACKING_URI"]
    status = pier("status", "--home", str(home))
    assert f"MLflow on {tracking}" in status.stdout
    assert train_and_register(tracking, "stack", slope=2.0) == "1"
    assert train_and_register(tracking, "stack", slope=3.0) == "2"
    result = deploy_and_invoke(env, "models:/stack@champion")
    # The alias points at version 2: that version runs, and DescribeEndpoint says so.
    assert result["resolved"] == "pier/mlflow-pyfunc@models:/stack/2"
    assert result["predictions"] == pytest.approx([7.0, 31.0])
    # The embedded stores live in the home.
    assert (home / "mlflow" / "mlflow.db").is_file()
    assert list((home / "mlflow" / "artifacts").rglob("MLmodel"))
    mlflow_pid = int((home / "mlflow.pid").read_text())
    down = pier("down", "--home", str(home), timeout=180)
    assert down.returncode == 0
    assert not Path(f"/proc/{mlflow_pid}").exists(), "pier down left MLflow running"


def test_postgresql_backend_store(stack: tuple[Path, list[str]]) -> None:
    home, _ = stack
    with postgres_database() as url:
        env = up(home, "--backend-store-uri", url)
        tracking = env["MLFLOW_TRACKING_URI"]
        assert train_and_register(tracking, "pg-model", slope=5.0) == "1"
        result = deploy_and_invoke(env, "models:/pg-model/1")
        assert result["predictions"] == pytest.approx([11.0, 51.0])
        assert result["resolved"] == "pier/mlflow-pyfunc@models:/pg-model/1"
        with psycopg.connect(url) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM registered_models")]
        assert names == ["pg-model"]
        assert pier("down", "--home", str(home), timeout=180).returncode == 0
    assert POSTGRES_ADMIN_URL  # the database is dropped by postgres_database()


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with warnings.catch_warnings():  # pyftpdlib still imports asyncore (deprecated in 3.11)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

    root = tmp_path / "ftp"
    root.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("mlflow", "ftp-pw-9", str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    handler.passive_ports = range(60000, 60200)
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.5}, daemon=True)
    thread.start()
    yield f"ftp://mlflow:ftp-pw-9@127.0.0.1:{port}/artifacts", root
    server.close_all()
    thread.join(10)


def test_ftp_artifact_store(stack: tuple[Path, list[str]], ftp_server: tuple[str, Path]) -> None:
    home, _ = stack
    destination, ftp_root = ftp_server
    env = up(home, "--artifacts-destination", destination)
    tracking = env["MLFLOW_TRACKING_URI"]
    assert train_and_register(tracking, "ftp-model", slope=1.0) == "1"
    # The artefacts went to the FTP server, through pier's MLflow server.
    wait_for(lambda: list(ftp_root.rglob("MLmodel")), 10, what="MLmodel on the FTP server")
    result = deploy_and_invoke(env, "models:/ftp-model@champion")
    assert result["predictions"] == pytest.approx([3.0, 11.0])
    # The FTP password is in no log and not in `pier status`.
    status = pier("status", "--home", str(home))
    for text in (
        status.stdout,
        *(p.read_text(errors="replace") for p in (home / "logs").iterdir()),
    ):
        assert "ftp-pw-9" not in text
