"""Containers behind a real `pier up` (the default process backend), spoken to with boto3:
a Model whose image holds its model (no ModelDataUrl) runs in Docker once its ECR URI is mapped
(`pier up --map-image`); `pier logs` shows the container's lines; AWS's own documentation
template, whose model lives inside its image, runs with `pier apply --map-image`.

These tests need a Docker Engine and fail (never skip) without one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pier.hosting.docker_engine import connect
from tests.boto3.platform_fixtures import BIN, Platform, platform_env, running_platform
from tests.containers.images import tiny_image

pytestmark = [pytest.mark.slow, pytest.mark.docker]
PIER = str(BIN / "pier")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "cloudformation" / "model-in-image.yaml"
MAPPED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny"
DOCS_IMAGE = "12345678901.dkr.ecr.us-east-1.amazonaws.com/mymodel"
SHORT = {"Delay": 1, "MaxAttempts": 120}


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    client = connect()  # no engine: the tests fail, saying how to start one
    yield client
    client.close()


@pytest.fixture(scope="module")
def image(docker_client: Any) -> Iterator[str]:
    with tiny_image(docker_client, model_text="the model inside the image") as tag:
        yield tag


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("pier-docker") / "home"
    options = ("--no-mlflow", "--map-image", f"{MAPPED}={image}")
    with running_platform(home, options=options) as p:
        yield p


def pier(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "COLUMNS": "200"}
    return subprocess.run(
        [PIER, *args, "--home", str(platform.home)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


def invoke(platform: Platform, endpoint: str) -> dict[str, Any]:
    rt = platform.client("sagemaker-runtime")
    out = rt.invoke_endpoint(EndpointName=endpoint, Body=b"hi", ContentType="text/plain")
    answer: dict[str, Any] = json.loads(out["Body"].read())
    return answer


def test_a_mapped_image_holding_its_model_serves_an_endpoint(platform: Platform) -> None:
    sm = platform.client("sagemaker")
    sm.create_model(
        ModelName="in-image",
        PrimaryContainer={"Image": f"{MAPPED}:7", "Environment": {"GREETING": "from boto3"}},
    )
    sm.create_endpoint_config(
        EndpointConfigName="in-image",
        ProductionVariants=[{"VariantName": "main", "ModelName": "in-image",
                             "InitialInstanceCount": 1, "InstanceType": "ml.c5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="in-image", EndpointConfigName="in-image")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="in-image", WaiterConfig=SHORT)
    answer = invoke(platform, "in-image")
    assert answer["model"] == "the model inside the image"
    assert answer["greeting"] == "from boto3"
    logs = pier(platform, "logs", "in-image")
    assert logs.returncode == 0, logs.stderr
    assert "tiny: listening on 8080" in logs.stdout
    sm.delete_endpoint(EndpointName="in-image")


def test_an_unmapped_image_fails_the_endpoint_saying_how_to_build_or_map_it(
    platform: Platform,
) -> None:
    sm = platform.client("sagemaker")
    missing = "123456789012.dkr.ecr.us-east-1.amazonaws.com/nowhere:1"
    sm.create_model(ModelName="nowhere", PrimaryContainer={"Image": missing})
    sm.create_endpoint_config(
        EndpointConfigName="nowhere",
        ProductionVariants=[{"VariantName": "main", "ModelName": "nowhere",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="nowhere", EndpointConfigName="nowhere")
    with pytest.raises(Exception, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName="nowhere", WaiterConfig=SHORT)
    reason = sm.describe_endpoint(EndpointName="nowhere")["FailureReason"]
    assert f"Image {missing} does not exist in the local Docker Engine" in reason
    assert "--map-image" in reason
    assert "docker build" in reason


def test_an_mlflow_image_without_model_data_is_refused(platform: Platform) -> None:
    sm = platform.client("sagemaker")
    with pytest.raises(ClientError, match="pier needs the model"):
        sm.create_model(ModelName="empty", PrimaryContainer={"Image": "pier/mlflow-pyfunc"})


def test_the_aws_docs_template_with_its_model_in_the_image_runs_once_mapped(
    platform: Platform, image: str
) -> None:
    done = pier(platform, "apply", "-f", str(EXAMPLE), "--map-image", f"{DOCS_IMAGE}={image}")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    sm = platform.client("sagemaker")
    (endpoint,) = [
        e["EndpointName"]
        for e in sm.list_endpoints()["Endpoints"]
        if e["EndpointName"] not in ("in-image", "nowhere")
    ]
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    assert invoke(platform, endpoint)["model"] == "the model inside the image"
    deleted = pier(platform, "delete", "-f", str(EXAMPLE))
    assert deleted.returncode == 0, f"{deleted.stdout}\n{deleted.stderr}"
