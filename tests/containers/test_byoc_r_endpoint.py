"""The R container beside an MLflow Python model in one SageMaker endpoint, through boto3.

The R example is trained in a container and packed as SageMaker's model.tar.gz; a real
`pier up` is then driven with plain boto3 exactly as SageMaker would be: a Model whose
PrimaryContainer names the R image and ModelDataUrl the tarball (file://), a Model for an MLflow
Python model, one EndpointConfig with both as production variants (data capture on), one
Endpoint. Both variants must answer (TargetVariant and weighted calls), and the platform's
metrics, data capture and `pier logs` must treat the R variant like any other.

Both models take the same CSV rows (three features, no header) and answer different functions of
them, so every answer says which model gave it.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    platform_env,
    running_platform,
    wait_for,
)
from tests.containers.conftest import TrainedR
from tests.e2e.test_data_capture import capture_config, read_records
from tests.e2e.test_endpoint_metrics import sample, scrape

pytestmark = [pytest.mark.slow, pytest.mark.docker]
ENDPOINT = "r-beside-python"
R, PY = "r-lm", "py-sklearn"
PY_COEF = np.array([10.0, 0.0, -2.0])  # the Python model: y = 10 x1 - 2 x3 + 1
PY_INTERCEPT = 1.0
WEIGHTED_CALLS = 60  # at 0.5 / 0.5, P(one variant gets none) = 2 * 0.5^60


def save_python_model(path: Path) -> Path:
    """An MLflow sklearn model over the same three features (x1, x2, x3) as the R model."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame(np.random.default_rng(3).uniform(-5, 5, (20, 3)), columns=["x1", "x2", "x3"])
    y = x.to_numpy() @ PY_COEF + PY_INTERCEPT
    model = LinearRegression().fit(x, y)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(x, model.predict(x)),
        serialization_format="cloudpickle",
        pip_requirements=["mlflow", "scikit-learn"],  # skips MLflow's slow inference
    )
    return path


def csv_body(rows: np.ndarray[Any, Any]) -> bytes:
    return ("\n".join(",".join(repr(v) for v in row) for row in rows.tolist()) + "\n").encode()


@dataclass
class Deployed:
    platform: Platform
    trained: TrainedR
    capture_dir: Path

    def invoke(self, rows: np.ndarray[Any, Any], **kwargs: Any) -> tuple[str, np.ndarray[Any, Any]]:
        """(variant that answered, predictions)."""
        runtime = self.platform.client("sagemaker-runtime")
        answer = runtime.invoke_endpoint(
            EndpointName=ENDPOINT, Body=csv_body(rows), ContentType="text/csv", Accept="text/csv",
            **kwargs,
        )  # fmt: skip
        values = np.array([float(v) for v in answer["Body"].read().decode().split()])
        return answer["InvokedProductionVariant"], values

    def expected(self, name: str, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if name == R:
            return self.trained.expected(rows)
        return rows @ PY_COEF + PY_INTERCEPT


@pytest.fixture(scope="module")
def deployed(
    trained_r: TrainedR, byoc_r_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("byoc-endpoint")
    tarball = trained_r.tarball(root / "model.tar.gz")
    python_model = save_python_model(root / "python-model")
    capture_dir = root / "captured"
    with running_platform(root / "home") as p:
        sm = p.client("sagemaker")
        sm.create_model(
            ModelName="r-model",
            PrimaryContainer={"Image": byoc_r_image, "ModelDataUrl": tarball.as_uri()},
        )
        sm.create_model(ModelName="py-model", PrimaryContainer={"ModelDataUrl": str(python_model)})
        sm.create_endpoint_config(
            EndpointConfigName="r-and-python",
            ProductionVariants=[
                variant(R, "r-model", weight=0.5),
                variant(PY, "py-model", weight=0.5),
            ],
            DataCaptureConfig=capture_config(capture_dir.as_uri()),
        )
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="r-and-python")
        try:
            sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=SHORT)
        except Exception as exc:
            described = sm.describe_endpoint(EndpointName=ENDPOINT)
            raise AssertionError(f"{described.get('FailureReason')}\n{p.log_tail()}") from exc
        yield Deployed(p, trained_r, capture_dir)
        with contextlib.suppress(ClientError):  # the last test deletes it
            sm.delete_endpoint(EndpointName=ENDPOINT)


