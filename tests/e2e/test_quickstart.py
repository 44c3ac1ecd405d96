"""`pier quickstart` and examples/quickstart.ipynb against one real platform (pier + MLflow).

The module starts one platform (the first quickstart starts it), runs the quickstart twice
(the second run must update the endpoint, not fail), executes the notebook against the same
platform, then stops it with `pier down`.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pier.cli.common import sagemaker_client
from pier.platform.home import Home
from tests.e2e.test_serve_process import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
PIER = str(BIN / "pier")
NOTEBOOK = Path(__file__).parents[2] / "examples" / "quickstart.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A row of the predictions table: asked-for variant, answering variant, three predictions.
ROW = re.compile(r"TargetVariant=(\w+)\W+(\w+)\W+(\d+\.\d, \d+\.\d, \d+\.\d)")
SPLIT = re.compile(r"50 weighted calls answered by: champion (\d+), challenger (\d+)")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["PIER_MLFLOW_PORT"] = "0"  # a free port: never collide with a developer's MLflow
    return env


def pier(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIER, *args], capture_output=True, text=True, timeout=timeout, env=_env(), check=False
    )


def quickstart(home: Path, port: int) -> str:
    done = pier("quickstart", "--home", str(home), "--port", str(port))
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("quickstart")
    try:
        yield root
    finally:
        down = pier("down", "--home", str(root), timeout=180)
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def first_run(home: Path, port: int) -> str:
    return quickstart(home, port)


@pytest.fixture(scope="module")
def capture_added(first_run: str, home: Path) -> dict[str, Any]:
    """Between the runs, the user turns on data capture for the quickstart's endpoint."""
    sm, _ = clients(home)
    endpoint = sm.describe_endpoint(EndpointName="diabetes")
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 40,
        "DestinationS3Uri": (home / "my-capture").as_uri(),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    sm.create_endpoint_config(
        EndpointConfigName="diabetes-with-capture",
        ProductionVariants=config["ProductionVariants"],
        DataCaptureConfig=capture,
    )
    sm.update_endpoint(EndpointName="diabetes", EndpointConfigName="diabetes-with-capture")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="diabetes", WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    return capture


@pytest.fixture(scope="module")
def second_run(first_run: str, capture_added: dict[str, Any], home: Path, port: int) -> str:
    return quickstart(home, port)


def clients(home: Path) -> tuple[Any, Any]:
    h = Home(home)
    url = h.url()
    assert url is not None
    return sagemaker_client(h, url), sagemaker_client(h, url, "sagemaker-runtime")


def registry(home: Path) -> Any:
    from mlflow import MlflowClient  # not at import time: the module is collected everywhere

    uri = Home(home).mlflow_url()
    assert uri is not None
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def aliases(home: Path) -> dict[str, str]:
    return {
        alias: registry(home).get_model_version_by_alias("diabetes", alias).version
        for alias in ("champion", "challenger")
    }


def deployed(home: Path) -> dict[str, Any]:
    """The endpoint's status, config, and per variant its weight and model URI."""
    sm, _ = clients(home)
    endpoint = sm.describe_endpoint(EndpointName="diabetes")
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = {}
    for v in config["ProductionVariants"]:
        model = sm.describe_model(ModelName=v["ModelName"])
        weight = {p["VariantName"]: p["CurrentWeight"] for p in endpoint["ProductionVariants"]}
        variants[v["VariantName"]] = (weight[v["VariantName"]], model["PrimaryContainer"])
    return {
        "status": endpoint["EndpointStatus"],
        "config": endpoint["EndpointConfigName"],
        "variants": variants,
    }


def assert_both_variants_answered(out: str) -> None:
    rows = {asked: (answered, predictions) for asked, answered, predictions in ROW.findall(out)}
    assert set(rows) == {"champion", "challenger"}, out
    for asked, (answered, _) in rows.items():
        assert answered == asked
    assert rows["champion"][1] != rows["challenger"][1]  # two different models
    split = SPLIT.search(out)
    assert split is not None, out
    champion, challenger = int(split[1]), int(split[2])
    assert champion + challenger == 50
    assert champion >= 30  # 90 % of 50; below 30 has a probability under 1e-8


