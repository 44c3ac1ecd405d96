"""CloudFormation templates: parameters, intrinsics, conditions, mappings, resources, names,
dependency order and the plan.

Templates are compiled in memory (nothing runs); the plan tests read and change a SageMaker
API served by moto's stand-alone server (another implementation of the same API, spoken to
with boto3), so the engine is exercised exactly as against `pier up`, minus the processes. The
end-to-end run against a real `pier up` is tests/e2e/test_cloudformation_apply.py.
"""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from typer.testing import CliRunner

from pier.cli.main import app
from pier.iac.cloudformation import engine, execute
from pier.iac.cloudformation.dependencies import check_references, order
from pier.iac.cloudformation.engine import redact
from pier.iac.cloudformation.execute import Reporter
from pier.iac.cloudformation.intrinsics import Pseudo
from pier.iac.cloudformation.mapping import LocationMap, parse_pairs, read_mapping
from pier.iac.cloudformation.stack import (
    DIGEST_TAG,
    LOGICAL_ID_TAG,
    STACK_TAG,
    Stack,
    compile_stack,
    generated_name,
)
from pier.iac.cloudformation.state import ApplyError, read_platform
from pier.iac.cloudformation.template import TemplateError, parse
from pier.iac.source import load

FILE = "t.yaml"
PSEUDO = Pseudo("eu-west-1", "123456789012", "shop")
SAGEMAKER_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
EXAMPLE = Path(__file__).parents[2] / "examples" / "cloudformation" / "endpoint.yaml"

MODEL = """\
  Model:
    Type: AWS::SageMaker::Model
    Properties:
      PrimaryContainer:
        ModelDataUrl: s3://bucket/model.tar.gz
"""
CONFIG = """\
  Config:
    Type: AWS::SageMaker::EndpointConfig
    Properties:
      ProductionVariants:
        - VariantName: main
          ModelName: !GetAtt Model.ModelName
          InitialInstanceCount: 1
          InstanceType: ml.m5.large
"""
ENDPOINT = """\
  Endpoint:
    Type: AWS::SageMaker::Endpoint
    Properties:
      EndpointConfigName: !GetAtt Config.EndpointConfigName
"""


def template_of(text: str) -> Any:
    return parse(load(textwrap.dedent(text), FILE, cfn_tags=True), FILE)


def compiled(
    text: str,
    params: dict[str, str] | None = None,
    locations: LocationMap | None = None,
    pseudo: Pseudo = PSEUDO,
) -> Stack:
    return compile_stack(template_of(text), params or {}, pseudo, locations)


def error(text: str, params: dict[str, str] | None = None) -> str:
    with pytest.raises(TemplateError) as excinfo:
        compiled(text, params)
    return excinfo.value.message


def at(text: str, needle: str, nth: int = 1) -> str:
    """`t.yaml:N` of the nth line of `text` that contains `needle`."""
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return f"{FILE}:{lines[nth - 1]}"


def with_resources(*blocks: str, head: str = "") -> str:
    return textwrap.dedent(head) + "Resources:\n" + "".join(blocks)


def model_with(container_lines: str, head: str = "", extra: str = "") -> str:
    """A template whose one Model has these PrimaryContainer lines (indented 8)."""
    body = textwrap.indent(textwrap.dedent(container_lines), " " * 8)
    model = (
        "  Model:\n    Type: AWS::SageMaker::Model\n    Properties:\n"
        f"      PrimaryContainer:\n{body}"
    )
    return with_resources(model, extra, head=head)


def container(stack: Stack) -> dict[str, Any]:
    model = stack.get("Model")
    assert model is not None
    primary: dict[str, Any] = model.body["PrimaryContainer"]
    return primary


def variant(stack: Stack, index: int = 0) -> dict[str, Any]:
    config = stack.get("Config")
    assert config is not None
    found: dict[str, Any] = config.body["ProductionVariants"][index]
    return found


# -------------------------------------------------------------------------------- parameters

PARAMS = """\
Parameters:
  Count:
    Type: Number
    Default: 1
    MinValue: 1
    MaxValue: 4
  Weight:
    Type: String
    Default: "0.0"
  Capture:
    Type: String
    Default: "true"
    AllowedValues: ["true", "false"]
  Stage:
    Type: String
    AllowedValues: [dev, prod]
    Default: dev
  Name:
    Type: String
    Default: shop-model
    AllowedPattern: "[a-z][a-z-]*"
    ConstraintDescription: lower-case letters and hyphens
    MinLength: 3
    MaxLength: 20
  Zones:
    Type: CommaDelimitedList
    Default: "a,b,c"
  Sizes:
    Type: List<Number>
    Default: "1,2"
  Subnet:
    Type: AWS::EC2::Subnet::Id
    Default: subnet-123
  Token:
    Type: String
    NoEcho: true
    Default: s3cr3t-value
    MinLength: 4
"""


def params_template() -> str:
    config = (
        "  Config:\n    Type: AWS::SageMaker::EndpointConfig\n    Properties:\n"
        "      ProductionVariants:\n"
        "        - VariantName: !Ref Stage\n"
        "          ModelName: !GetAtt Model.ModelName\n"
        "          InitialInstanceCount: !Ref Count\n"
        "          InitialVariantWeight: !Ref Weight\n"
        "          InstanceType: ml.m5.large\n"
        "      DataCaptureConfig:\n"
        "        EnableCapture: !Ref Capture\n"
        "        InitialSamplingPercentage: !Select [1, !Ref Sizes]\n"
        "        DestinationS3Uri: !Sub s3://bucket/${Name}\n"
        "        CaptureOptions: [{CaptureMode: Input}]\n"
    )
    model = (
        "  Model:\n    Type: AWS::SageMaker::Model\n    Properties:\n"
        "      PrimaryContainer:\n"
        "        ModelDataUrl: s3://bucket/m.tar.gz\n"
        "        Environment:\n"
        '          ZONES: !Join ["+", !Ref Zones]\n'
        "          SUBNET: !Ref Subnet\n"
        "          TOKEN: !Ref Token\n"
    )
    return with_resources(model, config, head=PARAMS)


def test_parameter_defaults_and_coercion_to_the_property_types() -> None:
    stack = compiled(params_template())
    v = variant(stack)
    assert v["InitialInstanceCount"] == 1  # Number parameter → a string "1" → the integer
    assert v["InitialVariantWeight"] == 0.0  # "0.0" → 0.0 (0.0 is allowed)
    assert v["VariantName"] == "dev"
    capture = stack.resources[1].body["DataCaptureConfig"]
    assert capture["EnableCapture"] is True  # "true" → a boolean
    assert capture["InitialSamplingPercentage"] == 2
    assert capture["DestinationS3Uri"] == "s3://bucket/shop-model"
    env = container(stack)["Environment"]
    assert env == {"ZONES": "a+b+c", "SUBNET": "subnet-123", "TOKEN": "s3cr3t-value"}
    assert stack.secrets == ["s3cr3t-value"]


def test_parameters_given_override_defaults() -> None:
    stack = compiled(
        params_template(), {"Count": "3", "Weight": "0.25", "Capture": "false", "Zones": "x"}
    )
    assert variant(stack)["InitialInstanceCount"] == 3
    assert variant(stack)["InitialVariantWeight"] == 0.25
    assert stack.resources[1].body["DataCaptureConfig"]["EnableCapture"] is False
    assert container(stack)["Environment"]["ZONES"] == "x"


