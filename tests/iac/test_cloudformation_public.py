"""Public templates that should apply, and precise refusals for those that cannot (issue 13).

cfn-lint is the reference for what CloudFormation itself accepts: every template these tests
say pier must take is run through it, and must pass. SAM templates: SAM's own resources, and
those the transform adds implicitly (`ServerlessRestApi`, `<Function>Role`, aliases,
versions, `ServerlessDeploymentApplication`), are skipped and referable; a cycle among skipped
resources only does not block; Outputs that use them are listed as skipped. `plan` refuses
before any call what `apply` would fail on, saying why pier cannot run it and what to map.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pier.cli.main import app
from pier.iac.cloudformation import engine
from pier.iac.cloudformation.intrinsics import Pseudo
from pier.iac.cloudformation.mapping import LocationMap
from pier.iac.cloudformation.stack import Stack, compile_stack
from pier.iac.cloudformation.template import TemplateError, parse
from pier.iac.source import Duplicate, SourceError, read

EXAMPLES = Path(__file__).parents[2] / "examples" / "cloudformation"
SAM_EXAMPLE = EXAMPLES / "serverless.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
PSEUDO = Pseudo("us-east-1", "123456789012", "shop")
ECR = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn"


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def written(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def compiled(path: Path, locations: LocationMap | None = None) -> Stack:
    duplicates: list[Duplicate] = []
    doc = read(path, cfn_tags=True, duplicates=duplicates)
    return compile_stack(parse(doc, str(path), duplicates), {}, PSEUDO, locations)


def error(path: Path, locations: LocationMap | None = None) -> str:
    with pytest.raises((TemplateError, SourceError)) as excinfo:
        compiled(path, locations)
    message: str = excinfo.value.message  # type: ignore[union-attr]
    return message


# ------------------------------------------------------------------------------ SAM templates


def test_the_sam_example_is_valid_cloudformation_and_compiles() -> None:
    done = cfn_lint(SAM_EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    stack = compiled(SAM_EXAMPLE)
    assert [r.logical_id for r in stack.resources] == ["Model", "EndpointConfig", "Endpoint"]
    skipped = {s.logical_id: (s.type, s.reason) for s in stack.skipped}
    assert skipped["InvokeFunction"][0] == "AWS::Serverless::Function"
    assert skipped["InvokeFunctionRole"] == (
        "AWS::IAM::Role",
        "made by SAM for InvokeFunction: IAM: pier's instances run with the platform's own "
        "permissions",
    )
    for implicit, kind in [
        ("ServerlessRestApi", "AWS::ApiGateway::RestApi"),
        ("ServerlessRestApiProdStage", "AWS::ApiGateway::Stage"),
        ("InvokeFunction.Alias", "AWS::Lambda::Alias"),
        ("InvokeFunction.Version", "AWS::Lambda::Version"),
        ("ServerlessDeploymentApplication", "AWS::CodeDeploy::Application"),
        ("InvokeFunctionDeploymentGroup", "AWS::CodeDeploy::DeploymentGroup"),
    ]:
        assert skipped[implicit][0] == kind
    # The Model's role is SAM's implicit one: a stated placeholder, an IAM role ARN.
    assert stack.resources[0].body["ExecutionRoleArn"] == (
        "arn:aws:iam::123456789012:role/shop-InvokeFunctionRole"
    )
    assert [o.name for o in stack.outputs] == ["EndpointName"]
    assert stack.skipped_outputs == [
        ("PredictUrl", ["ServerlessRestApi"]),
        ("FunctionAlias", ["InvokeFunction.Alias"]),
        ("DeploymentApplication", ["ServerlessDeploymentApplication"]),
    ]


SAM_HEAD = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      PrimaryContainer: {ModelDataUrl: s3://bucket/model.tar.gz}
"""


