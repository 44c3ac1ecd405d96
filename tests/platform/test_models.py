"""The platform's model resolver decides "MLflow model or not" through the image map."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from pier.errors import ValidationException
from pier.hosting.image_map import ImageMap
from pier.platform.models import model_resolver

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn"


@pytest.fixture
def r_tarball(tmp_path: Path) -> str:
    """A bring-your-own-container model.tar.gz: no MLmodel, as SageMaker allows."""
    (tmp_path / "model.rds").write_bytes(b"R model")
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model.rds", arcname="model.rds")
    return (tmp_path / "model.tar.gz").as_uri()


def test_an_ecr_image_mapped_to_a_container_takes_any_model_data(
    r_tarball: str, tmp_path: Path
) -> None:
    resolve = model_resolver(tmp_path / "cache", ImageMap({ECR: "byoc-r:1"}))
    path = Path(resolve({"Image": f"{ECR}:1", "ModelDataUrl": r_tarball}))
    assert (path / "model.rds").read_bytes() == b"R model"


def test_an_image_mapped_to_pier_s_mlflow_server_needs_an_mlflow_model(
    r_tarball: str, tmp_path: Path
) -> None:
    # The name says nothing of MLflow; the map says pier's MLflow server runs it.
    resolve = model_resolver(tmp_path / "cache", ImageMap({ECR: "pier/mlflow-pyfunc"}))
    with pytest.raises(ValidationException, match="no MLmodel file"):
        resolve({"Image": f"{ECR}:1", "ModelDataUrl": r_tarball})


def test_a_container_without_model_data_has_its_model_in_the_image(tmp_path: Path) -> None:
    assert model_resolver(tmp_path / "cache")({"Image": "byoc-r:1"}) == ""