@pytest.mark.parametrize(
    ("given", "declared", "message"),
    [
        ({"Count": "many"}, "Count:", "Parameters.Count: 'many' is not a number"),
        ({"Count": "0"}, "Count:", "Parameters.Count: '0' is less than MinValue 1"),
        ({"Count": "5"}, "Count:", "Parameters.Count: '5' is greater than MaxValue 4"),
        (
            {"Stage": "qa"},
            "Stage:",
            "Parameters.Stage: 'qa' is not one of the AllowedValues (dev, prod)",
        ),
        (
            {"Name": "Shop"},
            "Name:",
            "Parameters.Name: 'Shop' does not match AllowedPattern [a-z][a-z-]*: "
            "lower-case letters and hyphens",
        ),
        (
            {"Name": "ab"},
            "Name:",
            "Parameters.Name: 'ab' is shorter than MinLength 3: lower-case letters and hyphens",
        ),
        ({"Name": "a" * 21}, "Name:", "Parameters.Name: '" + "a" * 21 + "' is longer than "),
        ({"Sizes": "1,x"}, "Sizes:", "Parameters.Sizes: 'x' is not a number"),
        ({"Token": "abc"}, "Token:", "Parameters.Token: **** is shorter than MinLength 4"),
    ],
)
def test_parameter_constraints(given: dict[str, str], declared: str, message: str) -> None:
    text = params_template()
    assert error(text, given).startswith(f"{at(text, '  ' + declared)}: {message}")


def test_parameters_not_declared() -> None:
    assert error(params_template(), {"Nope": "1", "Nix": "2"}) == (
        "t.yaml: Parameters: Nix, Nope are not declared in the template (declared: Count, "
        "Weight, Capture, Stage, Name, Zones, Sizes, Subnet, Token)"
    )


def test_a_no_echo_value_never_appears_in_a_message() -> None:
    text = params_template().replace("MinLength: 4", "AllowedValues: [good-one]")
    message = error(text, {"Token": "leaked-secret"})
    assert "leaked-secret" not in message
    assert message.endswith("**** is not one of the AllowedValues (good-one)")


def test_a_parameter_without_value_or_default() -> None:
    text = with_resources(
        MODEL, head="Parameters:\n  Bucket: {Type: String}\n  Key:\n    Type: String\n"
    )
    assert error(text) == (
        "t.yaml:2: Parameters: Bucket, Key must have values (no Default; pass --parameter "
        "NAME=VALUE)"
    )
    assert compiled(text, {"Bucket": "b", "Key": "k"}).get("Model") is not None


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("{Type: Strin}", "t.yaml:2: Parameters.P.Type: unknown parameter type 'Strin'"),
        ("{Default: x}", "t.yaml:2: Parameters.P: Type is required"),
        ("{Type: String, Defualt: x}", "t.yaml:2: Parameters.P.Defualt: unknown parameter "),
        ("{Type: String, AllowedPattern: '['}", "t.yaml:2: Parameters.P.AllowedPattern: not a"),
        ("{Type: Number, MinValue: low}", "t.yaml:2: Parameters.P.MinValue: must be a number"),
    ],
)
def test_parameter_declarations(declaration: str, message: str) -> None:
    text = with_resources(MODEL, head=f"Parameters:\n  P: {declaration}\n")
    assert error(text, {"P": "1"}).startswith(message)


# ---------------------------------------------------------------------------------- coercion


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"1.5"', "t.yaml:13: Resources.Config.Properties.ProductionVariants[0]"
                  ".InitialInstanceCount: must be an integer, got '1.5'"),
        ("[1]", "ProductionVariants[0].InitialInstanceCount: must be a single value, got a list"),
        ("true", "ProductionVariants[0].InitialInstanceCount: must be an integer, got True"),
    ],
)  # fmt: skip
def test_coercion_errors_name_the_property_and_line(value: str, message: str) -> None:
    text = with_resources(
        MODEL, CONFIG.replace("InitialInstanceCount: 1", f"InitialInstanceCount: {value}")
    )
    assert message in error(text)


def test_coercion_of_numbers_and_booleans_written_as_strings() -> None:
    config = CONFIG.replace("InitialInstanceCount: 1", 'InitialInstanceCount: "2"') + (
        '          InitialVariantWeight: "0.5"\n'
        "          ContainerStartupHealthCheckTimeoutInSeconds: 60.0\n"
        "      DataCaptureConfig:\n"
        '        EnableCapture: "TRUE"\n'
        "        InitialSamplingPercentage: 50\n"
        "        DestinationS3Uri: s3://b/c\n"
        "        CaptureOptions: [{CaptureMode: Input}]\n"
    )
    stack = compiled(with_resources(MODEL, config))
    v = variant(stack)
    assert (v["InitialInstanceCount"], v["InitialVariantWeight"]) == (2, 0.5)
    assert v["ContainerStartupHealthCheckTimeoutInSeconds"] == 60
    assert stack.resources[1].body["DataCaptureConfig"]["EnableCapture"] is True
    bad = config.replace('EnableCapture: "TRUE"', "EnableCapture: yes-please")
    assert error(with_resources(MODEL, bad)).endswith(
        "Resources.Config.Properties.DataCaptureConfig.EnableCapture: must be true or false, "
        "got 'yes-please'"
    )


def test_unknown_properties() -> None:
    text = model_with("ModelDataUrl: s3://b/m.tar.gz\nModelDataUri: s3://b/m.tar.gz\n")
    assert error(text).startswith(
        "t.yaml:7: Resources.Model.Properties.PrimaryContainer.ModelDataUri: unknown property "
        "(known: ContainerHostname, Image, ImageConfig, Mode, ModelDataUrl"
    )
    text = with_resources(MODEL.replace("Properties:", "Properties:\n      Colour: blue"))
    assert error(text).startswith(
        "t.yaml:5: Resources.Model.Properties.Colour: AWS::SageMaker::Model has no property "
        "Colour (it has: Containers, EnableNetworkIsolation, ExecutionRoleArn,"
    )


def test_tags() -> None:
    tags = "      Tags:\n        - {Key: team, Value: ml}\n        - {Key: cost, Value: 12}\n"
    stack = compiled(with_resources(MODEL + tags))
    model = stack.get("Model")
    assert model is not None
    assert model.tags == {"team": "ml", "cost": "12"}
    assert model.all_tags("shop") == {
        "team": "ml",
        "cost": "12",
        STACK_TAG: "shop",
        LOGICAL_ID_TAG: "Model",
        DIGEST_TAG: model.digest,
    }
    reserved = tags.replace("Key: team", "Key: 'pier:stack'")
    assert error(with_resources(MODEL + reserved)) == (
        "t.yaml:8: Resources.Model.Properties.Tags[0]: tag keys starting with aws: or pier: are "
        "reserved ('pier:stack')"
    )
    assert error(with_resources(MODEL + "      Tags: [{Key: a}]\n")).endswith(
        "Resources.Model.Properties.Tags[0]: a tag is {Key: ..., Value: ...}"
    )


def test_sagemaker_validation_runs_before_anything_is_sent() -> None:
    text = with_resources(MODEL, CONFIG.replace("ml.m5.large", "ml.bogus"))
    assert error(text) == (
        f"{at(text, 'ml.bogus')}: Resources.Config.Properties.ProductionVariants[0].InstanceType:"
        " SageMaker would refuse this endpoint "
        "configuration: 1 validation error detected: Value 'ml.bogus' at "
        "'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must "
        "satisfy enum value set: [" + error(text).split("enum value set: [", 1)[1]
    )
    assert "ml.m5.large" in error(text)
    bad_name = MODEL.replace("Properties:", "Properties:\n      ModelName: no_underscores")
    message = error(with_resources(bad_name))
    assert message.startswith(
        "t.yaml:5: Resources.Model.Properties.ModelName: SageMaker would refuse this model: 1 "
        "validation error detected: Value 'no_underscores' at 'modelName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
    )


# -------------------------------------------------------------------------------- intrinsics