def test_each_variant_answers_with_its_model(deployed: Deployed) -> None:
    rows = np.random.default_rng(5).uniform(-10, 10, size=(8, 3))
    for name in (R, PY):
        answered, got = deployed.invoke(rows, TargetVariant=name)
        assert answered == name
        np.testing.assert_allclose(got, deployed.expected(name, rows), rtol=1e-9, atol=1e-9)


def test_weighted_calls_reach_both_variants(deployed: Deployed) -> None:
    rows = np.array([[1.0, 2.0, 3.0]])
    seen: Counter[str] = Counter()
    for _ in range(WEIGHTED_CALLS):
        answered, got = deployed.invoke(rows)
        np.testing.assert_allclose(got, deployed.expected(answered, rows), rtol=1e-9)
        seen[answered] += 1
    assert set(seen) == {R, PY}, seen


def test_bad_input_to_the_r_variant_is_a_model_error_with_r_s_message(
    deployed: Deployed,
) -> None:
    runtime = deployed.platform.client("sagemaker-runtime")
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT, TargetVariant=R, Body=b"1,oops,3\n", ContentType="text/csv"
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ModelError"
    assert "Row 1, column 2 is not a number: 'oops'" in error["Message"]
    answered, _ = deployed.invoke(np.array([[0.0, 0.0, 0.0]]), TargetVariant=R)
    assert answered == R


def test_metrics_count_the_r_variant(deployed: Deployed) -> None:
    before = scrape(deployed.platform)
    sent = {R: 7, PY: 4}
    for name, count in sent.items():
        for i in range(count):
            deployed.invoke(np.array([[float(i), 1.0, 2.0]]), TargetVariant=name)
    after = scrape(deployed.platform)
    for name, count in sent.items():
        labels = {"endpoint": ENDPOINT, "variant": name}
        delta = sample(after, "pier_endpoint_invocations_total", **labels) - sample(
            before, "pier_endpoint_invocations_total", **labels
        )
        assert delta == count, name
        assert sample(after, "pier_endpoint_variant_instances", **labels) == 1
        assert sample(after, "pier_endpoint_model_latency_seconds_count", **labels) > 0


def test_data_capture_records_the_r_variant(deployed: Deployed) -> None:
    bodies = {}
    for i in range(5):
        rows = np.array([[float(i), -1.5, 0.25]])
        inference_id = f"r-capture-{i}"
        _, got = deployed.invoke(rows, TargetVariant=R, InferenceId=inference_id)
        bodies[inference_id] = (csv_body(rows).decode(), got)
    where = deployed.capture_dir / ENDPOINT / R

    def captured() -> list[dict[str, Any]]:
        records = [r for _, r in read_records(where) if where.is_dir()]
        mine = [r for r in records if r["eventMetadata"].get("inferenceId") in bodies]
        return mine if len(mine) == len(bodies) else []

    records = wait_for(captured, 30, what=f"capture records under {where}")
    for record in records:
        body, got = bodies[record["eventMetadata"]["inferenceId"]]
        given = record["captureData"]["endpointInput"]
        answer = record["captureData"]["endpointOutput"]
        assert given["observedContentType"] == "text/csv"
        assert given["encoding"] == answer["encoding"] == "CSV"
        assert given["data"] == body
        assert [float(v) for v in answer["data"].split()] == got.tolist()


def test_pier_logs_shows_the_r_container(deployed: Deployed) -> None:
    home = str(deployed.platform.home)
    r = subprocess.run(
        [str(BIN / "pier"), "logs", ENDPOINT, "--variant", R, "--home", home],
        capture_output=True, text=True, timeout=60, env={**platform_env(), "COLUMNS": "200"},
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert lines
    assert all(line.startswith(f"[{R}/") for line in lines)
    assert any("serving /opt/ml/model/model.rds" in line for line in lines), r.stdout


def test_deleting_the_endpoint_removes_the_r_container(
    deployed: Deployed, docker_client: Any, byoc_r_image: str
) -> None:
    sm = deployed.platform.client("sagemaker")
    running = docker_client.containers.list(filters={"ancestor": byoc_r_image})
    assert len(running) == 1, running
    sm.delete_endpoint(EndpointName=ENDPOINT)
    wait_for(
        lambda: not docker_client.containers.list(all=True, filters={"ancestor": byoc_r_image}),
        60,
        what="the R container to be removed",
    )

    def gone() -> bool:
        try:
            sm.describe_endpoint(EndpointName=ENDPOINT)
        except ClientError:
            return True
        return False

    wait_for(gone, 60, what="the endpoint to be deleted")
