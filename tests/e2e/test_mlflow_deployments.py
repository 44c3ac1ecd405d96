"""MLflow's deployments API on pier, against a real `pier up` with its MLflow: the `pier`
plugin driven through MLflow's own CLI (`mlflow deployments ...` subprocesses, the walkthrough
of docs/mlflow-deployments.md run as written) and its own client
(`mlflow.deployments.get_deploy_client("pier")`, and `pier:/URL` with boto3's credentials);
`pier deploy` and `pier weights`; bad config, flavors and targets refused by name; `pier delete
-f` asks on a terminal."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.deployments import PredictionsResponse, get_deploy_client
from mlflow.exceptions import MlflowException

from tests.boto3.platform_fixtures import BIN, Platform, _serve_children, free_port
from tests.e2e import test_monitoring_walkthrough
from tests.e2e.test_monitoring_walkthrough import run_bash, user_env
from tests.e2e.test_rollouts_registry import tracking

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "mlflow-deployments.md"
HEADING = "## Walkthrough"
MLFLOW = str(BIN / "mlflow")
PIER = str(BIN / "pier")
SLOPES = {"1": 2.0, "2": 3.0}  # the `shop` model's versions: y = slope * x + 1


def walkthrough() -> list[str]:
    text = DOC.read_text()
    start = text.index(f"\n{HEADING}\n")
    end = text.find("\n## ", start + len(HEADING))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M)


def register_shop(tracking_uri: str) -> None:
    """`shop` versions 1 and 2 (a column `x`), alias champion on 2."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("shop")
    X = pd.DataFrame({"x": np.arange(20, dtype=float)})
    for slope in SLOPES.values():
        model = LinearRegression().fit(X, slope * X["x"] + 1.0)
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name="shop",
                                     signature=infer_signature(X, model.predict(X)))  # fmt: skip
    MlflowClient(tracking_uri).set_registered_model_alias("shop", "champion", "2")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`pier up` with its MLflow (given 5 minutes: MLflow starts slowly on a loaded machine);
    it must stop cleanly, and what a failure left running is killed (by pid: every instance
    here is a process, so no Docker Engine is needed)."""
    home = tmp_path_factory.mktemp("mlflow-deployments") / "home"
    p = Platform(home, free_port(), None, "sqlite", options=("--mlflow-port", "0"))
    code: int | None = None
    try:
        p.start(timeout=300)
        # MLflow's fluent API leaves MLFLOW_EXPERIMENT_ID in os.environ: a module fixture's
        # leak outlives conftest's per-test cleanup and misleads later tests' subprocesses.
        saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
        try:
            register_shop(tracking(p))
        finally:
            for key in [k for k in os.environ if k.startswith("MLFLOW_") and k not in saved]:
                del os.environ[key]
            os.environ.update(saved)
        yield p
        code = p.terminate(timeout=180)
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        for leftover in _serve_children(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
    assert code == 0, p.log_tail()


@pytest.fixture
def pier_home(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """This process as a user's: PIER_HOME names the platform's home, no AWS_* of its own."""
    for key in [k for k in os.environ if k.startswith(("AWS_", "PIER_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIER_HOME", str(platform.home))
    return platform


def run(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env=user_env(home), check=False)  # fmt: skip


def variants(p: Platform, endpoint: str) -> dict[str, dict[str, Any]]:
    """The endpoint's variants by name: weight, instances, and the URI its Model serves."""
    sm = p.client("sagemaker")
    described = sm.describe_endpoint(EndpointName=endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    urls = {
        v["VariantName"]: sm.describe_model(ModelName=v["ModelName"])["PrimaryContainer"][
            "ModelDataUrl"
        ]
        for v in config["ProductionVariants"]
    }
    return {
        v["VariantName"]: {"weight": v["CurrentWeight"], "instances": v["CurrentInstanceCount"],
                           "uri": urls[v["VariantName"]]}
        for v in described["ProductionVariants"]
    }  # fmt: skip


def leftovers(p: Platform, prefix: str) -> list[str]:
    """Models and endpoint configs whose names start with `prefix`."""
    sm = p.client("sagemaker")
    models = [m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"]]
    configs = [
        c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
    ]
    return [n for n in models + configs if n.startswith(prefix)]


def test_the_walkthrough_runs_as_written_through_mlflows_cli(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two registrations and four deployments: more than the monitoring walkthrough's budget
    # when the machine is shared
    monkeypatch.setattr(test_monitoring_walkthrough, "WALKTHROUGH_TIMEOUT", 1500.0)
    blocks = walkthrough()
    assert len(blocks) == 4, "the walkthrough's ```bash blocks were not found"
    started = time.monotonic()
    code, out = run_bash("set -euo pipefail\n" + "\n".join(blocks), tmp_path,
                         user_env(platform.home))  # fmt: skip
    print(f"walkthrough: {time.monotonic() - started:.0f} s")
    assert code == 0, out
    assert not re.search(r"^warning:", out, flags=re.M), out
    # create: two instances of version 1, InService; get and list show it
    assert "python_function deployment diabetes-plugin is created" in out, out
    assert "EndpointStatus: InService" in out, out
    assert "'VariantName': 'diabetes-plugin-v1'" in out, out
    assert "'CurrentInstanceCount': 2" in out, out
    assert re.search(r"List of all deployments:\n\[\{'name': 'diabetes-plugin'", out), out
    # predict: MLflow's PredictionsResponse as JSON, one prediction
    predicted = re.search(r'^\{"predictions": \[(.*?)\]\}$', out, flags=re.M)
    assert predicted is not None, out
    assert 25 < float(predicted.group(1)) < 350, out  # the diabetes target's range
    # update mode=add, then the weights
    assert "Deployment diabetes-plugin is updated (with flavor python_function)" in out, out
    assert "✓ diabetes-plugin: diabetes-plugin-v1 90 (90%), challenger 10 (10%)" in out, out
    # pier deploy replaced both, blue/green, and says how to invoke
    assert (
        "✓ endpoint diabetes-plugin updated: variant diabetes-plugin-v2 serves "
        "models:/diabetes-plugin/2"
    ) in out
    assert "pier invoke diabetes-plugin --body" in out, out
    assert "Deployment diabetes-plugin is deleted" in out, out
    sm = platform.client("sagemaker")
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == []
    assert leftovers(platform, "diabetes-plugin") == []


def test_mlflow_client_create_predict_add_weights_replace_delete(pier_home: Platform) -> None:
    p = pier_home
    client = get_deploy_client("pier")
    created = client.create_deployment("shop", "models:/shop@champion",
                                       config={"instance_count": "1"})  # fmt: skip
    assert created["name"] == "shop"
    assert created["flavor"] == "python_function"
    assert created["model_uri"] == "models:/shop/2"  # pinned to the alias's version
    assert variants(p, "shop") == {"shop-v2": {"weight": 1.0, "instances": 1,
                                              "uri": "models:/shop/2"}}  # fmt: skip

    answer = client.predict("shop", pd.DataFrame({"x": [2.0, 4.0]}))
    assert isinstance(answer, PredictionsResponse)
    assert answer.get_predictions()[0].round(6).tolist() == [7.0, 13.0]  # 3x + 1
    assert client.get_deployment("shop")["EndpointStatus"] == "InService"
    assert {"name": "shop"}.items() <= client.list_deployments()[0].items()

    with pytest.raises(MlflowException, match="endpoint shop already exists"):
        client.create_deployment("shop", "models:/shop/1")

    # mode add: version 1 beside, weight 0 (SageMaker's target's semantics)
    client.update_deployment("shop", "models:/shop/1", config={"mode": "add"})
    assert variants(p, "shop") == {
        "shop-v2": {"weight": 1.0, "instances": 1, "uri": "models:/shop/2"},
        "shop-v1": {"weight": 0.0, "instances": 1, "uri": "models:/shop/1"},
    }
    with pytest.raises(MlflowException, match="already has a variant shop-v1"):
        client.update_deployment("shop", "models:/shop/1", config={"mode": "add"})
    weights = run([PIER, "weights", "shop", "shop-v1=3", "shop-v2=1"], p.home)
    assert weights.returncode == 0, weights.stderr
    assert "shop: shop-v2 1 (25%), shop-v1 3 (75%)" in weights.stdout
    assert {n: v["weight"] for n, v in variants(p, "shop").items()} == {
        "shop-v2": 1.0, "shop-v1": 3.0,
    }  # fmt: skip
    unknown = run([PIER, "weights", "shop", "champion=1"], p.home)
    assert unknown.returncode == 1
    assert "endpoint shop has no variant champion; its variants: shop-v2, shop-v1" in unknown.stderr

    # mode replace (the default): version 1 alone; the old config and models are deleted
    before = leftovers(p, "shop")
    client.update_deployment("shop", "models:/shop/1")
    assert variants(p, "shop") == {"shop-v1": {"weight": 1.0, "instances": 1,
                                              "uri": "models:/shop/1"}}  # fmt: skip
    after = leftovers(p, "shop")
    assert len(after) == 2, (before, after)
    assert not set(after) & set(before), (before, after)
    answer = client.predict("shop", pd.DataFrame({"x": [2.0]}))
    assert answer["predictions"] == [pytest.approx(5.0)]  # 2x + 1

    with pytest.raises(MlflowException, match="pier endpoints have no explainer"):
        client.explain("shop", pd.DataFrame({"x": [2.0]}))

    client.delete_deployment("shop")
    assert leftovers(p, "shop") == []
    with pytest.raises(MlflowException, match="there is no deployment shop") as raised:
        client.get_deployment("shop")
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_deployment("shop")  # idempotent, as MLflow's interface asks


def test_pier_deploy_creates_then_updates_and_another_pier_by_url(
    pier_home: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pier_home
    first = run([PIER, "deploy", "models:/shop/1", "--name", "shop-cli", "--instances", "2",
                 "--home", str(p.home)], p.home)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert "✓ endpoint shop-cli created: variant shop-v1 serves models:/shop/1" in first.stdout
    assert f"pier invoke shop-cli --home {p.home} --body" in first.stdout
    assert variants(p, "shop-cli")["shop-v1"]["instances"] == 2
    second = run([PIER, "deploy", "models:/shop@champion", "--name", "shop-cli"], p.home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "✓ endpoint shop-cli updated: variant shop-v2 serves models:/shop/2" in second.stdout
    assert variants(p, "shop-cli") == {"shop-v2": {"weight": 1.0, "instances": 1,
                                                  "uri": "models:/shop/2"}}  # fmt: skip

    # pier:/URL: another pier, with boto3's credentials (what `pier env` prints)
    creds = p.credentials()
    monkeypatch.delenv("PIER_HOME")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    remote = get_deploy_client(f"pier:/{p.url}")
    assert [d["name"] for d in remote.list_deployments()] == ["shop-cli"]
    assert remote.predict("shop-cli", pd.DataFrame({"x": [1.0]}))["predictions"] == [
        pytest.approx(4.0)
    ]
    remote.delete_deployment("shop-cli", config={"archive": "True"})
    assert remote.list_deployments() == []
    assert len(leftovers(p, "shop-cli")) == 2  # archived: its config and model are kept


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"bucket": "my-bucket"}, "config bucket does not apply to pier: pier reads the model"),
        ({"instanse_count": "2"}, "unknown config key 'instanse_count'; the pier target takes"),
        ({"instance_count": "two"}, "config instance_count='two': expected a whole number"),
        ({"mode": "add"}, "config mode='add': this call takes create"),
        ({"env": "[1]"}, "config env: expected a JSON object, got [1]"),
        ({"synchronous": "yes"}, "config synchronous='yes': expected True or False"),
    ],
)
def test_bad_config_is_refused_by_name(
    pier_home: Platform, config: dict[str, str], message: str
) -> None:
    with pytest.raises(MlflowException, match=re.escape(message)):
        get_deploy_client("pier").create_deployment("bad", "models:/shop/1", config=config)
    assert get_deploy_client("pier").list_deployments() == []


def test_mlflows_cli_reports_errors_and_prints_the_target_help(pier_home: Platform) -> None:
    p = pier_home
    role = "assume_role_arn=arn:aws:iam::1:role/r"
    bad = run([MLFLOW, "deployments", "create", "-t", "pier", "--name", "x", "-m",
               "models:/shop/1", "-C", role], p.home)  # fmt: skip
    assert bad.returncode != 0
    assert "config assume_role_arn does not apply to pier" in bad.stderr, bad.stderr
    flavor = run([MLFLOW, "deployments", "create", "-t", "pier", "--name", "x", "-m",
                  "models:/shop/1", "--flavor", "crate"], p.home)  # fmt: skip
    assert flavor.returncode != 0
    assert "flavor 'crate': pier serves the python_function flavor" in flavor.stderr
    target = run([MLFLOW, "deployments", "list", "-t", "pier:/nowhere"], p.home)
    assert target.returncode != 0
    assert "after pier:/ give the platform's URL, e.g. pier:/http://127.0.0.1:7437" in target.stderr
    helped = run([MLFLOW, "deployments", "help", "-t", "pier"], p.home)
    assert helped.returncode == 0, helped.stderr
    assert "pier:/URL" in helped.stdout
    assert "instance_count" in helped.stdout


def test_the_local_target_says_when_pier_is_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIER_HOME", str(tmp_path / "nohome"))
    with pytest.raises(MlflowException, match=r"pier is not running \(home .*nohome\)"):
        get_deploy_client("pier")


def test_pier_deploy_and_weights_bad_arguments_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_name = run([PIER, "deploy", str(tmp_path / "model")], home)
    assert no_name.returncode == 2
    assert "--name: give the endpoint's name" in no_name.stderr
    bad_name = run([PIER, "deploy", "models:/shop/1", "--name", "no_underscores"], home)
    assert bad_name.returncode == 2
    assert "--name: 'no_underscores' is not an endpoint name" in bad_name.stderr
    for pair, message in [("champion", "'champion': expected VARIANT=WEIGHT"),
                          ("champion=x", "the weight 'x' is not a number"),
                          ("champion=-1", "a weight is a finite number, 0 or more")]:  # fmt: skip
        weights = run([PIER, "weights", "shop", pair], home)
        assert weights.returncode == 2, pair
        assert message in weights.stderr, weights.stderr


def _on_a_terminal(args: list[str], answer: str, home: Path) -> tuple[int, str]:
    """Run `args` with a pseudo-terminal as stdin/stdout/stderr, typing `answer`."""
    master, slave = os.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=user_env(home),
                            start_new_session=True)  # fmt: skip
    os.close(slave)
    os.write(master, answer.encode())
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


def test_pier_delete_asks_on_a_terminal(platform: Platform, tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text("Resources: {}\n")
    home = platform.home
    args = [PIER, "delete", "-f", str(spec), "--home", str(home)]
    code, out = _on_a_terminal(args, "n\n", home)
    assert code == 1, out
    assert "Delete every resource of the stack of" in out, out
    assert "Nothing deleted." in out, out
    code, out = _on_a_terminal(args, "y\n", home)
    assert code == 0, out
    assert "stack stack has no resources on the platform" in out, out
    code, out = _on_a_terminal([*args, "--yes"], "", home)
    assert code == 0, out
    assert "Delete every resource" not in out, out
    assert "has no resources" in out, out
    # not on a terminal (a script): no question
    piped = run(args, home)
    assert piped.returncode == 0, piped.stderr
    assert "Delete every resource" not in piped.stdout + piped.stderr


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (point,) = [e for e in entry_points(group="mlflow.deployments") if e.name == "pier"]
    assert point.value == "pier.mlflow_plugin"
    assert json.dumps(point.value)