def test_ref_of_pseudo_parameters() -> None:
    env = "\n".join(
        f"  {name.split('::')[1].upper()}: !Ref {name}"
        for name in (
            "AWS::Region",
            "AWS::AccountId",
            "AWS::Partition",
            "AWS::StackName",
            "AWS::StackId",
            "AWS::URLSuffix",
        )
    )
    stack = compiled(model_with(f"ModelDataUrl: s3://b/m.tar.gz\nEnvironment:\n{env}\n"))
    assert container(stack)["Environment"] == {
        "REGION": "eu-west-1",
        "ACCOUNTID": "123456789012",
        "PARTITION": "aws",
        "STACKNAME": "shop",
        "STACKID": PSEUDO.stack_id,
        "URLSUFFIX": "amazonaws.com",
    }
    assert PSEUDO.stack_id.startswith("arn:aws:cloudformation:eu-west-1:123456789012:stack/shop/")
    assert Pseudo("eu-west-1", "123456789012", "shop").stack_id == PSEUDO.stack_id  # stable


def test_ref_and_getatt_of_sagemaker_resources() -> None:
    endpoint = ENDPOINT + "      EndpointName: orders\n"
    outputs = """\
Outputs:
  ModelArn: {Value: !Ref Model}
  ModelName: {Value: !GetAtt Model.ModelName}
  ModelArn2: {Value: !GetAtt Model.Arn}
  ModelArn3: {Value: !GetAtt [Model, ModelArn]}
  ConfigArn: {Value: !Ref Config}
  ConfigName: {Value: !GetAtt Config.EndpointConfigName}
  EndpointArn: {Value: !Ref Endpoint}
  EndpointName: {Value: !GetAtt Endpoint.EndpointName}
  EndpointArn2: {Value: !GetAtt Endpoint.Arn}
"""
    stack = compiled(with_resources(MODEL, CONFIG, endpoint) + outputs)
    model, config = stack.resources[0].name, stack.resources[1].name
    prefix = "arn:aws:sagemaker:eu-west-1:123456789012"
    assert {o.name: o.value for o in stack.outputs} == {
        "ModelArn": f"{prefix}:model/{model.lower()}",
        "ModelName": model,
        "ModelArn2": f"{prefix}:model/{model.lower()}",
        "ModelArn3": f"{prefix}:model/{model.lower()}",
        "ConfigArn": f"{prefix}:endpoint-config/{config.lower()}",
        "ConfigName": config,
        "EndpointArn": f"{prefix}:endpoint/orders",
        "EndpointName": "orders",
        "EndpointArn2": f"{prefix}:endpoint/orders",
    }


def test_getatt_of_an_unknown_attribute() -> None:
    text = with_resources(MODEL, CONFIG.replace("Model.ModelName", "Model.Name"))
    assert error(text) == (
        "t.yaml:12: Resources.Config.Properties.ProductionVariants[0].ModelName.Fn::GetAtt: "
        "AWS::SageMaker::Model has no attribute 'Name' (it has: Arn, ModelArn, ModelName)"
    )


def test_sub_both_forms() -> None:
    head = "Parameters:\n  Bucket: {Type: String, Default: data}\n"
    env = """\
Environment:
  PARAM: !Sub s3://${Bucket}/${AWS::Region}/x
  LITERAL: !Sub "${!Literal}-${ Bucket }"
  VARS: !Sub
    - "${Scheme}://${Bucket}/${Key}"
    - Scheme: s3
      Key: !Join ["/", [a, b]]
"""
    stack = compiled(model_with("ModelDataUrl: s3://b/m.tar.gz\n" + env, head=head))
    assert container(stack)["Environment"] == {
        "PARAM": "s3://data/eu-west-1/x",
        "LITERAL": "${Literal}-data",
        "VARS": "s3://data/a/b",
    }


def test_sub_of_resources_and_attributes() -> None:
    endpoint = ENDPOINT + "      EndpointName: orders\n"
    outputs = (
        "Outputs:\n"
        "  Url: {Value: !Sub 'https://runtime/${Endpoint.EndpointName}/invocations'}\n"
        "  Arn: {Value: !Sub '${Endpoint}'}\n"
    )
    stack = compiled(with_resources(MODEL, CONFIG, endpoint) + outputs)
    values = {o.name: o.value for o in stack.outputs}
    assert values["Url"] == "https://runtime/orders/invocations"
    assert values["Arn"].endswith(":endpoint/orders")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!Sub s3://${Nope}/x", "t.yaml:6: Resources.Model.Properties.PrimaryContainer"
                                ".ModelDataUrl.Fn::Sub: refers to 'Nope': no "
                                "parameter, pseudo parameter or resource of that name"),
        ("!Sub [1, {}]", "Fn::Sub takes a string (or [string, {variables}]), not a int"),
        ("!Sub ['${A}', {A: [x]}]", "${A} is a list, Fn::Sub needs a string (use Fn::Join"),
        ("!Sub [a, b, c]", "Fn::Sub takes a list of 2 arguments [string, {variables}], got 3"),
    ],
)  # fmt: skip
def test_sub_errors(value: str, message: str) -> None:
    assert message in error(model_with(f"ModelDataUrl: {value}\n"))


def test_find_in_map() -> None:
    head = """\
Parameters:
  Stage: {Type: String, Default: prod}
Mappings:
  Images:
    eu-west-1: {Account: "141502667606", Tags: [a, b]}
  Stages:
    prod: {Count: 2}
"""
    config = CONFIG.replace(
        "InitialInstanceCount: 1", "InitialInstanceCount: !FindInMap [Stages, !Ref Stage, Count]"
    )
    model = (
        MODEL + "        Image: !Sub\n          - '${A}.dkr.ecr.${AWS::Region}.amazonaws.com/x:1'\n"
    )
    model += "          - A: !FindInMap [Images, !Ref 'AWS::Region', Account]\n"
    model += (
        "        Environment:\n          TAGS: !Join [',', !FindInMap [Images, eu-west-1, Tags]]\n"
    )
    stack = compiled(with_resources(model, config, head=head))
    assert container(stack)["Image"] == "141502667606.dkr.ecr.eu-west-1.amazonaws.com/x:1"
    assert container(stack)["Environment"] == {"TAGS": "a,b"}
    assert variant(stack)["InitialInstanceCount"] == 2
    missing = compiled_error_for(head, "!FindInMap [Images, us-east-1, Account]")
    assert missing == (
        "t.yaml:13: Resources.Model.Properties.PrimaryContainer.ModelDataUrl.Fn::FindInMap: "
        "Mappings.Images has no key 'us-east-1' (keys: eu-west-1)"
    )
    assert compiled_error_for(head, "!FindInMap [Images, eu-west-1, Acount]").endswith(
        "Mappings.Images.eu-west-1 has no key 'Acount' (keys: Account, Tags)"
    )
    assert compiled_error_for(head, "!FindInMap [Imagez, eu-west-1, Account]").endswith(
        "no mapping named 'Imagez' in Mappings"
    )


def compiled_error_for(head: str, url: str) -> str:
    return error(model_with(f"ModelDataUrl: {url}\n", head=head))


def test_find_in_map_with_two_arguments_names_the_resource_and_line() -> None:
    head = "Mappings:\n  Images:\n    eu-west-1: {Uri: s3://b/m.tar.gz}\n"
    assert compiled_error_for(head, "!FindInMap [Images, eu-west-1]") == (
        "t.yaml:9: Resources.Model.Properties.PrimaryContainer.ModelDataUrl.Fn::FindInMap: "
        "Fn::FindInMap takes a list of 3 arguments [MapName, TopLevelKey, SecondLevelKey], "
        "got 2 arguments"
    )


