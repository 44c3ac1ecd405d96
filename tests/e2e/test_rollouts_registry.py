"""Rollouts driven by the registry, against a real `pier up` with its MLflow: `pier rollout`
resolves an alias to a version and updates the endpoint with the DeploymentConfig of its
options (DescribeEndpoint's LastDeploymentConfig); a version that cannot start is rolled back,
exit 1 with the reason, and the rollback is a tag on the model version in MLflow; an alarm
that fires during a canary rolls it back the same way, and the endpoint's history shows it;
`--watch` rolls to the version the alias is moved to; a spec's `deployment:` reaches the endpoint on
create and on update; bad options exit 2 naming them."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pytest
from mlflow import MlflowClient

from tests.boto3.hosting import SHORT
from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    free_port,
    kill_leftovers,
    platform_env,
    wait_for,
)
from tests.e2e.test_mlflow_stack import train_and_register

pytestmark = pytest.mark.slow
PIER = str(BIN / "pier")
DOC = Path(__file__).resolve().parents[2] / "docs" / "rollouts-registry.md"
ENDPOINT = "shop"
NAME = "shop"  # the registered model
ALIAS = f"models:/{NAME}@champion"
# train_and_register fits y = slope * x + 1 (and points the alias champion at it)
SLOPES = {"1": 2.0, "2": 3.0, "4": 5.0}
CANARY = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "WaitIntervalInSeconds": 1,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        },
        "TerminationWaitInSeconds": 0,
    },
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "shop-5xx"}]},
}


class Unloadable(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A model whose server cannot start: loading it raises."""

    def load_context(self, context: Any) -> None:
        raise RuntimeError("this version cannot load")

    def predict(self, context: Any, model_input: Any) -> Any:
        return model_input


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("rollouts") / "home"
    with slow_starting_platform(home) as p:
        assert train_and_register(tracking(p), NAME, SLOPES["1"]) == "1"
        sm = p.client("sagemaker")
        sm.create_model(ModelName="shop-v1", PrimaryContainer={"ModelDataUrl": f"models:/{NAME}/1"})
        sm.create_endpoint_config(
            EndpointConfigName="shop-1",
            ProductionVariants=[{"VariantName": "main", "ModelName": "shop-v1",
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )  # fmt: skip
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="shop-1")
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=SHORT)
        p.client("cloudwatch").put_metric_alarm(
            AlarmName="shop-5xx", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
            Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}], Statistic="Sum",
            Period=60, EvaluationPeriods=1, Threshold=1000,
            ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
        yield p


@contextlib.contextmanager
def slow_starting_platform(home: Path) -> Iterator[Platform]:
    """running_platform's life cycle with its MLflow, given 5 minutes to start: MLflow's own
    start takes over a minute on a loaded 2-core machine."""
    p = Platform(home, free_port(), None, "sqlite", options=("--mlflow-port", "0"))
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


def documented(section: str, language: str) -> str:
    """The first `language` block of `section` of docs/rollouts-registry.md."""
    part = DOC.read_text().split(section, 1)[1]
    return re.findall(rf"```{language}\n(.*?)```", part, flags=re.S)[0]


def tracking(p: Platform) -> str:
    return (p.home / "mlflow.url").read_text().strip()


def pier(p: Platform, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "COLUMNS": "200"}
    return subprocess.run([PIER, *args, "--home", str(p.home)], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)  # fmt: skip


def answer(p: Platform, endpoint: str = ENDPOINT) -> float:
    rt = p.client("sagemaker-runtime")
    body = json.dumps({"inputs": [[2.0]]})
    got = rt.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="application/json")
    return float(json.loads(got["Body"].read())["predictions"][0])


def running_version(p: Platform, endpoint: str = ENDPOINT) -> str:
    sm = p.client("sagemaker")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    url: str = model["PrimaryContainer"]["ModelDataUrl"]
    return url.rsplit("/", 1)[-1]


