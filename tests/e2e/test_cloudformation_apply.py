"""A real-world shaped CloudFormation template applied to a real `pier up`:
examples/cloudformation/endpoint.yaml itself (docs/cloudformation.md runs the same commands).

The template is written for AWS: an IAM role, an ECR image, s3:// model data, String
parameters for counts and weights, Mappings, Conditions, Sub/GetAtt/Join/FindInMap/If,
autoscaling and an alarm. `--map-image` and a mapping file (`models:` by prefix) point it at two
local model.tar.gz files. One platform for the module; the tests run in file order, as a user
would: broken templates are refused and nothing is created; plan; apply (InService,
invocable); apply again (nothing changes); plan a new model version (nothing changes); apply it
(replacement + UpdateEndpoint, every request answered meanwhile, the old model gone); delete.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.platform_fixtures import (
    BIN,
    LinearModel,
    Platform,
    endpoint_processes,
    platform_env,
    predictions,
    running_platform,
    save_linear_model,
    split_json,
)

pytestmark = pytest.mark.slow
PIER = str(BIN / "pier")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cloudformation" / "endpoint.yaml"
STACK = "endpoint"  # the file's name
ENDPOINT = "endpoint-dev"  # !Join ["-", [!Ref AWS::StackName, !Ref Stage]]
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
PROBE = [[1.0, 2.0]]


@dataclass(frozen=True)
class Models:
    v1: LinearModel
    v2: LinearModel
    mapping: Path  # images: and models: for the template's ECR image and s3:// bucket


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Two MLflow models packed as SageMaker's model.tar.gz, where the template's
    s3://pier-example-models/diabetes/v{N}/model.tar.gz maps to, and the mapping file."""
    root = tmp_path_factory.mktemp("cfn-models")
    saved = {
        "1": save_linear_model(root / "raw-v1", 1.0, 2.0, 10.0),
        "2": save_linear_model(root / "raw-v2", -3.0, 0.5, 100.0),
    }
    for version, model in saved.items():
        target = root / "diabetes" / f"v{version}"
        target.mkdir(parents=True)
        with tarfile.open(target / "model.tar.gz", "w:gz") as tar:
            for item in sorted(model.path.iterdir()):
                tar.add(item, arcname=item.name)
    mapping = root / "pier-mapping.yaml"
    mapping.write_text("models:\n  s3://pier-example-models/diabetes: ./diabetes\n")
    return Models(saved["1"], saved["2"], mapping)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("pier-cfn") / "home") as p:
        yield p


@pytest.fixture(scope="module")
def sm(platform: Platform) -> Any:
    return platform.client("sagemaker")


@pytest.fixture(scope="module")
def rt(platform: Platform) -> Any:
    return platform.client("sagemaker-runtime")


