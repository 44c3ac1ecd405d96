"""One real `pier up` for the gateway's tests, with endpoint `diabetes` InService.

The model is a linear regression on scikit-learn's bundled diabetes data (the quickstart's
columns), saved with its signature and input example, deployed through boto3 as users do.
The platform writes usage and reloads keys every second (PIER_GATEWAY_FLUSH_SECONDS=1); the
`pier keys` commands tell it at once anyway. Tests run `pier` as a user would (`pier_cli`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import BIN, Platform, running_platform

ENDPOINT = "diabetes"
COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROW = [0.038, 0.05, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]


def save_diabetes_model(path: Path) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = LinearRegression().fit(X, y)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        input_example=X.head(2),
        serialization_format="cloudpickle",
        pip_requirements=["mlflow", "scikit-learn"],
    )
    return path


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("gateway")
    model = save_diabetes_model(root / "diabetes-model")
    env = {"PIER_GATEWAY_FLUSH_SECONDS": "1"}
    with running_platform(root / "home", env=env) as p:
        sm = p.client("sagemaker")
        sm.create_model(ModelName="diabetes", PrimaryContainer={"ModelDataUrl": str(model)})
        sm.create_endpoint_config(
            EndpointConfigName="diabetes", ProductionVariants=[variant("main", "diabetes")]
        )
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="diabetes")
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=SHORT)
        yield p


def pier_cli(
    platform: Platform, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`pier ARGS` in a user's shell for the platform's home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    env.update(PIER_HOME=str(platform.home), COLUMNS="200")
    done = subprocess.run(
        [str(BIN / "pier"), *args], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def create_key(platform: Platform, name: str, *options: str) -> dict[str, Any]:
    """`pier keys create NAME OPTIONS --json`: the new key's record, with "Key"."""
    created: dict[str, Any] = json.loads(
        pier_cli(platform, "keys", "create", name, *options, "--json").stdout
    )
    return created


def split_body(rows: list[list[float]] | None = None) -> bytes:
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows or [ROW]}}).encode()