CONDITIONS = """\
Parameters:
  Stage: {Type: String, Default: prod}
  Capture: {Type: String, Default: "false"}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsDev: !Not [!Condition IsProd]
  CaptureOn: !Equals [true, !Ref Capture]
  ProdAndCapture: !And [!Condition IsProd, !Condition CaptureOn]
  ProdOrCapture: !Or [!Condition IsProd, !Condition CaptureOn, !Equals [a, b]]
  Nested: !And [!Or [!Condition IsDev, !Condition IsProd], !Not [!Equals [!Ref Stage, x]]]
"""


def test_conditions_and_fn_if() -> None:
    env = """\
Environment:
  PROD: !If [IsProd, "yes", "no"]
  DEV: !If [IsDev, "yes", "no"]
  BOTH: !If [ProdAndCapture, "yes", "no"]
  EITHER: !If [ProdOrCapture, "yes", "no"]
  NESTED: !If [Nested, "yes", "no"]
  GONE: !If [IsDev, "here", !Ref AWS::NoValue]
"""
    stack = compiled(model_with("ModelDataUrl: s3://b/m.tar.gz\n" + env, head=CONDITIONS))
    assert container(stack)["Environment"] == {
        "PROD": "yes",
        "DEV": "no",
        "BOTH": "no",
        "EITHER": "yes",
        "NESTED": "yes",
    }
    stack = compiled(
        model_with("ModelDataUrl: s3://b/m.tar.gz\n" + env, head=CONDITIONS),
        {"Stage": "dev", "Capture": "true"},
    )
    assert container(stack)["Environment"]["GONE"] == "here"
    assert container(stack)["Environment"]["BOTH"] == "no"
    assert container(stack)["Environment"]["EITHER"] == "yes"


def test_fn_if_with_whole_maps_and_novalue_in_lists() -> None:
    config = (
        CONFIG
        + """\
        - !If
          - IsProd
          - VariantName: canary
            ModelName: !GetAtt Model.ModelName
            InitialInstanceCount: 1
            InstanceType: ml.m5.large
          - !Ref AWS::NoValue
      DataCaptureConfig: !If
        - IsProd
        - {EnableCapture: true, InitialSamplingPercentage: 10, DestinationS3Uri: s3://b/c,
           CaptureOptions: [{CaptureMode: Input}]}
        - !Ref AWS::NoValue
"""
    )
    text = with_resources(MODEL, config, head=CONDITIONS)
    prod = compiled(text)
    assert [v["VariantName"] for v in prod.resources[1].body["ProductionVariants"]] == [
        "main",
        "canary",
    ]
    assert prod.resources[1].body["DataCaptureConfig"]["InitialSamplingPercentage"] == 10
    dev = compiled(text, {"Stage": "dev"})
    assert [v["VariantName"] for v in dev.resources[1].body["ProductionVariants"]] == ["main"]
    assert "DataCaptureConfig" not in dev.resources[1].body


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ("  A: !Equals [a]\n", "t.yaml:2: Conditions.A.Fn::Equals: Fn::Equals takes a list of 2 "
                               "arguments [value, value], got 1 arguments"),
        ("  A: !And [!Equals [a, a]]\n", "Fn::And takes a list of 2 or 3 or 4 or 5 or 6 or 7 or "
                                         "8 or 9 or 10 arguments [condition, ...], got 1"),
        ("  A: !Not [!Equals [a, a], !Equals [a, a]]\n", "Fn::Not takes a list of 1 arguments"),
        ("  A: !Ref Stage\n", "t.yaml:2: Conditions.A: a condition is Fn::Equals, Fn::And, "
                              "Fn::Or, Fn::Not or {Condition: Name}"),
        ("  A: !Condition B\n  B: !Not [!Condition A]\n",
         "t.yaml:2: Conditions.A: circular condition A -> B -> A"),
        ("  A: !Condition Nope\n", "t.yaml:2: Conditions.A.Condition: no condition named 'Nope'"),
        ("  A: !And [!Condition A, !Equals [a, a]]\n", "circular condition A -> A"),
    ],
)  # fmt: skip
def test_condition_errors(conditions: str, message: str) -> None:
    text = with_resources(MODEL, head="Conditions:\n" + conditions)
    assert message in error(text)


def test_condition_functions_belong_to_the_conditions_section() -> None:
    message = compiled_error_for("", "!Equals [a, b]")
    assert message == (
        "t.yaml:6: Resources.Model.Properties.PrimaryContainer.ModelDataUrl.Fn::Equals: "
        "Fn::Equals is a condition function: declare the condition in Conditions and use its "
        "name in Fn::If"
    )
    assert compiled_error_for("", "!If [Nope, a, b]").endswith(
        "ModelDataUrl.Fn::If[0]: no condition named 'Nope' in Conditions"
    )


def test_split_join_select_base64_getazs_length_tojsonstring() -> None:
    env = """\
Environment:
  SPLIT_SELECT: !Select [2, !Split [",", "a,b,c"]]
  JOIN: !Join ["", [a, 1, true]]
  SELECT_STRING_INDEX: !Select ["1", [x, y]]
  BASE64: !Base64 hello
  AZ: !Select [0, !GetAZs ""]
  AZ_OF: !Join [",", !GetAZs us-east-1]
  LENGTH: !Join ["", [!Length [a, b, c]]]
  JSON: !ToJsonString {a: [1, "b"]}
"""
    stack = compiled(model_with("ModelDataUrl: s3://b/m.tar.gz\n" + env))
    assert container(stack)["Environment"] == {
        "SPLIT_SELECT": "c",
        "JOIN": "a1true",
        "SELECT_STRING_INDEX": "y",
        "BASE64": base64.b64encode(b"hello").decode(),
        "AZ": "eu-west-1a",
        "AZ_OF": "us-east-1a,us-east-1b,us-east-1c",
        "LENGTH": "3",
        "JSON": '{"a":[1,"b"]}',
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!Select [3, [a, b]]", "Fn::Select index 3 is out of range: the list has 2 items"),
        ("!Select [x, [a, b]]", "Fn::Select's index must be a whole number, not 'x'"),
        ("!Select [0, abc]", "Fn::Select needs a list to pick from, got a string"),
        ("!Join [',', [a, [b]]]", "ModelDataUrl.Fn::Join[1][1]: Fn::Join's list holds a list, "
                                  "not a string"),
        ("!Join [',', a, b]", "Fn::Join takes a list of 2 arguments [delimiter, [values]], got 3"),
        ("!Split ['', abc]", "Fn::Split's delimiter must be a non-empty string"),
        ("!Base64 [a]", "Fn::Base64's argument must be a string, got a list"),
        ("!Length abc", "Fn::Length takes a list, not a string"),
        ("{'Fn::Sbu': x}", "t.yaml:6: Resources.Model.Properties.PrimaryContainer.ModelDataUrl"
                           ".Fn::Sbu: unknown intrinsic function Fn::Sbu (known: Fn::And, "),
        ("{'Fn::ImportValue': x}", "Fn::ImportValue imports values exported by other stacks; "
                                   "pier cannot evaluate it here"),
        ("{'Fn::Cidr': [a, 1, 2]}", "Fn::Cidr computes VPC address blocks"),
        ("{Ref: x, Other: 1}", "ModelDataUrl.Ref: Ref must be the only key of its mapping"),
        ("!Ref [a]", "Ref takes the name of a parameter or resource, not a list"),
        ("!Ref AWS::Regoin", "unknown pseudo parameter AWS::Regoin (known: AWS::AccountId, "),
        ("!GetAtt [Other]", "Fn::GetAtt takes a list of 2 arguments [LogicalId, Attribute], got 1"),
        ("!If [A, b]", "Fn::If takes a list of 3 arguments [ConditionName, value if true, value "
                       "if false], got 2"),
    ],
)  # fmt: skip
def test_intrinsic_errors(value: str, message: str) -> None:
    assert message in error(model_with(f"ModelDataUrl: {value}\n"))


