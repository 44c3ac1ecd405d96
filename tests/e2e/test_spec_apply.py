"""A pier spec applied to a real `pier up`: examples/spec/diabetes.yaml itself, its models
registered in pier's own MLflow.

One platform for the module; the tests run in file order, as a user would: a broken spec is
refused and nothing is created; plan; apply (InService, each variant invocable); apply again
(nothing changes); plan a change (nothing changes); apply a new model and weights (UpdateEndpoint,
blue/green: every request during the update is answered); delete -f (everything is gone).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    endpoint_processes,
    platform_env,
    running_platform,
    wait_for,
)
from tests.e2e.test_mlflow_stack import train_and_register

pytestmark = pytest.mark.slow
PIER = str(BIN / "pier")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spec" / "diabetes.yaml"
ENDPOINT = "diabetes-spec"  # the example's endpoint
MODEL = "diabetes"  # the registered model its variants name (models:/diabetes@...)
BODY = json.dumps({"inputs": [[2.0]]})
# train_and_register fits y = slope * x + 1: the answer to x = 2 says which version answered
SLOPES = {"1": 2.0, "2": 3.0, "3": 5.0}
ANSWER = {version: slope * 2.0 + 1.0 for version, slope in SLOPES.items()}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("pier-spec") / "home"
    with running_platform(home, options=("--mlflow-port", "0")) as p:
        yield p


def pier(platform: Platform, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "COLUMNS": "200"}
    return subprocess.run(
        [PIER, *args, "--home", str(platform.home)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def registry(platform: Platform) -> None:
    """Versions 1, 2, 3 of `diabetes` in pier's MLflow; @champion is 1, @challenger is 2."""
    from mlflow import MlflowClient

    tracking = next(
        line.split("=", 1)[1]
        for line in ok(pier(platform, "env")).splitlines()
        if line.startswith("export MLFLOW_TRACKING_URI=")
    )
    for version, slope in SLOPES.items():
        assert train_and_register(tracking, MODEL, slope) == version
    client = MlflowClient(tracking)
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "challenger", "2")


@pytest.fixture(scope="module")
def sm(platform: Platform) -> Any:
    return platform.client("sagemaker")


@pytest.fixture(scope="module")
def runtime(platform: Platform) -> Any:
    return platform.client("sagemaker-runtime")


