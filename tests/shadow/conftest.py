"""Shadow variants and inference experiments through unmodified boto3, against one real
`pier up` (process backend, SQLite): the production model A, the shadow model B (which answers
differently), and a shadow that rejects every request (its model expects other columns).

Endpoints (each instance is a `pier serve` process, so few):
- SHADOWED: production A, shadow B at half the production weight (half the requests copied),
  data capture of every request into `capture_dir`;
- FAILING: production A, the failing shadow at full weight (every request copied);
- the experiment tests create EXPERIMENTAL (production A, no shadow) and run experiments on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.boto3.hosting import Created, Models, create_and_wait, variant
from tests.boto3.platform_fixtures import (
    Platform,
    running_platform,
    save_broken_model,
    save_linear_model,
)

SHADOWED = "shadowed"
FAILING = "shadow-failing"
EXPERIMENTAL = "experimental"
SHADOW_WEIGHT = 0.5  # over production weight 1.0: half the requests are copied


def save_other_columns_model(path: Path) -> Path:
    """A model that loads and serves, but whose signature wants columns c and d: every request
    with columns a and b is refused with a 4xx by its server."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"c": [0.0, 1.0, 2.0], "d": [1.0, 0.0, 1.0]})
    y = X["c"] + X["d"]
    model = LinearRegression().fit(X, y)
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(X, model.predict(X)),
        serialization_format="cloudpickle", pip_requirements=["mlflow", "scikit-learn"],
    )  # fmt: skip
    return path


@pytest.fixture(scope="package")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    return Models(
        a=save_linear_model(root / "model-a", 1.0, 2.0, 10.0),
        b=save_linear_model(root / "model-b", -3.0, 0.5, 100.0),
        broken=save_broken_model(root / "broken"),
        missing=root / "does-not-exist",
    )


@pytest.fixture(scope="package")
def other_columns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_other_columns_model(tmp_path_factory.mktemp("other") / "model-cd")


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("pier") / "home") as p:
        yield p


@pytest.fixture(scope="package")
def sm(platform: Platform) -> Any:
    return platform.client("sagemaker")


@pytest.fixture(scope="package")
def rt(platform: Platform) -> Any:
    return platform.client("sagemaker-runtime")


@pytest.fixture(scope="package")
def capture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture")


@pytest.fixture(scope="package")
def resources(sm: Any, models: Models, other_columns: Path) -> None:
    for name, path in (("model-a", models.a.path), ("model-b", models.b.path)):
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(path)})
    sm.create_model(ModelName="model-cd", PrimaryContainer={"ModelDataUrl": str(other_columns)})


def capture_config(directory: Path) -> dict[str, Any]:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": directory.as_uri(),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


@pytest.fixture(scope="package")
def shadowed(sm: Any, resources: None, capture_dir: Path) -> Created:
    sm.create_endpoint_config(
        EndpointConfigName="cfg-shadowed",
        ProductionVariants=[variant("production", "model-a")],
        ShadowProductionVariants=[variant("shadow", "model-b", weight=SHADOW_WEIGHT)],
        DataCaptureConfig=capture_config(capture_dir),
    )
    return create_and_wait(sm, SHADOWED, "cfg-shadowed")


@pytest.fixture(scope="package")
def failing(sm: Any, resources: None, capture_dir: Path) -> Created:
    sm.create_endpoint_config(
        EndpointConfigName="cfg-failing",
        ProductionVariants=[variant("production", "model-a")],
        ShadowProductionVariants=[variant("shadow", "model-cd")],
        DataCaptureConfig=capture_config(capture_dir),
    )
    return create_and_wait(sm, FAILING, "cfg-failing")