def test_an_unknown_intrinsic_in_a_skipped_resource_is_still_an_error() -> None:
    role = "  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: {'Fn::Foo': 1}\n"
    assert error(with_resources(MODEL, role)).startswith(
        "t.yaml:10: Resources.Role.Properties.RoleName.Fn::Foo: unknown intrinsic function"
    )
    tolerated = role.replace("{'Fn::Foo': 1}", "{'Fn::ImportValue': shared-role}")
    assert compiled(with_resources(MODEL, tolerated)).skipped[0].logical_id == "Role"


# ---------------------------------------------------------------------------------- template


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Resource: {}\n", "t.yaml:1: Resource: unknown template section (known: "),
        ("Description: x\n", "t.yaml:1: Resources: the template must declare at least one "),
        ("Resources:\n  My_Model: {Type: AWS::SageMaker::Model}\n",
         "t.yaml:2: Resources.My_Model: a logical ID must be alphanumeric"),
        ("Resources:\n  M: {Type: AWS::SageMaker::Model, Propertes: {}}\n",
         "t.yaml:2: Resources.M.Propertes: unknown resource attribute"),
        ("Resources:\n  M: {Type: SageMaker::Model}\n",
         "t.yaml:2: Resources.M.Type: 'SageMaker::Model' is not a resource type"),
        ("Resources:\n  M: {Properties: {}}\n", "t.yaml:2: Resources.M.Type: Type is required"),
        ("Resources:\n  M: {Type: AWS::SageMaker::Model, Condition: Nope}\n",
         "t.yaml:2: Resources.M.Condition: no condition named 'Nope' in Conditions"),
        ("Resources:\n  M: {Type: AWS::SageMaker::Model, DependsOn: Nope}\n",
         "t.yaml:2: Resources.M.DependsOn: 'Nope' is not a resource of this template"),
        ("Transform: AWS::Include\nResources:\n  M: {Type: AWS::SNS::Topic}\n",
         "t.yaml:1: Transform: pier cannot run the transform 'AWS::Include'"),
        ("Mappings:\n  M: {a: 1}\nResources:\n  R: {Type: AWS::SNS::Topic}\n",
         "t.yaml:2: Mappings.M.a: must be a mapping of names to values"),
        ("Resources:\n  R: {Type: AWS::SNS::Topic}\nOutputs:\n  O: {Description: x}\n",
         "t.yaml:4: Outputs.O: an output needs a Value"),
        ("Parameters:\n  R: {Type: String, Default: x}\nResources:\n  R: {Type: AWS::SNS::Topic}\n",
         "t.yaml:4: Resources.R: a resource and a parameter share this name"),
        ("- a\n", "t.yaml: a template is a mapping of sections"),
    ],
)  # fmt: skip
def test_template_structure_errors(text: str, message: str) -> None:
    assert error(text).startswith(message)


def test_serverless_transform_is_a_note_and_its_resources_are_skipped() -> None:
    text = (
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        + MODEL
        + ("  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {Handler: a.b}\n")
    )
    stack = compiled(text)
    assert stack.notes[0] == (
        "Transform AWS::Serverless-2016-10-31: its AWS::Serverless::* resources, and those SAM "
        "would add for them, are skipped"
    )
    assert [(s.logical_id, s.reason) for s in stack.skipped] == [
        ("Fn", "SAM resources (Lambda, API Gateway) do not run in pier"),
        ("FnRole", "made by SAM for Fn: IAM: pier's instances run with the platform's own "
         "permissions"),
    ]  # fmt: skip