def pier(platform: Platform, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "COLUMNS": "200"}
    return subprocess.run(
        [PIER, *args, "--home", str(platform.home)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def mapped(models: Models) -> list[str]:
    return ["--map-image", f"{IMAGE}=pier/mlflow-pyfunc", "--mapping", str(models.mapping)]


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def what_runs(sm: Any) -> dict[str, list[str]]:
    configs = sm.list_endpoint_configs()["EndpointConfigs"]
    return {
        "models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
        "configs": sorted(c["EndpointConfigName"] for c in configs),
        "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
    }


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ------------------------------------------------------------------------------- cfn-lint


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_example_is_valid_cloudformation() -> None:
    done = cfn_lint(EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------- broken templates


def broken(kind: str) -> tuple[str, list[str], str]:
    """(template text, extra arguments, expected error without the file name) of a broken
    variant of the example."""
    text = EXAMPLE.read_text()
    if kind == "unknown intrinsic":
        old = "ModelDataUrl: !Sub s3://${ModelBucket}/diabetes/v${ModelVersion}/model.tar.gz"
        new = 'ModelDataUrl: {"Fn::Sbu": "s3://${ModelBucket}/v${ModelVersion}/model.tar.gz"}'
        text = text.replace(old, new)
        return (
            text,
            [],
            (
                f"{line_of(text, 'Fn::Sbu')}: Resources.Model.Properties.PrimaryContainer"
                ".ModelDataUrl.Fn::Sbu: unknown intrinsic function Fn::Sbu (known: "
            ),
        )
    if kind == "missing parameter":
        text = text.replace(
            '    Default: "1"\n    AllowedValues: ["1", "2"]', '    AllowedValues: ["1", "2"]'
        )
        return (
            text,
            [],
            (
                f"{line_of(text, '  ModelVersion:')}: Parameters: ModelVersion must have values "
                "(no Default; pass --parameter NAME=VALUE)"
            ),
        )
    if kind == "outside AllowedValues":
        return (
            text,
            ["--parameter", "Stage=qa"],
            (
                f"{line_of(text, '  Stage:')}: Parameters.Stage: 'qa' is not one of the "
                "AllowedValues (dev, prod)"
            ),
        )
    if kind == "duplicate key":
        first = "          InstanceType: !Ref InstanceType\n"
        text = text.replace(first, first + "          InstanceType: ml.m5.xlarge\n")
        return (
            text,
            [],
            (
                f"{line_of(text, 'InstanceType: ml.m5.xlarge')}: duplicate key 'InstanceType' "
                f"(first at line {line_of(text, 'InstanceType: !Ref InstanceType')}); YAML keeps "
                "only one of them"
            ),
        )
    assert kind == "FindInMap with 2 arguments"
    text = text.replace(
        '[ImageAccounts, !Ref "AWS::Region", Account]', '[ImageAccounts, !Ref "AWS::Region"]'
    )
    return text, [], (
        f"{line_of(text, 'Account: !FindInMap')}: Resources.Model.Properties.PrimaryContainer"
        ".Image.Fn::Sub.Account.Fn::FindInMap: Fn::FindInMap takes a list of 3 arguments "
        "[MapName, TopLevelKey, SecondLevelKey], got 2 arguments"
    )  # fmt: skip


BROKEN = [
    "unknown intrinsic",
    "missing parameter",
    "outside AllowedValues",
    "duplicate key",
    "FindInMap with 2 arguments",
]


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_template_is_refused_and_nothing_is_created(
    platform: Platform, sm: Any, models: Models, tmp_path: Path, kind: str
) -> None:
    text, extra, message = broken(kind)
    path = tmp_path / "endpoint.yaml"
    path.write_text(text)
    done = pier(platform, "apply", "-f", str(path), *mapped(models), *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {path}:{message}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert what_runs(sm) == {"models": [], "configs": [], "endpoints": []}
    if kind in ("unknown intrinsic", "duplicate key", "FindInMap with 2 arguments"):
        assert cfn_lint(path).returncode != 0  # the reference validator refuses them too


# ----------------------------------------------------------------------------- the stack


def test_plan_before_anything_exists(platform: Platform, sm: Any, models: Models) -> None:
    out = ok(pier(platform, "plan", "-f", str(EXAMPLE), *mapped(models)))
    assert re.search(r"\+ create +Model +Model +endpoint-Model-[0-9a-f]{8}\n", out), out
    assert re.search(r"\+ create +EndpointConfig +EndpointConfig +endpoint-EndpointConfig-", out)
    assert re.search(r"\+ create +Endpoint +Endpoint +endpoint-dev\n", out)
    assert "3 to create." in out
    plan = json.loads(ok(pier(platform, "plan", "-f", str(EXAMPLE), *mapped(models), "--json")))
    assert [(c["action"], c["logical_id"]) for c in plan["changes"]] == [
        ("create", "Model"), ("create", "EndpointConfig"), ("create", "Endpoint")
    ]  # fmt: skip
    assert plan["outputs"]["EndpointName"] == ENDPOINT
    assert what_runs(sm) == {"models": [], "configs": [], "endpoints": []}


def test_apply_creates_an_invocable_endpoint(
    platform: Platform, sm: Any, rt: Any, models: Models
) -> None:
    out = ok(pier(platform, "apply", "-f", str(EXAMPLE), *mapped(models)))
    # What pier does not run is listed, each with its reason; nothing is dropped silently.
    assert re.search(r"ExecutionRole +AWS::IAM::Role +IAM: pier's instances run with", out)
    assert re.search(r"ScalableTarget +AWS::ApplicationAutoScaling::ScalableTarget +autoscal", out)
    assert re.search(r"LatencyAlarm +AWS::CloudWatch::Alarm +CloudWatch: not created from", out)
    assert "ScalingPolicy: not created (Condition IsProd is false)" in out
    assert "the export name endpoint-EndpointArn is ignored" in out
    assert "endpoint endpoint-dev: Creating" in out
    assert "endpoint endpoint-dev: InService" in out
    assert "✓ created endpoint endpoint-dev" in out
    assert "EndpointName = endpoint-dev" in out
    assert f"EndpointArn = arn:aws:sagemaker:us-east-1:000000000000:endpoint/{ENDPOINT}" in out

    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert (variant["InitialInstanceCount"], variant["InitialVariantWeight"]) == (1, 1.0)
    assert "DataCaptureConfig" not in config  # !If [CaptureData, ..., !Ref AWS::NoValue]
    model = sm.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert container["Image"] == "pier/mlflow-pyfunc"
    assert container["ModelDataUrl"] == str(models.mapping.parent / "diabetes/v1/model.tar.gz")
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py", "STAGE": "dev"}
    assert model["ExecutionRoleArn"] == "arn:aws:iam::000000000000:role/endpoint-ExecutionRole"
    tags = sm.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "stage": "dev",
        "pier:stack": STACK,
        "pier:logical-id": "Endpoint",
        "pier:hash": tags[[t["Key"] for t in tags].index("pier:hash")]["Value"],
    }
    answer = rt.invoke_endpoint(EndpointName=ENDPOINT, Body=split_json(PROBE),
                                ContentType="application/json")  # fmt: skip
    assert predictions(answer["Body"].read()) == models.v1.predict(PROBE)


def test_apply_again_changes_nothing(platform: Platform, sm: Any, models: Models) -> None:
    before = what_runs(sm)
    modified = sm.describe_endpoint(EndpointName=ENDPOINT)["LastModifiedTime"]
    out = ok(pier(platform, "apply", "-f", str(EXAMPLE), *mapped(models)))
    assert "No changes: the stack is up to date." in out
    assert "✓" not in out
    assert re.search(r"= no change +Endpoint +Endpoint +endpoint-dev", out)
    assert what_runs(sm) == before
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["LastModifiedTime"] == modified


def test_plan_shows_a_new_model_version_and_changes_nothing(
    platform: Platform, sm: Any, models: Models
) -> None:
    before = what_runs(sm)
    out = ok(pier(platform, "plan", "-f", str(EXAMPLE), *mapped(models), "-p", "ModelVersion=2"))
    old_model, old_config = before["models"][0], before["configs"][0]
    assert re.search(rf"± replace +Model +Model +endpoint-Model-\w+ \(replaces {old_model}\)", out)
    assert re.search(r"ModelDataUrl: \S+/diabetes/v1/model.tar.gz -> \S+/v2/model.tar.gz", out)
    assert re.search(rf"~ update +Endpoint +Endpoint +endpoint-dev\n +EndpointConfigName: "
                     rf"{old_config} -> endpoint-EndpointConfig-", out)  # fmt: skip
    assert re.search(rf"- delete +Model +Model +{old_model}\n +replaced by endpoint-Model-", out)
    assert "1 to update, 2 to replace." in out
    assert what_runs(sm) == before


def test_a_new_model_version_replaces_the_model_while_the_endpoint_serves(
    platform: Platform, sm: Any, rt: Any, models: Models
) -> None:
    before = what_runs(sm)
    created = sm.describe_endpoint(EndpointName=ENDPOINT)["CreationTime"]
    answers: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def invoke_until_stopped() -> None:
        while not stop.is_set():
            try:
                answer = rt.invoke_endpoint(EndpointName=ENDPOINT, Body=split_json(PROBE),
                                            ContentType="application/json")  # fmt: skip
                answers.extend(predictions(answer["Body"].read()))
            except ClientError as exc:
                failures.append(str(exc))

    client = threading.Thread(target=invoke_until_stopped)
    client.start()
    try:
        out = ok(pier(platform, "apply", "-f", str(EXAMPLE), *mapped(models),
                      "--parameter", "ModelVersion=2"))  # fmt: skip
    finally:
        stop.set()
        client.join(30)
    assert "endpoint endpoint-dev: Updating" in out
    assert "✓ updated endpoint endpoint-dev" in out
    assert f"✓ deleted model {before['models'][0]}" in out
    assert failures == []
    assert set(answers) <= {models.v1.predict(PROBE)[0], models.v2.predict(PROBE)[0]}
    answer = rt.invoke_endpoint(EndpointName=ENDPOINT, Body=split_json(PROBE),
                                ContentType="application/json")  # fmt: skip
    assert predictions(answer["Body"].read()) == models.v2.predict(PROBE)
    after = what_runs(sm)
    assert after["endpoints"] == [ENDPOINT]
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["CreationTime"] == created  # updated
    assert len(after["models"]) == len(after["configs"]) == 1
    assert (after["models"], after["configs"]) != (before["models"], before["configs"])
    assert not set(after["models"] + after["configs"]) & set(before["models"] + before["configs"])
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName=before["models"][0])
    # and again: nothing to do
    again = ok(pier(platform, "apply", "-f", str(EXAMPLE), *mapped(models), "-p", "ModelVersion=2"))
    assert "No changes" in again


def test_delete_removes_everything(platform: Platform, sm: Any) -> None:
    out = ok(pier(platform, "delete", "-f", str(EXAMPLE)))
    assert "✓ stack endpoint deleted (3 resources)" in out
    assert what_runs(sm) == {"models": [], "configs": [], "endpoints": []}
    assert endpoint_processes(platform.home, ENDPOINT) == []
    assert "has no resources" in ok(pier(platform, "delete", "-f", str(EXAMPLE)))


# ------------------------------------------------------------------------------ a SAM template

SAM_EXAMPLE = EXAMPLE.parent / "serverless.yaml"
SAM_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"


def captured_lines(root: Path) -> list[str]:
    return [line for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def test_a_sam_template_applies_and_deletes_with_the_same_options(
    platform: Platform, sm: Any, rt: Any, models: Models, tmp_path: Path
) -> None:
    captured = tmp_path / "captured"
    options = ["--map-image", f"{SAM_IMAGE}=pier/mlflow-pyfunc", "--mapping", str(models.mapping),
               "--map-s3", f"s3://pier-example-capture={captured}"]  # fmt: skip
    assert cfn_lint(SAM_EXAMPLE).returncode == 0
    out = ok(pier(platform, "apply", "-f", str(SAM_EXAMPLE), *options))
    assert re.search(r"InvokeFunction +AWS::Serverless::Function +SAM resources", out)
    assert re.search(r"ServerlessRestApi +AWS::ApiGateway::RestApi +made by SAM for Invoke", out)
    assert re.search(r"PredictUrl +uses ServerlessRestApi", out)
    assert "✓ stack serverless applied" in out
    (endpoint,) = [o for o in out.splitlines() if o.strip().startswith("EndpointName = ")]
    name = endpoint.split("=", 1)[1].strip()
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    answer = rt.invoke_endpoint(EndpointName=name, Body=split_json(PROBE),
                                ContentType="application/json")  # fmt: skip
    assert predictions(answer["Body"].read()) == models.v1.predict(PROBE)
    # Data capture goes where --map-s3 says, in SageMaker's layout under the template's prefix.
    deadline = time.monotonic() + 120
    while not captured_lines(captured) and time.monotonic() < deadline:
        time.sleep(0.5)
    (record,) = captured_lines(captured)
    assert json.loads(record)["captureData"]["endpointInput"]["mode"] == "INPUT"
    assert next(captured.rglob("*.jsonl")).relative_to(captured).parts[:2] == ("capture", name)
    # What runs exports for AWS: local model data and capture need their S3 locations back.
    s3 = "s3://bucket/diabetes/v1/model.tar.gz"
    exported = ok(pier(platform, "export", "--endpoint", name, "--format", "cloudformation",
                       "--model-data", f"AllTraffic={s3}",
                       "--capture-destination", "s3://bucket/capture"))  # fmt: skip
    assert f"# Generated by `pier export` from endpoint {name}." in exported
    assert "Default: s3://bucket/diabetes/v1/model.tar.gz" in exported
    out = ok(pier(platform, "delete", "-f", str(SAM_EXAMPLE), *options))
    assert "✓ stack serverless deleted (3 resources)" in out
    assert what_runs(sm) == {"models": [], "configs": [], "endpoints": []}