def test_a_platform_that_cannot_start_is_reported_with_its_logs(tmp_path: Path) -> None:
    """Runs no platform: the port is taken, so `pier up` fails and the quickstart says why."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = pier("quickstart", "--home", str(tmp_path), "--port", str(port), timeout=120)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert f"logs: {tmp_path / 'logs'}/" in done.stderr
    assert "Traceback" not in done.stderr


def test_first_run_trains_registers_deploys_and_invokes(first_run: str, home: Path) -> None:
    out = first_run
    assert "pier is up on" in out  # it started the platform
    for metric in ("rmse", "r2", "mae"):
        assert metric in out
    assert "Creating endpoint diabetes" in out
    assert_both_variants_answered(out)
    assert re.search(
        r"\$ \S*pier invoke diabetes --body @\S+request\.json --variant challenger", out
    )
    assert "variant: challenger" in out  # what `pier invoke` said
    assert f"pier down --home {home}" in out
    mlflow_url = Home(home).mlflow_url()
    assert f"{mlflow_url}/#/models/diabetes" in out
    assert f"{Home(home).url()}/console/endpoints/diabetes" in out  # the web console

    assert aliases(home) == {"champion": "1", "challenger": "2"}
    client = registry(home)
    for version in ("1", "2"):
        run = client.get_run(client.get_model_version("diabetes", version).run_id)
        assert set(run.data.metrics) >= {"rmse", "r2", "mae"}
        assert "estimator" in run.data.params
        # The training data: an artefact, and the run's training dataset pointing at it.
        [training] = [d for d in run.inputs.dataset_inputs if d.tags[0].value == "training"]
        assert training.dataset.source_type == "http"
        url = json.loads(training.dataset.source)["url"]
        rows = pd.read_parquet(io.BytesIO(httpx.get(url, timeout=30).content))
        assert len(rows) == 353  # 80 % of diabetes' 442 rows
        assert "target" in rows.columns
        assert [f.path for f in client.list_artifacts(run.info.run_id, "data")] == [
            "data/train.parquet"
        ]
    now = deployed(home)
    assert now["status"] == "InService"
    assert now["variants"] == {
        "champion": (0.9, {"ModelDataUrl": "models:/diabetes/1"}),
        "challenger": (0.1, {"ModelDataUrl": "models:/diabetes/2"}),
    }


def test_the_model_has_a_signature_and_an_input_example(
    first_run: str, home: Path, tmp_path: Path
) -> None:
    import mlflow.artifacts
    import yaml

    client = registry(home)
    source = client.get_model_version("diabetes", "1").source  # models:/<logged model id>
    model = client.get_logged_model(source.removeprefix("models:/"))
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model.artifact_location}/MLmodel",
        tracking_uri=Home(home).mlflow_url(),
        dst_path=str(tmp_path),
    )
    meta = yaml.safe_load(Path(path).read_text())
    assert meta["signature"]["inputs"]
    assert meta["saved_input_example_info"]


def test_second_run_moves_aliases_and_updates_the_endpoint(
    first_run: str, second_run: str, home: Path
) -> None:
    before = deployed(home)  # after the second run: compare with what the first run made
    out = second_run
    assert "pier is already running" in out
    assert "Updating (blue/green) endpoint diabetes" in out
    assert_both_variants_answered(out)
    assert aliases(home) == {"champion": "3", "challenger": "4"}
    assert before["status"] == "InService"
    assert before["variants"] == {
        "champion": (0.9, {"ModelDataUrl": "models:/diabetes/3"}),
        "challenger": (0.1, {"ModelDataUrl": "models:/diabetes/4"}),
    }
    configs = re.findall(r"endpoint config: (\S+)", first_run + second_run)
    assert len(set(configs)) == 2
    assert before["config"] == configs[1]


def test_second_run_keeps_the_data_capture_a_user_added(
    second_run: str, capture_added: dict[str, Any], home: Path
) -> None:
    sm, _ = clients(home)
    config = sm.describe_endpoint_config(EndpointConfigName=deployed(home)["config"])
    kept = config["DataCaptureConfig"]
    assert {k: kept[k] for k in capture_added} == capture_added


def test_notebook_runs_against_the_platform(second_run: str, home: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    env = _env()
    exported = pier("env", "--home", str(home)).stdout
    for line in exported.splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value
    assert "MLFLOW_TRACKING_URI" in env
    env["PIER_HOME"] = str(home)  # for the notebook's `pier invoke`
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3").execute(env=env)

    text = ANSI.sub(
        "",
        "".join(
            o.get("text", "")
            for cell in nb.cells
            if cell.cell_type == "code"
            for o in cell.outputs
            if o.output_type == "stream"
        ),
    )
    assert re.search(r"champion: \[\d+\.\d, \d+\.\d, \d+\.\d\]", text), text
    assert re.search(r"challenger: \[\d+\.\d, \d+\.\d, \d+\.\d\]", text), text
    assert re.search(r"50 weighted calls: \{.*'champion': \d+", text), text
    assert "variant: challenger" in text  # `pier invoke` from the notebook
    assert aliases(home) == {"champion": "5", "challenger": "6"}
    now = deployed(home)
    assert now["status"] == "InService"
    assert now["config"].startswith("diabetes-nb-")
    assert now["variants"]["champion"] == (0.9, {"ModelDataUrl": "models:/diabetes/5"})
    assert now["variants"]["challenger"] == (0.1, {"ModelDataUrl": "models:/diabetes/6"})