def test_skipped_types_are_listed_with_a_reason_each() -> None:
    others = """\
  Role:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
  Target:
    Type: AWS::ApplicationAutoScaling::ScalableTarget
    Properties: {ResourceId: !Sub "endpoint/${Endpoint.EndpointName}/variant/main"}
  Alarm: {Type: AWS::CloudWatch::Alarm}
  Function: {Type: AWS::Lambda::Function}
  Api: {Type: AWS::ApiGateway::RestApi}
  Monitor: {Type: AWS::SageMaker::MonitoringSchedule}
  Custom: {Type: Custom::Thing}
  Queue: {Type: AWS::SQS::Queue}
"""
    model = MODEL + "      ExecutionRoleArn: !GetAtt Role.Arn\n"
    stack = compiled(with_resources(model, CONFIG, ENDPOINT, others))
    reasons = {s.logical_id: (s.type, s.reason) for s in stack.skipped}
    assert list(reasons) == [  # in template order
        *("Role", "Target", "Alarm", "Function", "Api", "Monitor", "Custom", "Queue")
    ]
    assert reasons["Role"][1] == "IAM: pier's instances run with the platform's own permissions"
    assert reasons["Target"][1].startswith("autoscaling: each variant keeps its instance count")
    assert reasons["Alarm"][1] == (  # alarms run on pier: never "later"
        "CloudWatch: not created from templates; pier runs the alarms you put with its "
        "cloudwatch API (boto3, docs/monitoring.md)"
    )
    assert reasons["Function"][1] == "Lambda functions do not run in pier"
    assert reasons["Api"][1].startswith("API Gateway")
    assert reasons["Monitor"][1] == "model monitoring schedules are not run by pier yet"
    assert reasons["Custom"][1] == "custom resources run Lambda code pier cannot run"
    assert reasons["Queue"][1] == (
        "pier runs AWS::SageMaker::Model, EndpointConfig and Endpoint only"
    )
    model_body = stack.resources[0].body
    assert model_body["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/shop-Role"


def test_resource_conditions() -> None:
    head = CONDITIONS
    canary = MODEL.replace("  Model:", "  Canary:").replace(
        "Properties:", "Condition: IsDev\n    Properties:"
    )
    stack = compiled(with_resources(MODEL, canary, head=head))
    assert [r.logical_id for r in stack.resources] == ["Model"]
    assert stack.inactive == [("Canary", "IsDev")]
    dev = compiled(with_resources(MODEL, canary, head=head), {"Stage": "dev"})
    assert [r.logical_id for r in dev.resources] == ["Model", "Canary"]
    uses = CONFIG.replace("Model.ModelName", "Canary.ModelName")
    assert error(with_resources(MODEL, canary, uses, head=head)) == (
        "t.yaml:28: Resources.Config.Properties.ProductionVariants[0].ModelName.Fn::GetAtt: "
        "refers to Canary, which is not created: its Condition IsDev is false"
    )


def test_outputs() -> None:
    head = CONDITIONS
    outputs = """\
Outputs:
  Name:
    Description: the model
    Value: !GetAtt Model.ModelName
    Export: {Name: !Sub "${AWS::StackName}-model"}
  DevOnly:
    Condition: IsDev
    Value: dev
  Count: {Value: 3}
"""
    stack = compiled(with_resources(MODEL, head=head) + outputs)
    assert [(o.name, o.description, o.export) for o in stack.outputs] == [
        ("Name", "the model", "shop-model"),
        ("Count", None, None),
    ]
    assert stack.outputs[1].value == "3"
    bad = with_resources(MODEL) + "Outputs:\n  Azs: {Value: !GetAZs ''}\n"
    assert error(bad) == (
        "t.yaml:8: Outputs.Azs.Value: an output's value must be a string (use Fn::Join for a list)"
    )
    assert error(with_resources(MODEL) + "Outputs:\n  X: {Value: !Ref Nope}\n") == (
        "t.yaml:8: Outputs.X.Value.Ref: refers to 'Nope': no parameter, pseudo parameter or "
        "resource of that name"
    )


# ------------------------------------------------------------------------------- dependencies


def test_creation_order_follows_references_depends_on_and_kind() -> None:
    # Written backwards: the endpoint first, the model last.
    text = with_resources(ENDPOINT, CONFIG, MODEL)
    assert [r.logical_id for r in compiled(text).resources] == ["Model", "Config", "Endpoint"]
    # Without references, the kind decides (models, then configurations, then endpoints).
    literal = with_resources(
        ENDPOINT.replace("!GetAtt Config.EndpointConfigName", "cfg"),
        CONFIG.replace("  Config:", "  Config:\n    DependsOn: Model")
        .replace("!GetAtt Model.ModelName", "m")
        .replace("ProductionVariants:", "EndpointConfigName: cfg\n      ProductionVariants:"),
        MODEL.replace("Properties:", "Properties:\n      ModelName: m"),
    )
    assert [r.logical_id for r in compiled(literal).resources] == ["Model", "Config", "Endpoint"]


def test_depends_on_orders_among_equals() -> None:
    second = MODEL.replace("  Model:", "  Second:")
    first = MODEL.replace("  Model:", "  First:")
    text = with_resources(second.replace("  Second:", "  Second:\n    DependsOn: [First]"), first)
    assert [r.logical_id for r in compiled(text).resources] == ["First", "Second"]


def test_cycles_name_their_members_only() -> None:
    text = textwrap.dedent("""\
        Resources:
          A: {Type: AWS::SNS::Topic, DependsOn: B}
          B: {Type: AWS::SNS::Topic, Properties: {TopicName: !GetAtt C.TopicName}}
          C: {Type: AWS::SNS::Topic, Properties: {TopicName: !Sub "${A}"}}
          D: {Type: AWS::SNS::Topic, DependsOn: [A]}
          E: {Type: AWS::SNS::Topic}
    """)
    template = template_of(text)
    graph = check_references(template)
    assert (graph["A"], graph["D"], graph["E"]) == ({"B"}, {"A"}, set())
    # Among resources pier skips only, a cycle is in nobody's way: a note.
    assert compiled(text).notes == [
        "Resources: circular dependency between resources [A, B, C], all of which pier skips: "
        "not in its way (CloudFormation would refuse it unless a transform removes it)"
    ]
    through_a_model = text.replace('{TopicName: !Sub "${A}"}', "{TopicName: !Ref M}") + (
        "  M:\n    Type: AWS::SageMaker::Model\n    Properties:\n      ExecutionRoleArn: !Ref A\n"
        "      PrimaryContainer: {ModelDataUrl: s3://b/m.tar.gz}\n"
    )
    template = template_of(through_a_model)
    with pytest.raises(TemplateError) as excinfo:
        order(template, check_references(template), lambda _: 0)
    assert excinfo.value.message == (
        "t.yaml:2: Resources: circular dependency between resources [A, B, C, M]"
    )
    self_ref = "Resources:\n  A: {Type: AWS::SNS::Topic, Properties: {Name: !Ref A}}\n"
    assert error(self_ref) == "t.yaml:2: Resources.A: the resource refers to itself"


# -------------------------------------------------------------------------------------- names


def test_generated_names_are_stable_and_change_with_the_request() -> None:
    text = with_resources(MODEL, CONFIG, ENDPOINT)
    first, again = compiled(text), compiled(text)
    assert [r.name for r in first.resources] == [r.name for r in again.resources]
    model, config, endpoint = first.resources
    assert model.name == f"shop-Model-{model.digest[:8]}"
    assert config.name == f"shop-Config-{config.digest[:8]}"
    assert endpoint.name.startswith("shop-Endpoint-")
    assert not any(r.custom_name for r in first.resources)
    changed = compiled(text.replace("s3://bucket/model.tar.gz", "s3://bucket/v2.tar.gz"))
    assert changed.resources[0].name != model.name  # replaced
    assert changed.resources[1].name != config.name  # its ModelName changed: replaced too
    assert changed.resources[2].name == endpoint.name  # updated in place, same name
    tagged = compiled(
        text.replace("ml.m5.large\n", "ml.m5.large\n      Tags: [{Key: a, Value: b}]\n")
    )
    assert tagged.resources[1].name == config.name  # tags change in place


def test_long_stack_names_still_give_sagemaker_names() -> None:
    import re

    pseudo = Pseudo("eu-west-1", "123456789012", "a-very-long-stack-name-" + "x" * 60)
    stack = compiled(with_resources(MODEL, CONFIG, ENDPOINT), pseudo=pseudo)
    for planned in stack.resources:
        assert len(planned.name) <= 63
        assert re.fullmatch(SAGEMAKER_NAME, planned.name), planned.name
    assert generated_name("s", "Logical", "0123456789abcdef") == "s-Logical-01234567"
    with pytest.raises(TemplateError, match="'1-bad' is not a valid stack name"):
        compiled(with_resources(MODEL), pseudo=Pseudo("r", "123456789012", "1-bad"))


def test_two_resources_with_one_name() -> None:
    named = MODEL.replace("Properties:", "Properties:\n      ModelName: same")
    text = with_resources(named, named.replace("  Model:", "  Other:"))
    assert error(text) == "t.yaml:8: Resources.Other: Model already names its model 'same'"


# ------------------------------------------------------------------------------------ mapping


def test_image_and_model_mapping(tmp_path: Path) -> None:
    ecr = "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn"
    srv = tmp_path / "srv"
    (srv / "models" / "v1" / "model.tar.gz").parent.mkdir(parents=True)
    (srv / "models" / "v1" / "model.tar.gz").write_bytes(b"")
    locations = LocationMap(
        images={ecr: "pier/mlflow-pyfunc"},
        models={
            "s3://bucket/models": f"{srv}/models",
            "s3://bucket/models/special": f"{srv}/special/",
            "s3://bucket/exact.tar.gz": "models:/shop@champion",
        },
    )
    assert locations.image(f"{ecr}:1.2-1") == "pier/mlflow-pyfunc"
    assert locations.image(f"{ecr}@sha256:abc") == "pier/mlflow-pyfunc"
    assert locations.image(f"{ecr}-other:1") is None
    assert locations.model("s3://bucket/models/v1/model.tar.gz") == f"{srv}/models/v1/model.tar.gz"
    assert locations.model("s3://bucket/models/special/a.tar.gz") == f"{srv}/special/a.tar.gz"
    assert locations.model("s3://bucket/modelsX/a.tar.gz") is None
    assert locations.model("s3://bucket/exact.tar.gz") == "models:/shop@champion"
    tagged = LocationMap(images={f"{ecr}:1.2-1": "pier/mlflow-pyfunc"})
    assert tagged.image(f"{ecr}:1.2-2") is None

    lines = f"Image: {ecr}:1.2-1\nModelDataUrl: s3://bucket/models/v1/model.tar.gz\n"
    fresh = LocationMap(locations.images, locations.models)  # none used yet
    stack = compiled(model_with(lines), locations=fresh)
    assert container(stack) == {
        "Image": "pier/mlflow-pyfunc",
        "ModelDataUrl": f"{srv}/models/v1/model.tar.gz",
    }
    assert stack.notes == [  # the entries no Model used
        "warning: --map-model s3://bucket/models/special=... matches no model data or model "
        "package of the template (nothing is mapped by it)",
        "warning: --map-model s3://bucket/exact.tar.gz=... matches no model data or model "
        "package of the template (nothing is mapped by it)",
    ]
    unmapped = compiled(model_with(lines))
    assert unmapped.notes == [
        f"Model: image {ecr}:1.2-1 is not mapped (--map-image {ecr}:1.2-1=pier/mlflow-pyfunc "
        "runs the model with pier's MLflow server)",
        "Model: model data s3://bucket/models/v1/model.tar.gz is not mapped (--map-model): the "
        "platform downloads it from S3 with its AWS credentials",
    ]
    # A different mapping is a different model: replaced on the next apply.
    other = compiled(model_with(lines), locations=LocationMap(models={"s3://bucket": str(srv)}))
    assert other.resources[0].name != stack.resources[0].name


def test_model_data_source_is_mapped_too(tmp_path: Path) -> None:
    lines = (
        "ModelDataSource:\n"
        "  S3DataSource: {S3Uri: s3://b/m/, S3DataType: S3Prefix, CompressionType: None}\n"
    )
    stack = compiled(model_with(lines), locations=LocationMap(models={"s3://b/m": str(tmp_path)}))
    assert container(stack)["ModelDataSource"]["S3DataSource"]["S3Uri"] == f"{tmp_path}/"


def test_mapping_options_and_file(tmp_path: Path) -> None:
    assert parse_pairs(["s3://a=models/x"], "--map-model", tmp_path, local=True) == {
        "s3://a": str(tmp_path / "models" / "x")
    }
    assert parse_pairs(["s3://a=models:/m@c"], "--map-model", tmp_path, local=True) == {
        "s3://a": "models:/m@c"
    }
    with pytest.raises(TemplateError, match=r"--map-image 'nope': expected URI=IMAGE"):
        parse_pairs(["nope"], "--map-image", tmp_path, local=False)
    path = tmp_path / "mapping.yaml"
    path.write_text("images:\n  repo: pier/mlflow-pyfunc\nmodels:\n  s3://b/m: ./local\n")
    assert read_mapping(path) == LocationMap(
        {"repo": "pier/mlflow-pyfunc"}, {"s3://b/m": str(tmp_path / "local")}
    )
    path.write_text("images: {}\nmodel: {}\n")
    with pytest.raises(TemplateError, match=r"mapping\.yaml:2: model: unknown section"):
        read_mapping(path)
    path.write_text("models:\n  s3://b: [x]\n")
    with pytest.raises(TemplateError, match=r"mapping\.yaml:2: models\.s3://b: must be a string"):
        read_mapping(path)


def test_the_example_template_compiles() -> None:
    from pier.iac.source import read

    stack = compile_stack(
        parse(read(EXAMPLE, cfn_tags=True), str(EXAMPLE)), {}, Pseudo("us-east-1", "0" * 12, "ex")
    )
    assert [r.logical_id for r in stack.resources] == ["Model", "EndpointConfig", "Endpoint"]
    assert [s.logical_id for s in stack.skipped] == [
        "ExecutionRole",
        "ScalableTarget",
        "LatencyAlarm",
    ]
    assert stack.inactive == [("ScalingPolicy", "IsProd")]
    assert {o.name: o.value for o in stack.outputs}["EndpointName"] == "ex-dev"


def test_redact() -> None:
    assert redact("token=s3cr3t!", ["s3cr3t"]) == "token=****!"
    assert redact("1", ["1"]) == "****"
    assert redact("a1b", ["1"]) == "a1b"  # short secrets only as whole values


# ------------------------------------------------------------------------- the plan (moto)


@pytest.fixture(scope="module")
def sagemaker() -> Iterator[Any]:
    """A SageMaker API served by moto's stand-alone server, and a boto3 client of it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "sagemaker",
        endpoint_url=f"http://{host}:{port}",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    yield client
    server.stop()


@pytest.fixture
def stack_name(request: pytest.FixtureRequest) -> str:
    return "t" + str(abs(hash(request.node.name)))[:10]


class Steps(Reporter):
    def __init__(self) -> None:
        self.steps: list[str] = []

    def step(self, text: str) -> None:
        self.steps.append(text)


PLAN_TEMPLATE = with_resources(
    MODEL.replace(
        "Properties:", "Properties:\n      ExecutionRoleArn: arn:aws:iam::123456789012:role/r"
    ).replace(
        "ModelDataUrl: s3://bucket/model.tar.gz", "ModelDataUrl: !Ref Data\n        Image: img"
    ),
    CONFIG,
    ENDPOINT,
    head="Parameters:\n  Data: {Type: String, Default: s3://bucket/v1.tar.gz}\n",
)


def stack_of(name: str, text: str = PLAN_TEMPLATE, **params: str) -> Stack:
    return compiled(text, params, pseudo=Pseudo("eu-west-1", "123456789012", name))


def actions(the_plan: engine.Plan) -> list[tuple[str, str]]:
    return [(str(c.action), c.logical_id) for c in the_plan.changes]


def test_plan_create_apply_no_change(sagemaker: Any, stack_name: str) -> None:
    stack = stack_of(stack_name)
    first = engine.plan(sagemaker, stack)
    assert actions(first) == [("create", "Model"), ("create", "Config"), ("create", "Endpoint")]
    steps = Steps()
    execute.apply(sagemaker, first, steps)
    assert steps.steps[0] == f"created model {stack.resources[0].name}"
    again = engine.plan(sagemaker, stack_of(stack_name))
    assert actions(again) == [
        ("no change", "Model"),
        ("no change", "Config"),
        ("no change", "Endpoint"),
    ]
    assert not again.has_changes
    found = read_platform(sagemaker, stack_name)
    assert sorted((e.kind.short, e.logical_id) for e in found.stack) == [
        ("Endpoint", "Endpoint"),
        ("EndpointConfig", "Config"),
        ("Model", "Model"),
    ]


def test_plan_replacement_and_endpoint_update(sagemaker: Any, stack_name: str) -> None:
    execute.apply(sagemaker, engine.plan(sagemaker, stack_of(stack_name)), Steps())
    before = {e.logical_id: e.name for e in read_platform(sagemaker, stack_name).stack}
    changed = engine.plan(sagemaker, stack_of(stack_name, Data="s3://bucket/v2.tar.gz"))
    assert actions(changed) == [
        ("replace", "Model"),
        ("replace", "Config"),
        ("update", "Endpoint"),
        ("delete", "Model"),
        ("delete", "Config"),
    ]
    model, config, endpoint, old_model, old_config = changed.changes
    assert "PrimaryContainer.ModelDataUrl: s3://bucket/v1.tar.gz -> s3://bucket/v2.tar.gz" in (
        model.details
    )
    assert f"ProductionVariants[0].ModelName: {before['Model']} -> {model.name}" in config.details
    assert endpoint.details == [f"EndpointConfigName: {before['Config']} -> {config.name}"]
    assert (old_model.name, old_model.cleanup) == (before["Model"], True)
    assert old_config.details == [f"replaced by {config.name}"]
    as_json = changed.to_json()
    assert as_json["changes"][0]["replaces"] == before["Model"]
    assert json.loads(json.dumps(as_json)) == as_json
    # Nothing was changed by planning.
    assert {e.logical_id: e.name for e in read_platform(sagemaker, stack_name).stack} == before


def test_a_failed_update_rolls_back_what_the_apply_created(sagemaker: Any, stack_name: str) -> None:
    """moto has no UpdateEndpoint: the update fails after the new model and configuration were
    created; both are deleted again and the stack is as it was."""
    execute.apply(sagemaker, engine.plan(sagemaker, stack_of(stack_name)), Steps())
    before = sorted(e.name for e in read_platform(sagemaker, stack_name).stack)
    steps = Steps()
    with pytest.raises(ApplyError) as excinfo:
        execute.apply(
            sagemaker, engine.plan(sagemaker, stack_of(stack_name, Data="s3://b/v3.tar.gz")), steps
        )
    message = excinfo.value.message
    assert message.startswith(f"Resources.Endpoint: update of endpoint {stack_name}-Endpoint-")
    assert "Rolled back: deleted endpoint configuration" in message
    assert steps.steps[-2].startswith("rolled back: deleted endpoint configuration")
    assert steps.steps[-1].startswith("rolled back: deleted model")
    assert sorted(e.name for e in read_platform(sagemaker, stack_name).stack) == before


def test_plan_custom_named_replacement_is_refused(sagemaker: Any, stack_name: str) -> None:
    named = PLAN_TEMPLATE.replace(
        "      ExecutionRoleArn", f"      ModelName: {stack_name}-m\n      ExecutionRoleArn"
    )
    execute.apply(sagemaker, engine.plan(sagemaker, stack_of(stack_name, named)), Steps())
    with pytest.raises(TemplateError) as excinfo:
        engine.plan(sagemaker, stack_of(stack_name, named, Data="s3://bucket/v2.tar.gz"))
    assert excinfo.value.message == (
        f"{at(named, '  Model:')}: Resources.Model: CloudFormation cannot update a stack when a "
        f"custom-named resource requires replacing. Rename {stack_name}-m and update the "
        "stack again."
    )
    renamed = named.replace(f"{stack_name}-m", f"{stack_name}-m2")
    plan = engine.plan(sagemaker, stack_of(stack_name, renamed, Data="s3://bucket/v2.tar.gz"))
    assert actions(plan)[0] == ("replace", "Model")
    assert plan.changes[0].details[0] == f"ModelName: {stack_name}-m -> {stack_name}-m2"


def test_plan_tags_and_removed_resources(sagemaker: Any, stack_name: str) -> None:
    execute.apply(sagemaker, engine.plan(sagemaker, stack_of(stack_name)), Steps())
    tagged = PLAN_TEMPLATE.replace(
        "      EndpointConfigName: !GetAtt",
        "      Tags: [{Key: team, Value: ml}]\n      EndpointConfigName: !GetAtt",
    )
    plan = engine.plan(sagemaker, stack_of(stack_name, tagged))
    assert actions(plan) == [
        ("no change", "Model"),
        ("no change", "Config"),
        ("update tags", "Endpoint"),
    ]
    assert plan.changes[2].details == ["Tags.team: (none) -> ml"]
    execute.apply(sagemaker, plan, Steps())
    assert not engine.plan(sagemaker, stack_of(stack_name, tagged)).has_changes
    without_endpoint = PLAN_TEMPLATE.split("  Endpoint:\n")[0]
    plan = engine.plan(sagemaker, stack_of(stack_name, without_endpoint))
    assert actions(plan) == [
        ("no change", "Model"),
        ("no change", "Config"),
        ("delete", "Endpoint"),
    ]
    assert plan.changes[2].details == ["no longer in the template"]


def test_plan_refuses_names_taken_outside_the_stack(sagemaker: Any, stack_name: str) -> None:
    sagemaker.create_model(
        ModelName=f"{stack_name}-taken",
        PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
    )
    named = PLAN_TEMPLATE.replace(
        "      ExecutionRoleArn", f"      ModelName: {stack_name}-taken\n      ExecutionRoleArn"
    )
    with pytest.raises(TemplateError) as excinfo:
        engine.plan(sagemaker, stack_of(stack_name, named))
    assert excinfo.value.message == (
        f"{at(named, '  Model:')}: Resources.Model: a model named '{stack_name}-taken' already "
        "exists and "
        "belongs to no stack (created by hand); rename the resource or delete that model"
    )


def test_plan_checks_names_that_templates_write_literally(sagemaker: Any, stack_name: str) -> None:
    literal = PLAN_TEMPLATE.replace("!GetAtt Model.ModelName", "nowhere-to-be-found")
    with pytest.raises(TemplateError) as excinfo:
        engine.plan(sagemaker, stack_of(stack_name, literal))
    assert excinfo.value.message == (
        f"{at(literal, 'ModelName: nowhere')}: Resources.Config.Properties.ProductionVariants[0]"
        ".ModelName: the model "
        "'nowhere-to-be-found' does not exist (neither in the template nor on the platform)"
    )


def test_delete_stack(sagemaker: Any, stack_name: str) -> None:
    execute.apply(sagemaker, engine.plan(sagemaker, stack_of(stack_name)), Steps())
    steps = Steps()
    deleted = execute.delete_stack(sagemaker, stack_name, steps)
    assert [e.kind.short for e in deleted] == ["Endpoint", "EndpointConfig", "Model"]
    assert read_platform(sagemaker, stack_name).stack == []
    assert execute.delete_stack(sagemaker, stack_name, steps) == []


# ---------------------------------------------------------------------------------- the CLI

runner = CliRunner()


def test_cli_invalid_files_exit_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(model_with("ModelDataUrl: {'Fn::Sbu': x}\n"))
    result = runner.invoke(app, ["plan", "-f", str(path), "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"error: {path}:6: Resources.Model.Properties.PrimaryContainer.ModelDataUrl.Fn::Sbu: "
        "unknown intrinsic function Fn::Sbu"
    )
    assert "Traceback" not in result.output
    for args, message in [
        (["-p", "Nope"], "error: --parameter 'Nope': expected NAME=VALUE"),
        (["-p", "A=1", "-p", "A=2"], "error: --parameter A is given twice"),
        (["--map-model", "s3://x"], "error: --map-model 's3://x': expected S3URI=MODEL_URI"),
        (["--stack-name", "9lives"], "error: '9lives' is not a valid stack name"),
    ]:
        path.write_text(with_resources(MODEL))
        result = runner.invoke(app, ["apply", "-f", str(path), "--home", str(tmp_path), *args])
        assert (result.exit_code, result.output.splitlines()[0][: len(message)]) == (2, message)


def test_cli_needs_a_running_platform(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(with_resources(MODEL))
    result = runner.invoke(app, ["apply", "-f", str(path), "--home", str(tmp_path / "home")])
    assert result.exit_code == 1
    assert "pier is not running" in result.output


def test_plan_checks_shadow_variants_and_leaves_the_request_alone(
    sagemaker: Any, stack_name: str
) -> None:
    shadow = PLAN_TEMPLATE.replace(
        "          InstanceType: ml.m5.large\n",
        "          InstanceType: ml.m5.large\n"
        "      ShadowProductionVariants:\n"
        "        - VariantName: shadow\n"
        "          ModelName: no-such-model\n"
        "          InitialInstanceCount: 1\n"
        "          InstanceType: ml.m5.large\n",
        1,
    )
    stack = stack_of(stack_name, shadow)
    config = stack.get("Config")
    assert config is not None
    with pytest.raises(TemplateError) as excinfo:
        engine.plan(sagemaker, stack)
    assert excinfo.value.message == (
        f"{at(shadow, 'ModelName: no-such')}: Resources.Config.Properties"
        ".ShadowProductionVariants[0].ModelName: the model 'no-such-model' does not exist "
        "(neither in the template nor on the platform)"
    )
    assert [v["VariantName"] for v in config.body["ProductionVariants"]] == ["main"]


def test_plan_details_name_the_variant_that_was_added_or_removed() -> None:
    a = {"VariantName": "a", "InitialVariantWeight": 1.0, "ModelName": "m-a"}
    b = {"VariantName": "b", "InitialVariantWeight": 1.0, "ModelName": "m-b"}
    c = {"VariantName": "c", "InitialVariantWeight": 2.0, "ModelName": "m-c"}
    old = {"ProductionVariants": [a, b]}
    new = {"ProductionVariants": [{**a, "InitialVariantWeight": 3.0}, c, b]}
    details = engine._differences(old, new, engine.ENDPOINT_CONFIG)
    assert details == [
        "ProductionVariants[VariantName=a].InitialVariantWeight: 1.0 -> 3.0",
        f"ProductionVariants[VariantName=c]: added {c!r}",
    ]
    details = engine._differences(new, old, engine.ENDPOINT_CONFIG)
    assert details == [
        "ProductionVariants[VariantName=a].InitialVariantWeight: 3.0 -> 1.0",
        "ProductionVariants[VariantName=c]: removed",
    ]