def test_rollout_resolves_the_alias_and_updates_with_the_deployment_config(
    platform: Platform,
) -> None:
    assert train_and_register(tracking(platform), NAME, SLOPES["2"]) == "2"
    [command] = documented("## Walkthrough", "bash").splitlines()
    args = shlex.split(command)
    assert args[:3] == ["pier", "rollout", ENDPOINT]
    done = pier(platform, *args[1:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Rolling shop to {ALIAS} = version 2 (canary 50%, bake 1 s, alarms shop-5xx)" in (
        " ".join(done.stdout.split())
    )
    described = platform.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"].startswith("shop-v2-")
    assert described["LastDeploymentConfig"] == CANARY
    assert running_version(platform) == "2"
    assert answer(platform) == pytest.approx(SLOPES["2"] * 2 + 1)
    model = platform.client("sagemaker").describe_model(
        ModelName=platform.client("sagemaker").describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )["ProductionVariants"][0]["ModelName"]
    )
    tags = platform.client("sagemaker").list_tags(ResourceArn=model["ModelArn"])["Tags"]
    assert {"Key": "pier:registry-alias", "Value": ALIAS} in tags


def test_a_version_that_cannot_start_is_rolled_back_and_recorded_in_mlflow(
    platform: Platform, tmp_path: Path
) -> None:
    client = MlflowClient(tracking(platform))
    mlflow.set_tracking_uri(tracking(platform))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Unloadable(), registered_model_name=NAME,
            pip_requirements=["mlflow"],
        )  # fmt: skip
    version = str(info.registered_model_version)
    assert version == "3"
    client.set_registered_model_alias(NAME, "champion", version)
    before = platform.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    done = pier(platform, "rollout", ENDPOINT, "--to", ALIAS, "--bake", "0s")
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert f"rolled back: shop stays on {before['EndpointConfigName']}:" in said
    assert "Traceback" not in done.stderr
    after = platform.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert answer(platform) == pytest.approx(SLOPES["2"] * 2 + 1)  # still version 2
    tag = json.loads(client.get_model_version(NAME, version).tags["pier.rollback"])
    assert tag["endpoint"] == ENDPOINT
    assert tag["variant"] == "main"
    assert tag["reason"] == after["FailureReason"]
    assert tag["time"].endswith("Z")


def test_watch_rolls_to_the_version_the_alias_moves_to(platform: Platform) -> None:
    client = MlflowClient(tracking(platform))
    client.set_registered_model_alias(NAME, "champion", "2")  # what runs: nothing to do
    env = {**platform_env(), "COLUMNS": "200"}
    args = [PIER, "rollout", ENDPOINT, "--to", ALIAS, "--watch", "--interval", "1s",
            "--bake", "0s", "--home", str(platform.home)]  # fmt: skip
    watcher = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)  # fmt: skip
    lines: list[str] = []
    assert watcher.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(watcher.stdout or []), daemon=True)
    reader.start()
    done = f"runs models:/{NAME}/4 ({ALIAS})"
    try:
        wait_for(lambda: any("Watching" in line for line in lines), timeout=120,
                 what="the watcher to start watching")  # fmt: skip
        assert train_and_register(tracking(platform), NAME, SLOPES["4"]) == "4"  # moves the alias
        wait_for(lambda: any(done in line for line in lines), timeout=300, interval=0.5,
                 what="the watcher to roll to version 4")  # fmt: skip
        assert running_version(platform) == "4"
        assert answer(platform) == pytest.approx(SLOPES["4"] * 2 + 1)
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=60)
        reader.join(30)  # the reader alone reads stdout, to its end
        stderr = watcher.stderr.read() if watcher.stderr else ""
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()
    text = " ".join(" ".join(lines).split())
    assert watcher.returncode == 0, text + stderr
    assert f"shop already runs {ALIAS} (version 2)" in text
    assert "Stopped watching." in text


