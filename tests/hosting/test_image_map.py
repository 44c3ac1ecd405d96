"""The image map, MLflow's image name, instance-type limits, and the platform settings that
carry them (PIER_IMAGE_MAP, --map-image, PIER_BACKEND)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pier.hosting.image_map import ImageMap, is_mlflow_image
from pier.hosting.instance_types import GIB, INSTANCE_TYPES, limits
from pier.settings import PlatformSettings

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_a_key_matches_exactly_or_by_repository_when_it_has_no_tag() -> None:
    images = ImageMap({f"{ECR}/a": "local-a:1", f"{ECR}/b:2": "local-b:2"})
    assert images.resolve(f"{ECR}/a:7") == "local-a:1"
    assert images.resolve(f"{ECR}/a@sha256:{'0' * 64}") == "local-a:1"
    assert images.resolve(f"{ECR}/b:2") == "local-b:2"
    assert images.resolve(f"{ECR}/b:3") == f"{ECR}/b:3"  # a tagged key matches that tag only
    assert images.resolve(None) is None


@pytest.mark.parametrize(
    ("image", "mlflow"),
    [
        (None, True),
        ("", True),
        ("pier/mlflow-pyfunc", True),
        (f"{ECR}/mlflow-pyfunc:2.14.1", True),
        (f"{ECR}/xgboost:1", False),
        ("my-model:latest", False),
    ],
)
def test_mlflow_image_names(image: str | None, mlflow: bool) -> None:
    assert is_mlflow_image(image) is mlflow


def test_limits_cap_cpus_at_the_hosts_count_but_not_memory() -> None:
    assert INSTANCE_TYPES["ml.m5.large"] == (2, 8)
    big = limits("ml.m5.4xlarge", host_cpus=2)
    assert big is not None
    assert (big.cpus, big.memory_bytes) == (2.0, 64 * GIB)
    small = limits("ml.t2.medium", host_cpus=8)
    assert small is not None
    assert (small.cpus, small.memory_bytes) == (2.0, 4 * GIB)
    assert limits("ml.unknown.large") is None


def test_image_map_from_the_environment_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_IMAGE_MAP", f"{ECR}/a=local-a:1, {ECR}/b:2=local-b")
    assert PlatformSettings().image_map == {f"{ECR}/a": "local-a:1", f"{ECR}/b:2": "local-b"}
    monkeypatch.setenv("PIER_IMAGE_MAP", '{"x": "y"}')
    assert PlatformSettings().image_map == {"x": "y"}
    monkeypatch.delenv("PIER_IMAGE_MAP")
    assert PlatformSettings(image_map=["u=v", "w=z"]).image_map == {"u": "v", "w": "z"}
    with pytest.raises(ValidationError, match="expected URI=IMAGE"):
        PlatformSettings(image_map=["no-equals-sign"])


def test_backend_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIER_BACKEND", raising=False)
    assert PlatformSettings().backend == "process"
    monkeypatch.setenv("PIER_BACKEND", "docker")
    assert PlatformSettings().backend == "docker"
    monkeypatch.setenv("PIER_BACKEND", "kubernetes")
    with pytest.raises(ValidationError):
        PlatformSettings()