def test_references_to_what_sam_would_add_resolve_to_placeholders(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        SAM_HEAD
        + """\
  Api:
    Type: AWS::Serverless::Api
    Properties: {StageName: prod}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: a.b
      Runtime: python3.12
      CodeUri: s3://code/fn.zip
      AutoPublishAlias: live
      Events:
        Nightly: {Type: Schedule, Properties: {Schedule: rate(1 day)}}
  Errors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      MetricName: Errors
      Namespace: AWS/Lambda
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanThreshold
      AlarmActions: [!Ref Fn.Alias]
      Dimensions:
        - {Name: Rule, Value: !Ref FnNightly}
        - {Name: Stage, Value: !Ref Api.Stage}
        - {Name: Role, Value: !GetAtt FnRole.Arn}
Outputs:
  Stage: {Value: !Ref ApiprodStage}
  Model: {Value: !GetAtt Model.ModelName}
""",
    )
    assert cfn_lint(path).returncode == 0, cfn_lint(path).stdout
    stack = compiled(path)
    assert [o.name for o in stack.outputs] == ["Model"]
    assert stack.skipped_outputs == [("Stage", ["ApiprodStage"])]
    skipped = {s.logical_id for s in stack.skipped}
    assert {"FnNightly", "FnRole", "Fn.Alias", "Api.Stage", "ApiprodStage"} <= skipped
    # A name SAM would not make is still no resource of that name, as on AWS.
    typo = written(
        tmp_path, SAM_HEAD + "Outputs:\n  X: {Value: !Ref ServerlessRestApi}\n", "u.yaml"
    )
    assert error(typo) == (
        f"{typo}:8: Outputs.X.Value.Ref: refers to 'ServerlessRestApi': no parameter, pseudo "
        "parameter or resource of that name"
    )


def test_a_cycle_among_skipped_resources_only_does_not_block(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        SAM_HEAD
        + """\
  Ping:
    Type: AWS::Serverless::Function
    Properties:
      Handler: a.b
      Runtime: python3.12
      CodeUri: s3://code/fn.zip
      Environment: {Variables: {PONG: !Ref Pong}}
  Pong:
    Type: AWS::Serverless::Function
    Properties:
      Handler: a.b
      Runtime: python3.12
      CodeUri: s3://code/fn.zip
      Environment: {Variables: {PING: !Ref Ping}}
""",
    )
    stack = compiled(path)
    assert [r.logical_id for r in stack.resources] == ["Model"]
    assert (
        "Resources: circular dependency between resources [Ping, Pong], all of which pier "
        "skips: not in its way (CloudFormation would refuse it unless a transform removes it)"
    ) in stack.notes


