"""The console's browser tests: a real `pier up` (with MLflow), the real quickstart, and
Debian's Chromium driven by Playwright.

Chromium is the system's (`scripts/browser` installs Debian's `chromium` for `make test`);
Playwright never downloads a browser here. Without it the tests fail saying how to install
it: a console nobody tested in a browser is not done.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.boto3.platform_fixtures import (
    Platform,
    free_port,
    kill_leftovers,
    platform_env,
)

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("PIER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
FILLERS = 49  # with the quickstart's endpoint: 50 endpoints on the list page


@contextlib.contextmanager
def platform_of(home: Path, options: tuple[str, ...], env: dict[str, str]) -> Iterator[Platform]:
    """A `pier up` on a free port; it must stop cleanly (exit 0) on SIGTERM at the end. It
    may take minutes to start MLflow on a loaded machine: up to 300 s are allowed."""
    p = Platform(home, free_port(), None, "sqlite", options=options, env=env)
    code: int | None = None
    try:
        p.start(timeout=300)
        yield p
        code = p.terminate(timeout=180)
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        kill_leftovers(p.home)
    assert code == 0, p.log_tail()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Chromium through Playwright's sync API, for this package only: while it runs, its event
    loop is the main thread's, and every later test calling asyncio.run would fail."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run scripts/browser (apt-get install chromium), "
            "or point PIER_CHROMIUM at one"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (kept with pytest's temporary directories)."""
    path = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {path}")
    return path


def pier(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in platform_env().items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(home)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def save_diabetes_model(path: Path, alias: str) -> Path:
    """One of the quickstart's two models (pier.demo.quickstart's CHAMPION or CHALLENGER),
    trained on the same split and saved as an MLflow model with its signature and input
    example, as the quickstart logs it (to a directory: no tracking server needed)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from pier.demo.quickstart import CHALLENGER, CHAMPION, load_data

    data = load_data()
    candidate = {"champion": CHAMPION, "challenger": CHALLENGER}[alias]
    model = candidate.build().fit(data.X_train, data.y_train)
    mlflow.sklearn.save_model(
        model, str(path),
        signature=infer_signature(data.X_train, model.predict(data.X_train)),
        input_example=data.X_train.head(2), serialization_format="cloudpickle",
        pip_requirements=["mlflow", "scikit-learn"],
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The quickstart's endpoint on a real platform: `diabetes`, its champion and challenger
    weighted 90/10 (the quickstart's models, from directories: MLflow's server takes minutes
    to start on a loaded machine), with data capture on, invoked 40 times; plus FILLERS
    endpoints (Failed: their model directory does not exist, so they cost no process) so the
    list page is measured with 50 endpoints."""
    root = tmp_path_factory.mktemp("console")
    env = {"PIER_METRICS_FLUSH_SECONDS": "1"}
    with platform_of(root / "home", ("--no-mlflow",), env) as p:
        sm, rt = p.client("sagemaker"), p.client("sagemaker-runtime")
        for alias in ("champion", "challenger"):
            path = save_diabetes_model(root / alias, alias)
            sm.create_model(ModelName=f"diabetes-{alias}",
                            PrimaryContainer={"ModelDataUrl": str(path)})  # fmt: skip
        sm.create_endpoint_config(
            EndpointConfigName="diabetes-1",
            ProductionVariants=[
                {"VariantName": alias, "ModelName": f"diabetes-{alias}",
                 "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                 "InitialVariantWeight": weight}
                for alias, weight in (("champion", 0.9), ("challenger", 0.1))
            ],
            DataCaptureConfig={
                "EnableCapture": True, "InitialSamplingPercentage": 100,
                "DestinationS3Uri": (root / "capture").as_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )  # fmt: skip
        sm.create_endpoint(EndpointName="diabetes", EndpointConfigName="diabetes-1")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="diabetes", WaiterConfig={"Delay": 2, "MaxAttempts": 300}
        )
        example = json.loads((root / "champion" / "serving_input_example.json").read_text())
        for _ in range(40):
            rt.invoke_endpoint(EndpointName="diabetes", ContentType="application/json",
                               Body=json.dumps(example))  # fmt: skip
        sm.create_model(
            ModelName="filler",
            PrimaryContainer={"ModelDataUrl": str(root / "no-such-model")},
        )
        sm.create_endpoint_config(
            EndpointConfigName="filler",
            ProductionVariants=[
                {"VariantName": "only", "ModelName": "filler", "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large"}
            ],
        )  # fmt: skip
        for i in range(FILLERS):
            sm.create_endpoint(EndpointName=f"filler-{i:02d}", EndpointConfigName="filler")
        yield p


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform without MLflow whose console sessions last 4 s."""
    home = tmp_path_factory.mktemp("console-short") / "home"
    env = {"PIER_CONSOLE_SESSION_SECONDS": "4"}
    with platform_of(home, ("--no-mlflow",), env) as p:
        yield p
