"""`pier serve` resolves registry and run URIs through a real MLflow tracking server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.e2e.test_serve_process import BIN, Server, free_port, pier_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    cmd = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination", str(root / "artifacts"),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    with (root / "server.log").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "MLflow server did not start"
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def registered(tracking_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Log and register a small model through the tracking server (in a child process, so the
    test process's MLflow globals stay untouched)."""
    script = tmp_path_factory.mktemp("s") / "register.py"
    script.write_text(
        "import mlflow, mlflow.sklearn, pandas as pd, sys\n"
        "from sklearn.linear_model import LinearRegression\n"
        "from mlflow.models import infer_signature\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "X = pd.DataFrame({'a': [0.0, 1.0, 2.0], 'b': [1.0, 0.0, 1.0]})\n"
        "m = LinearRegression().fit(X, [1.0, 3.0, 5.0])\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.sklearn.log_model(m, name='model', signature=infer_signature(X, m.predict(X)),"
        " input_example=X.head(1), registered_model_name='pier-e2e',"
        " serialization_format='cloudpickle')\n"
        "c = mlflow.MlflowClient()\n"
        "v = c.get_latest_versions('pier-e2e')[0].version\n"
        "c.set_registered_model_alias('pier-e2e', 'champion', v)\n"
        "print(run.info.run_id, v)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script), tracking_server], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_id, version = out.stdout.split()[-2:]
    return {"run_id": run_id, "version": version}


@pytest.mark.parametrize("uri_kind", ["alias", "version", "run"])
def test_serve_registry_and_run_uris(
    tracking_server: str, registered: dict[str, str], tmp_path: Path, uri_kind: str
) -> None:
    uri = {
        "alias": "models:/pier-e2e@champion",
        "version": f"models:/pier-e2e/{registered['version']}",
        "run": f"runs:/{registered['run_id']}/model",
    }[uri_kind]
    server: Server = pier_serve(uri, tmp_path, env={"MLFLOW_TRACKING_URI": tracking_server})
    try:
        server.first_ping_statuses()
        body = {"dataframe_split": pd.DataFrame({"a": [3.0], "b": [0.0]}).to_dict(orient="split")}
        body["dataframe_split"].pop("index")
        r = httpx.post(server.url + "/invocations", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [pytest.approx(7.0)]
    finally:
        assert server.stop() == 0