def test_a_spec_deployment_section_reaches_the_endpoint_on_create_and_update(
    platform: Platform, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    text = documented("## In a spec", "yaml")
    assert 'model: "models:/shop/1"' in text
    spec.write_text(text)
    done = pier(platform, "apply", "-f", str(spec))
    assert done.returncode == 0, done.stdout + done.stderr
    sm = platform.client("sagemaker")
    assert sm.describe_endpoint(EndpointName="spec-shop")["LastDeploymentConfig"] == CANARY
    spec.write_text(text.replace("shop/1", "shop/2").replace("canary: 50%", "linear: 50%"))
    done = pier(platform, "apply", "-f", str(spec))
    assert done.returncode == 0, done.stdout + done.stderr
    described = sm.describe_endpoint(EndpointName="spec-shop")
    routing = described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert routing["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR",
        "WaitIntervalInSeconds": 1,
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
    }
    assert answer(platform, "spec-shop") == pytest.approx(SLOPES["2"] * 2 + 1)
    pier(platform, "delete", "-f", str(spec))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--to", "models:/shop/2"), 2, "--to: 'models:/shop/2' is not a registry alias"),
        (("--to", ALIAS, "--canary", "10%", "--linear", "1"), 2,
         "--canary/--linear: give canary or linear, not both"),
        (("--to", ALIAS, "--bake", "2h"), 2, "--bake: Input should be less than or equal to 3600"),
        (("--to", ALIAS, "--canary", "lots"), 2, "--canary: "),
        (("--to", "models:/nobody@champion"), 1, "models:/nobody@champion: "),
        (("--to", ALIAS, "--variant", "other"), 1,
         "endpoint shop has no production variant 'other': main"),
    ],
)  # fmt: skip
def test_bad_options_are_named(platform: Platform, args: tuple[str, ...], code: int,
                               message: str) -> None:  # fmt: skip
    before = platform.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    done = pier(platform, "rollout", ENDPOINT, *args)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    after = platform.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert after["EndpointConfigName"] == before["EndpointConfigName"]


def test_an_alarm_during_the_canary_rolls_back_and_is_recorded(platform: Platform) -> None:
    """The platform's guardrails at work: an alarm in ALARM while the canary bakes shifts the
    traffic back, `pier rollout` exits 1 naming it, the version carries the rollback in MLflow
    and the endpoint's history has it."""
    cw = platform.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="shop-canary", Namespace="pier/test", MetricName="pain", Statistic="Maximum",
        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    version = train_and_register(tracking(platform), NAME, 7.0)
    sm = platform.client("sagemaker")
    before = sm.describe_endpoint(EndpointName=ENDPOINT)
    env = {**platform_env(), "COLUMNS": "200"}
    args = [PIER, "rollout", ENDPOINT, "--to", ALIAS, "--canary", "50%", "--bake", "2m",
            "--alarm", "shop-canary", "--home", str(platform.home)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    try:
        wait_for(lambda: sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"]
                 == "Updating", timeout=60, interval=0.2, what="the update to start")  # fmt: skip
        while proc.poll() is None:  # keep it in ALARM until the rollout gives up
            cw.set_alarm_state(AlarmName="shop-canary", StateValue="ALARM",
                               StateReason="the test says so")  # fmt: skip
            time.sleep(0.5)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stdout + stderr
    said = " ".join(stderr.split())
    assert f"rolled back: shop stays on {before['EndpointConfigName']}:" in said
    assert "shop-canary" in said
    after = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == before["EndpointConfigName"]
    assert "shop-canary" in after["FailureReason"]
    tag = json.loads(MlflowClient(tracking(platform)).get_model_version(NAME, version)
                     .tags["pier.rollback"])  # fmt: skip
    assert "shop-canary" in tag["reason"]
    # ... and in the endpoint's own history (pier describe: the platform's deployments)
    described = pier(platform, "describe", ENDPOINT, "--json")
    assert described.returncode == 0, described.stderr
    [latest, *_] = json.loads(described.stdout)["Deployments"]
    assert latest["ToConfig"].startswith(f"shop-v{version}-")
    assert latest["FromConfig"] == before["EndpointConfigName"]
    assert "shop-canary" in latest["Reason"]