def edited(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of the example with some of its text replaced."""
    text = EXAMPLE.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "diabetes.yaml"
    path.write_text(text)
    return path


def everything(sm: Any) -> dict[str, list[str]]:
    return {
        "models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
        "configs": sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]),  # noqa: E501
        "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
    }  # fmt: skip


def answer(runtime: Any, variant: str | None = None) -> tuple[float, str]:
    extra = {"TargetVariant": variant} if variant else {}
    reply = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, Body=BODY, ContentType="application/json", **extra
    )
    [prediction] = json.loads(reply["Body"].read())["predictions"]
    return round(float(prediction), 6), reply["InvokedProductionVariant"]


# ------------------------------------------------------------------------------------ tests


def test_an_invalid_spec_is_refused_and_creates_nothing(
    platform: Platform, registry: None, sm: Any, tmp_path: Path
) -> None:
    bad = edited(tmp_path, ("    weight: 10\n", "    weight: -10\n"))
    for command in ("apply", "plan"):
        done = pier(platform, command, "-f", str(bad))
        assert done.returncode == 2, done.stdout + done.stderr
        assert (
            f"error: {bad}:24: variants[1].weight: must be greater than or equal to 0, not -10"
            in done.stderr
        )
        assert "Traceback" not in done.stderr
    assert everything(sm) == {"models": [], "configs": [], "endpoints": []}


def test_plan_before_the_first_apply(platform: Platform, registry: None, sm: Any) -> None:
    out = ok(pier(platform, "plan", "-f", str(EXAMPLE)))
    assert "4 to create." in out
    for logical_id in ("ModelChampion", "ModelChallenger", "EndpointConfig", "Endpoint"):
        assert logical_id in out
    assert everything(sm) == {"models": [], "configs": [], "endpoints": []}


def test_apply_creates_the_endpoint(
    platform: Platform, registry: None, sm: Any, runtime: Any
) -> None:
    out = ok(pier(platform, "apply", "-f", str(EXAMPLE)))
    assert "stack diabetes-spec applied" in out
    described = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService"
    variants = {v["VariantName"]: v for v in described["ProductionVariants"]}
    assert {name: v["CurrentInstanceCount"] for name, v in variants.items()} == {
        "champion": 2,
        "challenger": 1,
    }
    assert {name: v["CurrentWeight"] for name, v in variants.items()} == {
        "champion": 90.0,
        "challenger": 10.0,
    }
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == "file:diabetes"
    assert answer(runtime, "champion") == (ANSWER["1"], "champion")
    assert answer(runtime, "challenger") == (ANSWER["2"], "challenger")
    # the spec's data capture: SageMaker's JSONL under $PIER_HOME/capture/<destination>/
    captured = platform.home / "capture" / "diabetes" / ENDPOINT
    for variant in ("champion", "challenger"):
        wait_for(lambda v=variant: list((captured / v).rglob("*.jsonl")), 30, what=variant)
    tags = sm.list_tags(ResourceArn=described["EndpointArn"])["Tags"]
    assert {"Key": "team", "Value": "ml"} in tags
    assert len(endpoint_processes(platform.home, ENDPOINT)) == 3


def test_applying_again_changes_nothing(platform: Platform, registry: None, sm: Any) -> None:
    before = everything(sm)
    modified = sm.describe_endpoint(EndpointName=ENDPOINT)["LastModifiedTime"]
    out = ok(pier(platform, "apply", "-f", str(EXAMPLE)))
    assert "No changes: the stack is up to date." in out
    assert everything(sm) == before
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["LastModifiedTime"] == modified


def test_plan_shows_a_change_and_changes_nothing(
    platform: Platform, registry: None, sm: Any, tmp_path: Path
) -> None:
    before = everything(sm)
    changed = edited(tmp_path, ("    weight: 90\n", "    weight: 50\n"))
    out = ok(pier(platform, "plan", "-f", str(changed)))
    assert "ProductionVariants[0].InitialVariantWeight: 90.0 -> 50.0" in out
    assert "1 to update, 1 to replace." in out
    assert everything(sm) == before
    config = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    assert config in before["configs"]


def test_a_new_model_is_rolled_out_blue_green(
    platform: Platform, registry: None, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    before = everything(sm)
    changed = edited(
        tmp_path,
        ("models:/diabetes@challenger", "models:/diabetes/3"),
        ("    weight: 90\n", "    weight: 50\n"),
        ("    weight: 10\n", "    weight: 50\n"),
    )
    answers: list[tuple[float, str]] = []
    failures: list[str] = []
    statuses: set[str] = set()
    stop = threading.Event()

    def invoke_all_along() -> None:
        while not stop.is_set():
            try:
                answers.append(answer(runtime))
                statuses.add(sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"])
            except Exception as exc:
                failures.append(repr(exc))
            time.sleep(0.05)

    load = threading.Thread(target=invoke_all_along)
    load.start()
    try:
        out = ok(pier(platform, "apply", "-f", str(changed)))
    finally:
        stop.set()
        load.join(60)
    assert failures == []  # the old configuration served until the new one was healthy
    assert "Updating" in statuses
    assert {a for a, _ in answers} <= {ANSWER["1"], ANSWER["2"], ANSWER["3"]}
    assert "stack diabetes-spec applied" in out

    described = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService"
    assert {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]} == {
        "champion": 50.0,
        "challenger": 50.0,
    }
    assert answer(runtime, "challenger") == (ANSWER["3"], "challenger")
    assert answer(runtime, "champion") == (ANSWER["1"], "champion")
    after = everything(sm)
    # the challenger's Model and the EndpointConfig were replaced, then the old ones deleted;
    # the champion's Model did not change and was kept
    assert len(after["models"]) == 2
    assert len(set(after["models"]) & set(before["models"])) == 1
    assert len(after["configs"]) == 1
    assert after["configs"] != before["configs"]
    assert described["EndpointConfigName"] == after["configs"][0]
    assert after["endpoints"] == [ENDPOINT]


def test_delete_removes_everything(
    platform: Platform, registry: None, sm: Any, tmp_path: Path
) -> None:
    out = ok(pier(platform, "delete", "-f", str(EXAMPLE)))
    assert "stack diabetes-spec deleted" in out
    assert everything(sm) == {"models": [], "configs": [], "endpoints": []}
    deadline = time.monotonic() + 60
    while endpoint_processes(platform.home, ENDPOINT) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert endpoint_processes(platform.home, ENDPOINT) == []