def test_sam_attributes_globals_and_registry_types_are_accepted(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Timeout: 10, Runtime: python3.12}
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      PrimaryContainer: {ModelDataUrl: s3://bucket/model.tar.gz}
  Table:
    Type: AWS::Serverless::SimpleTable
  Fn:
    Type: AWS::Serverless::Function
    IgnoreGlobals: [Timeout]
    Connectors:
      TableConn:
        Properties:
          Destination: {Id: Table}
          Permissions: [Read]
    Properties: {Handler: a.b, CodeUri: s3://code/fn.zip}
  Thing:
    Type: MyOrg::Widgets::Thing
""",
    )
    stack = compiled(path)
    assert {"Table", "Fn", "FnRole", "Thing"} <= {s.logical_id for s in stack.skipped}
    no_transform = written(
        tmp_path, "Globals: {Function: {Timeout: 3}}\n" + SAM_HEAD.split("\n", 1)[1], "g.yaml"
    )
    assert error(no_transform) == (
        f"{no_transform}:1: Globals: Globals is a section of SAM templates: it needs Transform: "
        "AWS::Serverless-2016-10-31"
    )
    assert cfn_lint(no_transform).returncode != 0  # the reference refuses it too


def test_duplicate_keys_inside_skipped_resources_are_a_warning(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        SAM_HEAD
        + """\
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: a.b
      Handler: a.c
      CodeUri: s3://code/fn.zip
""",
    )
    stack = compiled(path)
    assert (
        f"warning: {path}:11: duplicate key 'Handler' (first at line 10); YAML keeps only one of "
        "them (in Resources.Fn, which pier skips)"
    ) in stack.notes
    in_a_model = written(
        tmp_path,
        SAM_HEAD.replace(
            "      PrimaryContainer:",
            "      EnableNetworkIsolation: true\n"
            "      EnableNetworkIsolation: false\n      PrimaryContainer:",
        ),
        "m.yaml",
    )
    assert error(in_a_model) == (
        f"{in_a_model}:7: duplicate key 'EnableNetworkIsolation' (first at line 6); YAML keeps "
        "only one of them"
    )
    top = written(tmp_path, "Description: a\nDescription: b\n" + SAM_HEAD, "d.yaml")
    assert error(top).startswith(f"{top}:2: duplicate key 'Description'")


# ------------------------------------------------------------------- what apply would fail on


def model(tmp_path: Path, container: str, name: str = "t.yaml") -> Path:
    return written(
        tmp_path,
        "Resources:\n  Model:\n    Type: AWS::SageMaker::Model\n    Properties:\n"
        "      ExecutionRoleArn: arn:aws:iam::123456789012:role/r\n"
        f"      PrimaryContainer:\n{textwrap.indent(textwrap.dedent(container), ' ' * 8)}",
        name,
    )


PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/3"


def test_a_model_package_is_refused_unless_mapped(tmp_path: Path) -> None:
    path = model(tmp_path, f"ModelPackageName: {PACKAGE}\n")
    assert cfn_lint(path).returncode == 0
    assert error(path) == (
        f"{path}:7: Resources.Model.Properties.PrimaryContainer.ModelPackageName: pier cannot "
        f"run this model: the model package {PACKAGE} lives in SageMaker's model registry, which "
        f"pier cannot read. Map it to a model: --map-model {PACKAGE}=models:/NAME/VERSION (or a "
        "path, runs:/..., an s3:// model.tar.gz)"
    )
    stack = compiled(path, LocationMap(models={PACKAGE: "models:/churn/3"}))
    assert stack.resources[0].body["PrimaryContainer"] == {"ModelDataUrl": "models:/churn/3"}


def test_a_model_inside_an_ecr_image_is_refused_unless_the_image_is_mapped(
    tmp_path: Path,
) -> None:
    path = model(tmp_path, f"Image: {ECR}:1.2-1\n")
    assert error(path) == (
        f"{path}:7: Resources.Model.Properties.PrimaryContainer.Image: pier cannot run this "
        f"model: it lives inside the image {ECR}:1.2-1 (the container has no ModelDataUrl) and "
        f"pier pulls nothing from a registry. Map the image to a local one: --map-image {ECR}="
        "IMAGE (built with `docker build -t IMAGE` or `pier build MODEL_URI -t IMAGE`; "
        "`--map-image URI=URI` if `pier up --map-image` maps it already)"
    )
    stack = compiled(path, LocationMap(images={ECR: "my-model:latest"}))
    assert stack.resources[0].body["PrimaryContainer"] == {"Image": "my-model:latest"}
    local = model(tmp_path, "Image: my-model:latest\n", "l.yaml")  # a local image: may exist
    assert compiled(local).resources[0].body["PrimaryContainer"] == {"Image": "my-model:latest"}


def test_model_mappings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    path = model(tmp_path, "ModelDataUrl: s3://bucket/churn/v1/model.tar.gz\n")
    prefix = LocationMap(models={"s3://bucket/churn": "models:/churn"})
    assert error(path, prefix) == (
        f"{path}:7: Resources.Model.Properties.PrimaryContainer.ModelDataUrl: --map-model "
        "s3://bucket/churn=models:/churn maps by prefix, which gives "
        "models:/churn/v1/model.tar.gz: not a model URI. Map the exact location: --map-model "
        "s3://bucket/churn/v1/model.tar.gz=models:/churn/VERSION (a registered model needs its "
        "version or @alias)"
    )
    exact = LocationMap(models={"s3://bucket/churn/v1/model.tar.gz": "models:/churn/1"})
    assert compiled(path, exact).resources[0].body["PrimaryContainer"]["ModelDataUrl"] == (
        "models:/churn/1"
    )
    missing = LocationMap(models={"s3://bucket/churn": str(tmp_path / "nowhere")})
    assert error(path, missing) == (
        f"{path}:7: Resources.Model.Properties.PrimaryContainer.ModelDataUrl: --map-model "
        f"s3://bucket/churn={tmp_path / 'nowhere'}: {tmp_path / 'nowhere/v1/model.tar.gz'} does "
        "not exist (the model data s3://bucket/churn/v1/model.tar.gz maps to it)"
    )
    file_uri = LocationMap(models={"s3://bucket/churn": f"file://{tmp_path}/gone"})
    assert "gone/v1/model.tar.gz does not exist" in error(path, file_uri)


def test_a_mapping_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    path = model(tmp_path, "ModelDataUrl: models:/churn/1\n")
    stack = compiled(
        path, LocationMap(images={"repo": "pier/mlflow-pyfunc"}, models={"s3://x": "models:/y/1"})
    )
    assert stack.notes == [
        "warning: --map-image repo=... matches no image of the template (nothing is mapped by it)",
        "warning: --map-model s3://x=... matches no model data or model package of the template "
        "(nothing is mapped by it)",
    ]


# --------------------------------------------------------------------------------- the CLI

runner = CliRunner()


def test_delete_takes_the_options_apply_takes(tmp_path: Path) -> None:
    path = model(tmp_path, "ModelDataUrl: models:/churn/1\n")
    home = str(tmp_path / "home")
    mapping = written(tmp_path, "models:\n  s3://b: ./m\n", "map.yaml")
    options = ["-p", "A=1", "--map-image", "a=b", "--map-model", "s3://b=models:/m/1"]
    result = runner.invoke(
        app, ["delete", "-f", str(path), *options, "--mapping", str(mapping), "--home", home]
    )
    assert "No such option" not in result.output
    assert "pier is not running" in result.output  # past the options: the platform is next
    bad = runner.invoke(app, ["delete", "-f", str(path), "--map-model", "s3://x", "--home", home])
    assert bad.exit_code == 2
    assert bad.output.startswith("error: --map-model 's3://x': expected S3URI=MODEL_URI")


def test_the_plan_lists_skipped_outputs() -> None:
    skipped = engine.Plan(compiled(SAM_EXAMPLE), []).to_json()["skipped_outputs"]
    assert skipped[0] == {"name": "PredictUrl", "uses": ["ServerlessRestApi"]}


# ------------------------------------------------------------------------ S3 destinations


def test_map_s3_sends_data_capture_to_a_local_directory(tmp_path: Path) -> None:
    from pier.iac.cloudformation.mapping import parse_pairs, read_mapping

    unmapped = compiled(SAM_EXAMPLE)
    assert (
        "EndpointConfig: data capture to s3://pier-example-capture/capture is not mapped "
        "(--map-s3 s3://pier-example-capture=file:///DIR writes it locally): the platform "
        "writes to S3 with its AWS credentials"
    ) in unmapped.notes
    pairs = parse_pairs(["s3://pier-example-capture=captured"], "--map-s3", tmp_path, local=False)
    assert pairs == {"s3://pier-example-capture": (tmp_path / "captured").as_uri()}
    stack = compiled(SAM_EXAMPLE, LocationMap(s3=pairs))
    config = next(r for r in stack.resources if r.logical_id == "EndpointConfig")
    assert config.body["DataCaptureConfig"]["DestinationS3Uri"] == (
        f"{(tmp_path / 'captured').as_uri()}/capture"
    )
    assert config.name != unmapped.resources[1].name  # another destination, another config
    assert not any("data capture" in n for n in stack.notes)
    store = LocationMap(s3={"s3://pier-example-capture/capture": "s3://local-store/cap"})
    config = compiled(SAM_EXAMPLE, store).resources[1]
    assert config.body["DataCaptureConfig"]["DestinationS3Uri"] == "s3://local-store/cap"
    nothing = compiled(SAM_EXAMPLE, LocationMap(s3={"s3://other": "file:///tmp/x"}))
    assert (
        "warning: --map-s3 s3://other=... matches no S3 destination (data capture, async "
        "outputs) of the template (nothing is mapped by it)"
    ) in nothing.notes
    for bad, message in [
        ("s3://b=ftp://h/x", "--map-s3 s3://b=ftp://h/x: the target is a directory"),
        ("/dir=file:///x", "--map-s3 /dir=...: the key is an S3 location"),
        ("s3://b", "--map-s3 's3://b': expected S3URI=file:///DIR"),
    ]:
        with pytest.raises(TemplateError) as excinfo:
            parse_pairs([bad], "--map-s3", tmp_path, local=False)
        assert excinfo.value.message.startswith(message)
    mapping = written(tmp_path, "s3:\n  s3://pier-example-capture: ./cap\n", "map.yaml")
    assert read_mapping(mapping).s3 == {"s3://pier-example-capture": (tmp_path / "cap").as_uri()}


# ---------------------------------------------------------------------------- SSM parameters

SSM = """\
Parameters:
  Subnet:
    Type: AWS::SSM::Parameter::Value<String>
    Default: /network/subnet
  ModelData:
    Type: AWS::SSM::Parameter::Value<String>
    Default: /models/churn
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      PrimaryContainer: {ModelDataUrl: !Ref ModelData}
  Topic:
    Type: AWS::SNS::Topic
    Properties: {TopicName: !Sub "topic-${Subnet}"}
"""


def test_ssm_parameters_are_read_from_the_options_or_left_to_skipped_resources(
    tmp_path: Path,
) -> None:
    path = written(tmp_path, SSM)
    assert cfn_lint(path).returncode == 0
    assert error(path) == (
        f"{path}:12: Resources.Model.Properties.PrimaryContainer.ModelDataUrl.Ref: parameter "
        "ModelData (AWS::SSM::Parameter::Value<String>) reads AWS Systems Manager Parameter "
        "Store (/models/churn), which pier cannot reach: pass its value with --parameter "
        "ModelData=VALUE"
    )
    duplicates: list[Duplicate] = []
    template = parse(read(path, cfn_tags=True, duplicates=duplicates), str(path), duplicates)
    stack = compile_stack(template, {"ModelData": "models:/churn/1"}, PSEUDO)
    assert stack.resources[0].body["PrimaryContainer"] == {"ModelDataUrl": "models:/churn/1"}
    assert [s.logical_id for s in stack.skipped] == ["Topic"]  # its SSM value is not needed


def test_the_language_extensions_transform(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        """\
Transform: AWS::LanguageExtensions
Parameters:
  Zones: {Type: CommaDelimitedList, Default: "a,b"}
Resources:
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      PrimaryContainer:
        ModelDataUrl: s3://bucket/model.tar.gz
        Environment:
          ZONES: {"Fn::Length": {"Ref": "Zones"}}
""",
    )
    assert cfn_lint(path).returncode == 0
    model = compiled(path).resources[0]
    assert model.body["PrimaryContainer"]["Environment"] == {"ZONES": "2"}
    for_each = written(
        tmp_path,
        """\
Transform: AWS::LanguageExtensions
Resources:
  Fn::ForEach::Topics:
    - Name
    - [a, b]
    - Topic${Name}: {Type: AWS::SNS::Topic}
""",
        "f.yaml",
    )
    assert error(for_each) == (
        f"{for_each}:3: Resources.Fn::ForEach::Topics: pier cannot run Fn::ForEach "
        "(AWS::LanguageExtensions) yet: write the resources it would make out"
    )
