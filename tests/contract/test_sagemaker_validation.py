"""SageMaker control-API input validation against botocore's service model, with AWS's errors."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.loaders import Loader
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pier.contract import sagemaker
from pier.contract.aws_patterns import java_pattern, translate
from pier.contract.sagemaker import (
    SUPPORTED_OPERATIONS,
    operation_from_target,
    parse_body,
    pattern_coverage,
    serialize_output,
    validate_input,
)
from pier.errors import SerializationException, UnknownOperationException, ValidationException

MODEL = Loader().load_service_model("sagemaker", "service-2")
SHAPES: dict[str, Any] = MODEL["shapes"]
SERVICE = botocore.session.get_session().get_service_model("sagemaker")

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole-20240101"
ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/churn-prod"
TAGS = [{"Key": "team", "Value": "risk-models"}, {"Key": "cost-center", "Value": "ml 42"}]
INSTANCE_TYPES = ", ".join(SHAPES["ProductionVariantInstanceType"]["enum"])
NAME_PATTERN = "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"


def variant(name: str = "champion", **extra: Any) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": "churn-model-v3",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": 1.0,
        **extra,
    }


VALID: dict[str, list[dict[str, Any]]] = {
    "CreateModel": [
        {
            "ModelName": "churn-model-v3",
            "PrimaryContainer": {
                "Image": IMAGE,
                "ModelDataUrl": "s3://pier-models/churn/v3/model.tar.gz",
                "Environment": {
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "MLFLOW_MODEL_URI": "models:/churn@champion",
                },
                "Mode": "SingleModel",
            },
            "ExecutionRoleArn": ROLE,
            "Tags": TAGS,
            "EnableNetworkIsolation": False,
        },
        {
            "ModelName": "churn-pipeline",
            "Containers": [
                {
                    "ContainerHostname": "preprocess",
                    "Image": IMAGE,
                    "ModelDataSource": {
                        "S3DataSource": {
                            "S3Uri": "s3://pier-models/churn/preprocess/",
                            "S3DataType": "S3Prefix",
                            "CompressionType": "None",
                        }
                    },
                },
                {"ContainerHostname": "predict", "Image": IMAGE},
            ],
            "InferenceExecutionConfig": {"Mode": "Serial"},
            "VpcConfig": {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-1a"]},
        },
    ],
    "DescribeModel": [{"ModelName": "churn-model-v3"}],
    "ListModels": [
        {},
        {
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 50,
            "NameContains": "churn",
            "CreationTimeAfter": 1_700_000_000.5,
            "NextToken": "eyJvZmZzZXQiOiA1MH0=",
        },
    ],
    "DeleteModel": [{"ModelName": "churn-model-v3"}],
    "CreateEndpointConfig": [
        {
            "EndpointConfigName": "churn-ab-test",
            "ProductionVariants": [
                variant("champion", InitialInstanceCount=2, InitialVariantWeight=0.9),
                variant(
                    "challenger",
                    ModelName="churn-model-v4",
                    InitialVariantWeight=0.1,
                    ContainerStartupHealthCheckTimeoutInSeconds=600,
                ),
            ],
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": 20,
                "DestinationS3Uri": "s3://pier-capture/churn",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {
                    "CsvContentTypes": ["text/csv"],
                    "JsonContentTypes": ["application/json", "application/jsonlines"],
                },
            },
            "Tags": TAGS,
        },
        {
            "EndpointConfigName": "churn-serverless",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "churn-model-v3",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 20},
                }
            ],
        },
    ],
    "DescribeEndpointConfig": [{"EndpointConfigName": "churn-ab-test"}],
    "ListEndpointConfigs": [{"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 100}],
    "DeleteEndpointConfig": [{"EndpointConfigName": "churn-ab-test"}],
    "CreateEndpoint": [
        {"EndpointName": "churn-prod", "EndpointConfigName": "churn-ab-test", "Tags": TAGS}
    ],
    "DescribeEndpoint": [{"EndpointName": "churn-prod"}],
    "ListEndpoints": [
        {
            "StatusEquals": "InService",
            "SortBy": "CreationTime",
            "NameContains": "churn",
            "LastModifiedTimeBefore": 1_800_000_000,
        }
    ],
    "DeleteEndpoint": [{"EndpointName": "churn-prod"}],
    "UpdateEndpoint": [
        {"EndpointName": "churn-prod", "EndpointConfigName": "churn-ab-test-2"},
        {
            "EndpointName": "churn-prod",
            "EndpointConfigName": "churn-ab-test-2",
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DesiredWeight"}],
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 300,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    },
                    "TerminationWaitInSeconds": 120,
                    "MaximumExecutionTimeoutInSeconds": 1800,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "churn-prod 5xx"}]},
            },
        },
    ],
    "UpdateEndpointWeightsAndCapacities": [
        {
            "EndpointName": "churn-prod",
            "DesiredWeightsAndCapacities": [
                {"VariantName": "champion", "DesiredWeight": 0.5, "DesiredInstanceCount": 2},
                {"VariantName": "challenger", "DesiredWeight": 0.5},
            ],
        }
    ],
    "AddTags": [{"ResourceArn": ENDPOINT_ARN, "Tags": [*TAGS, {"Key": "owner", "Value": "Zoë"}]}],
    "ListTags": [{"ResourceArn": ENDPOINT_ARN, "MaxResults": 50, "NextToken": "page-2"}],
    "DeleteTags": [{"ResourceArn": ENDPOINT_ARN, "TagKeys": ["team", "cost-center"]}],
}
VALID_CASES = [(op, params) for op, cases in VALID.items() for params in cases]


def config(*variants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"EndpointConfigName": "churn-ab-test", "ProductionVariants": list(variants), **extra}


def one(error: str) -> str:
    return f"1 validation error detected: {error}"


def rejected(operation: str, params: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as caught:
        validate_input(operation, params)
    assert caught.value.code == "ValidationException"
    return caught.value.message


# ------------------------------------------------------------------------------ valid input


def test_every_supported_operation_has_valid_examples() -> None:
    assert set(VALID) == SUPPORTED_OPERATIONS
    assert len(SUPPORTED_OPERATIONS) == 17


@pytest.mark.parametrize(("operation", "params"), VALID_CASES)
def test_valid_requests_pass_unchanged(operation: str, params: dict[str, Any]) -> None:
    original = copy.deepcopy(params)
    assert validate_input(operation, params) == original
    assert params == original  # the caller's dict is not modified


def test_valid_requests_pass_through_the_wire_format() -> None:
    for operation, params in VALID_CASES:
        body = json.dumps(params).encode()
        assert validate_input(operation, parse_body(body)) == params


def test_unknown_and_null_members_are_dropped_like_aws() -> None:
    params = {"EndpointName": "churn-prod", "Surprise": {"x": 1}, "DeploymentConfig": None}
    assert validate_input("DescribeEndpoint", params) == {"EndpointName": "churn-prod"}


def test_values_are_read_as_aws_reads_them() -> None:
    params = {"MaxResults": 10.9, "CreationTimeAfter": 1_700_000_000}
    assert validate_input("ListModels", params) == {
        "MaxResults": 10,
        "CreationTimeAfter": 1_700_000_000,
    }
    weights = validate_input(
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "e",
            "DesiredWeightsAndCapacities": [{"VariantName": "v", "DesiredWeight": 2}],
        },
    )
    assert weights["DesiredWeightsAndCapacities"][0]["DesiredWeight"] == 2.0
    isolated = validate_input("CreateModel", {"ModelName": "m", "EnableNetworkIsolation": "TRUE"})
    assert isolated["EnableNetworkIsolation"] is True


# ------------------------------------------------------------------------------ invalid input

MISSING_ENDPOINT = (
    "Value null at 'endpointName' failed to satisfy constraint: Member must not be null"
)

INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "missing required member",
        "CreateEndpoint",
        {"EndpointConfigName": "churn-ab-test"},
        one(MISSING_ENDPOINT),
    ),
    (
        "required member sent as null",
        "DescribeEndpoint",
        {"EndpointName": None},
        one(MISSING_ENDPOINT),
    ),
    (
        "member names are case-sensitive",
        "DescribeEndpoint",
        {"endpointName": "churn-prod"},
        one(MISSING_ENDPOINT),
    ),
    (
        "two missing members",
        "CreateEndpoint",
        {},
        "2 validation errors detected: "
        f"{MISSING_ENDPOINT}; "
        "Value null at 'endpointConfigName' failed to satisfy constraint: Member must not be null",
    ),
    (
        "bad enum in a list item",
        "CreateEndpointConfig",
        config(variant(InstanceType="ml.foo.large")),
        one(
            "Value 'ml.foo.large' at 'productionVariants.1.member.instanceType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{INSTANCE_TYPES}]"
        ),
    ),
    (
        "name too long",
        "CreateModel",
        {"ModelName": "m" * 64},
        one(
            f"Value '{'m' * 64}' at 'modelName' failed to satisfy constraint: "
            "Member must have length less than or equal to 63"
        ),
    ),
    (
        "name too long for its pattern too: two errors on one member",
        "DescribeEndpoint",
        {"EndpointName": "e" * 64},
        "2 validation errors detected: "
        f"Value '{'e' * 64}' at 'endpointName' failed to satisfy constraint: "
        "Member must have length less than or equal to 63; "
        f"Value '{'e' * 64}' at 'endpointName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {NAME_PATTERN}",
    ),
    (
        "name with an underscore",
        "CreateEndpoint",
        {"EndpointName": "bad_name", "EndpointConfigName": "churn-ab-test"},
        one(
            "Value 'bad_name' at 'endpointName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
        ),
    ),
    (
        "name ending with a hyphen",
        "CreateModel",
        {"ModelName": "churn-"},
        one(
            "Value 'churn-' at 'modelName' failed to satisfy constraint: Member must satisfy "
            "regular expression pattern: [a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?"
        ),
    ),
    (
        "negative instance count",
        "CreateEndpointConfig",
        config(variant(InitialInstanceCount=-1)),
        one(
            "Value '-1' at 'productionVariants.1.member.initialInstanceCount' failed to satisfy "
            "constraint: Member must have value greater than or equal to 1"
        ),
    ),
    (
        "negative weight",
        "CreateEndpointConfig",
        config(variant("a"), variant("b", InitialVariantWeight=-0.5)),
        one(
            "Value '-0.5' at 'productionVariants.2.member.initialVariantWeight' failed to "
            "satisfy constraint: Member must have value greater than or equal to 0"
        ),
    ),
    (
        "eleven production variants",
        "CreateEndpointConfig",
        config(*({"VariantName": f"v{i}"} for i in range(11))),
        one(
            "Value '["
            + ", ".join(f"{{VariantName=v{i}}}" for i in range(11))
            + "]' at 'productionVariants' failed to satisfy constraint: "
            "Member must have length less than or equal to 10"
        ),
    ),
    (
        "no production variants",
        "CreateEndpointConfig",
        config(),
        one(
            "Value '[]' at 'productionVariants' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        ),
    ),
    (
        "missing member of a list item",
        "CreateEndpointConfig",
        config(variant("a"), {"ModelName": "churn-model-v3"}),
        one(
            "Value null at 'productionVariants.2.member.variantName' failed to satisfy "
            "constraint: Member must not be null"
        ),
    ),
    (
        "nested member of a list inside a structure",
        "CreateEndpointConfig",
        config(
            variant(),
            DataCaptureConfig={
                "InitialSamplingPercentage": 101,
                "DestinationS3Uri": "s3://pier-capture/churn",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Both"}],
            },
        ),
        "2 validation errors detected: "
        "Value '101' at 'dataCaptureConfig.initialSamplingPercentage' failed to satisfy "
        "constraint: Member must have value less than or equal to 100; "
        "Value 'Both' at 'dataCaptureConfig.captureOptions.2.member.captureMode' failed to "
        "satisfy constraint: Member must satisfy enum value set: [Input, Output, InputAndOutput]",
    ),
    (
        "serverless memory below range",
        "CreateEndpointConfig",
        config(
            {"VariantName": "v", "ServerlessConfig": {"MemorySizeInMB": 512, "MaxConcurrency": 0}}
        ),
        "2 validation errors detected: "
        "Value '512' at 'productionVariants.1.member.serverlessConfig.memorySizeInMB' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1024; "
        "Value '0' at 'productionVariants.1.member.serverlessConfig.maxConcurrency' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1",
    ),
    (
        "negative desired instance count",
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "churn-prod",
            "DesiredWeightsAndCapacities": [{"VariantName": "a", "DesiredInstanceCount": -1}],
        },
        one(
            "Value '-1' at 'desiredWeightsAndCapacities.1.member.desiredInstanceCount' failed to "
            "satisfy constraint: Member must have value greater than or equal to 0"
        ),
    ),
    (
        "MaxResults out of range",
        "ListEndpoints",
        {"MaxResults": 101},
        one(
            "Value '101' at 'maxResults' failed to satisfy constraint: "
            "Member must have value less than or equal to 100"
        ),
    ),
    (
        "bad tag key in a list of structures",
        "AddTags",
        {
            "ResourceArn": ENDPOINT_ARN,
            "Tags": [{"Key": "team", "Value": "a"}, {"Key": "a#b", "Value": "b"}],
        },
        one(
            "Value 'a#b' at 'tags.2.member.key' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)"
        ),
    ),
    (
        "empty tag key",
        "CreateEndpoint",
        {"EndpointName": "e", "EndpointConfigName": "c", "Tags": [{"Key": "", "Value": "v"}]},
        one(
            "Value '' at 'tags.1.member.key' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        ),
    ),
    (
        "tag value missing",
        "AddTags",
        {"ResourceArn": ENDPOINT_ARN, "Tags": [{"Key": "team"}]},
        one(
            "Value null at 'tags.1.member.value' failed to satisfy constraint: "
            "Member must not be null"
        ),
    ),
    (
        "bad items in a list of strings: one error for the list",
        "DeleteTags",
        {"ResourceArn": ENDPOINT_ARN, "TagKeys": ["team", "a#b", ""]},
        one(
            "Value '[team, a#b, ]' at 'tagKeys' failed to satisfy constraint: Member must "
            "satisfy constraint: [Member must have length less than or equal to 128, Member must "
            "have length greater than or equal to 1, Member must satisfy regular expression "
            "pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)]"
        ),
    ),
    (
        "bad environment variable name",
        "CreateModel",
        {"ModelName": "m", "PrimaryContainer": {"Image": IMAGE, "Environment": {"1X": "v"}}},
        one(
            "Value '{1X=v}' at 'primaryContainer.environment' failed to satisfy constraint: "
            "Map keys must satisfy constraint: [Member must have length less than or equal to "
            "1024, Member must satisfy regular expression pattern: [a-zA-Z_][a-zA-Z0-9_]*]"
        ),
    ),
    (
        "model data URL too long (its S3/HTTPS pattern is relaxed: pier runs MLflow URIs)",
        "CreateModel",
        {"ModelName": "m", "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "/" + "m" * 1024}},
        one(
            f"Value '/{'m' * 1024}' at 'primaryContainer.modelDataUrl' failed to satisfy "
            "constraint: Member must have length less than or equal to 1024"
        ),
    ),
    (
        "role that is not an IAM role ARN, too short as well",
        "CreateModel",
        {"ModelName": "m", "ExecutionRoleArn": "admin"},
        "2 validation errors detected: "
        "Value 'admin' at 'executionRoleArn' failed to satisfy constraint: "
        "Member must have length greater than or equal to 20; "
        "Value 'admin' at 'executionRoleArn' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
    ),
    (
        "blank alarm name (a negative lookahead with Java's $)",
        "UpdateEndpoint",
        {
            "EndpointName": "e",
            "EndpointConfigName": "c",
            "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "  "}]}},
        },
        one(
            "Value '  ' at 'deploymentConfig.autoRollbackConfiguration.alarms.1.member.alarmName' "
            "failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "(?!\\s*$).+"
        ),
    ),
    (
        "a null list item",
        "DeleteTags",
        {"ResourceArn": ENDPOINT_ARN, "TagKeys": ["team", None]},
        one(
            "Value null at 'tagKeys.2.member' failed to satisfy constraint: Member must not be null"
        ),
    ),
]


@pytest.mark.parametrize(
    ("operation", "params", "message"),
    [pytest.param(op, params, message, id=case) for case, op, params, message in INVALID],
)
def test_invalid_requests_get_aws_messages(
    operation: str, params: dict[str, Any], message: str
) -> None:
    assert rejected(operation, params) == message


def test_at_most_ten_errors_are_reported() -> None:
    variants = [variant(f"v{i}", InitialInstanceCount=0) for i in range(10)]
    message = rejected("CreateEndpointConfig", config(*variants, KmsKeyId="key id"))
    assert message.startswith("10 validation errors detected: ")
    assert message.count("failed to satisfy constraint") == 10
    assert "productionVariants.10.member.initialInstanceCount" in message
    assert "kmsKeyId" not in message  # the eleventh


def test_float_values_print_as_java_prints_them() -> None:
    def weight_message(weight: float) -> str:
        return rejected("CreateEndpointConfig", config(variant(InitialVariantWeight=weight)))

    assert "Value '-1.0' at" in weight_message(-1)
    assert "Value '-0.1' at" in weight_message(-0.1)  # float32, shortest digits
    assert "Value '-1.0E7' at" in weight_message(-1e7)
    assert "Value '-1.0E-4' at" in weight_message(-0.0001)
    assert "Value '-Infinity' at" in weight_message(-math.inf)


@pytest.mark.parametrize(
    ("weight", "shown"),
    [("1e999", "Infinity"), ("-1e999", "-Infinity"), ("1E400", "Infinity")],
)
def test_non_finite_numbers_are_refused(weight: str, shown: str) -> None:
    """`InitialVariantWeight: 1e999` was stored as Infinity: every untargeted invoke then 500ed."""
    body = (
        '{"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "v", '
        f'"ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large", '
        f'"InitialVariantWeight": {weight}}}]}}'
    )
    message = rejected("CreateEndpointConfig", parse_body(body.encode()))
    assert (
        f"Value '{shown}' at 'productionVariants.1.member.initialVariantWeight' failed to "
        "satisfy constraint: Member must be a finite number"
    ) in message


@pytest.mark.parametrize("count", [2**31, 10**6 * 10**6, 1e300, -(2**31) - 1])
def test_integers_beyond_javas_int_are_serialization_errors(count: float) -> None:
    """1e300 was accepted and then broke DescribeEndpointConfig."""
    with pytest.raises(SerializationException) as caught:
        validate_input("CreateEndpointConfig", config(variant(InitialInstanceCount=count)))
    assert caught.value.message == f"{NUMBER} can not be converted to an Integer"


def test_javas_int_range_is_accepted() -> None:
    read = validate_input("CreateEndpointConfig", config(variant(InitialInstanceCount=2**31 - 1)))
    assert read["ProductionVariants"][0]["InitialInstanceCount"] == 2**31 - 1


@pytest.mark.parametrize(
    ("memory", "ok"), [(1024, True), (6144, True), (1500, False), (3000, False)]
)
def test_serverless_memory_is_a_multiple_of_1024(memory: int, ok: bool) -> None:
    serverless = {
        "VariantName": "v",
        "ModelName": "m",
        "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 1},
    }
    params = {"EndpointConfigName": "c", "ProductionVariants": [serverless]}
    if ok:
        assert validate_input("CreateEndpointConfig", params) == params
    else:
        assert rejected("CreateEndpointConfig", params) == one(
            f"Value '{memory}' at 'productionVariants.1.member.serverlessConfig.memorySizeInMB' "
            "failed to satisfy constraint: Member must be a multiple of 1024"
        )


def test_union_needs_exactly_one_member() -> None:
    assert sagemaker._validate("WorkloadSpec", {"Inline": "x"}) == {"Inline": "x"}
    with pytest.raises(ValidationException) as caught:
        sagemaker._validate("WorkloadSpec", {})
    assert caught.value.message == one(
        "Value '{}' at 'WorkloadSpec' failed to satisfy constraint: "
        "Member must have exactly one member set"
    )


# ------------------------------------------------------------------------------ wrong types

NUMBER = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber"

WRONG_TYPES: list[tuple[str, dict[str, Any], str]] = [
    ("DescribeModel", {"ModelName": 7}, f"{NUMBER} can not be converted to an String"),
    (
        "DescribeModel",
        {"ModelName": True},
        "class java.lang.Boolean can not be converted to an String",
    ),
    ("DescribeModel", {"ModelName": ["m"]}, "Start of list found where not expected"),
    (
        "DescribeModel",
        {"ModelName": {"m": 1}},
        "Start of structure or map found where not expected.",
    ),
    (
        "ListModels",
        {"MaxResults": "10"},
        "class java.lang.String can not be converted to an Integer",
    ),
    (
        "ListModels",
        {"MaxResults": False},
        "class java.lang.Boolean can not be converted to an Integer",
    ),
    (
        "ListModels",
        {"CreationTimeAfter": "2026-01-01T00:00:00Z"},
        "class java.lang.String can not be converted to milliseconds since epoch",
    ),
    (
        "CreateEndpointConfig",
        config(variant(InitialVariantWeight="0.5")),
        "class java.lang.String can not be converted to an Float",
    ),
    (
        "CreateEndpointConfig",
        config(variant(InitialInstanceCount="1")),
        "class java.lang.String can not be converted to an Integer",
    ),
    (
        "CreateEndpointConfig",
        config(variant(), Tags={"team": "risk"}),
        "Start of structure or map found where not expected.",
    ),
    (
        "CreateEndpointConfig",
        config(variant(), DataCaptureConfig=[]),
        "Start of list found where not expected",
    ),
    ("CreateEndpointConfig", config(variant(), DataCaptureConfig="on"), "Expected null"),
    ("DeleteTags", {"ResourceArn": ENDPOINT_ARN, "TagKeys": "team"}, "Expected list or null"),
    (
        "CreateModel",
        {"ModelName": "m", "PrimaryContainer": {"Environment": "A=1"}},
        "Expected map or null",
    ),
    (
        "CreateModel",
        {"ModelName": "m", "EnableNetworkIsolation": "yes"},
        "'YES' can not be converted to an Boolean",
    ),
    (
        "CreateModel",
        {"ModelName": "m", "EnableNetworkIsolation": 1},
        f"{NUMBER} can not be converted to an Boolean",
    ),
]


@pytest.mark.parametrize(("operation", "params", "message"), WRONG_TYPES)
def test_wrong_types_are_serialization_errors(
    operation: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(SerializationException) as caught:
        validate_input(operation, params)
    assert caught.value.code == "SerializationException"
    assert caught.value.message == message


def test_type_errors_come_before_constraint_errors() -> None:
    with pytest.raises(SerializationException):
        validate_input("CreateEndpoint", {"EndpointName": "bad_name", "EndpointConfigName": 1})


# ------------------------------------------------------------------------------ target, body


@pytest.mark.parametrize("operation", sorted(SUPPORTED_OPERATIONS))
def test_target_names_the_operation(operation: str) -> None:
    assert operation_from_target(f"SageMaker.{operation}") == operation


@pytest.mark.parametrize(
    "target",
    [None, "", "SageMaker", "SageMaker.", "SageMaker.Nope", "sagemaker.CreateModel",
     "DynamoDB_20120810.ListTables", "SageMaker.CreateModel.Extra"],
)  # fmt: skip
def test_unknown_operation(target: str | None) -> None:
    with pytest.raises(UnknownOperationException) as caught:
        operation_from_target(target)
    assert caught.value.code == "UnknownOperationException"
    assert caught.value.message == "The requested operation is not recognized by the service."


def test_sagemaker_operation_pier_does_not_implement() -> None:
    with pytest.raises(UnknownOperationException) as caught:
        operation_from_target("SageMaker.CreateTrainingJob")
    assert caught.value.message.startswith("The requested operation is not recognized")
    assert "CreateTrainingJob" in caught.value.message
    with pytest.raises(UnknownOperationException):
        validate_input("CreateTrainingJob", {})


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b'{"EndpointName": }', b"\xff\xfe{}", b'{"a": NaN}', b'{"a": Infinity}',
     b"[]", b'"EndpointName"', b"42", b"null", b"[" * 100_000],
)  # fmt: skip
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(SerializationException) as caught:
        parse_body(body)
    assert caught.value.code == "SerializationException"


def test_body_is_parsed_as_a_json_object() -> None:
    assert parse_body(b'{"EndpointName": "churn-prod", "x": [1.5, null]}') == {
        "EndpointName": "churn-prod",
        "x": [1.5, None],
    }


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_serialization(body: bytes) -> None:
    with contextlib.suppress(SerializationException):
        assert isinstance(parse_body(body), dict)


# ------------------------------------------------------------------------------ output


def test_output_timestamps_are_epoch_seconds() -> None:
    created = datetime(2026, 11, 23, 14, 11, 50, 250000, tzinfo=UTC)
    result = {
        "EndpointName": "churn-prod",
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": "churn-ab-test",
        "EndpointStatus": "InService",
        "CreationTime": created,
        "LastModifiedTime": created.replace(tzinfo=None),
        "FailureReason": None,
        "ProductionVariants": [
            {
                "VariantName": "champion",
                "DeployedImages": [{"SpecifiedImage": IMAGE, "ResolutionTime": created}],
                "CurrentWeight": 1.0,
                "InternalOnly": "dropped",
            }
        ],
    }
    wire = serialize_output("DescribeEndpoint", result)
    assert wire["CreationTime"] == wire["LastModifiedTime"] == created.timestamp()
    assert "FailureReason" not in wire
    assert (
        wire["ProductionVariants"][0]["DeployedImages"][0]["ResolutionTime"] == created.timestamp()
    )
    assert "InternalOnly" not in wire["ProductionVariants"][0]
    parser = botocore.parsers.create_parser("json")
    parsed = parser.parse(
        {"body": json.dumps(wire).encode(), "headers": {}, "status_code": 200},
        SERVICE.operation_model("DescribeEndpoint").output_shape,
    )
    assert parsed["CreationTime"] == created
    assert parsed["ProductionVariants"][0]["DeployedImages"][0]["ResolutionTime"] == created


# ------------------------------------------------------------------------------ patterns


def input_patterns() -> set[str]:
    found: set[str] = set()
    seen: set[str] = set()
    stack = [MODEL["operations"][op]["input"]["shape"] for op in SUPPORTED_OPERATIONS]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            shape = SHAPES[name]
            found.update([shape["pattern"]] if "pattern" in shape else [])
            stack.extend(shape[k]["shape"] for k in ("member", "key", "value") if k in shape)
            stack.extend(ref["shape"] for ref in shape.get("members", {}).values())
    return found


def test_every_pattern_of_the_supported_inputs_translates() -> None:
    patterns = input_patterns()
    assert pattern_coverage() == (len(patterns), 0)
    assert len(patterns) == 24


def test_every_pattern_of_the_whole_sagemaker_model_translates_or_is_skipped() -> None:
    patterns = {s["pattern"] for s in SHAPES.values() if "pattern" in s}
    assert all(java_pattern(p) is not None for p in patterns)


@pytest.mark.parametrize(
    ("java", "value", "matches"),
    [
        ("[a-z]+", "abc", True),
        ("[a-z]+", "abc1", False),  # Java's matches(): the whole value
        (".*", "a\nb", False),  # `.` stops at line terminators
        (".*", "a\u2028b", False),
        (".*", "a\tb\u00a0", True),
        ("\\d+", "٣", False),  # ASCII digits only
        ("\\s*", "\u00a0", False),
        ("\\w+", "é", False),
        ("a$", "a\n", False),  # matches() must reach the end...
        ("(?!\\S*$)[\\s\\S]+", "a\r", False),  # ...but $ also matches before a final \r
        ("(?!\\S*$)[\\s\\S]+", "a\rb", True),
        ("(?!\\s*$).+", " ", False),
        ("[\\p{L}]+", "Zoë日本", True),
        ("\\p{N}+", "42٣Ⅻ", True),
        ("[\\p{Z}]", "\u3000", True),
        ("\\P{L}+", "12", True),
        ("\\p{Lu}\\p{Ll}+", "Zoë", True),
        ("\\p{Alpha}+", "é", False),  # POSIX classes are ASCII
        ("\\Qa.b\\E", "a.b", True),
        ("\\Qa.b\\E", "axb", False),
        ("(?i)abc", "ABC", True),
        ("(?<year>[0-9]{4})-\\k<year>", "2026-2026", True),
        ("[\\uD800\\uDC00-\\uDBFF\\uDFFF]", "\U0001f600", True),
        ("\\x{1F600}", "\U0001f600", True),
        ("[^/]+", "a/b", False),
        ("a\\/b", "a/b", True),
    ],
)
def test_java_pattern_semantics(java: str, value: str, matches: bool) -> None:
    compiled = java_pattern(java)
    assert compiled is not None
    assert (compiled.fullmatch(value) is not None) is matches


@pytest.mark.parametrize(
    "java",
    ["[a-z&&[^aeiou]]", "[a[b]]", "(?s).*", "(?m)^a$", "a(?i)b", "\\Ga", "\\R", "\\p{IsLatin}",
     "\\p{javaLowerCase}", "(", "[a-", "\\"],
)  # fmt: skip
def test_untranslatable_patterns_are_skipped(java: str) -> None:
    assert java_pattern(java) is None


def test_translation_is_python_source() -> None:
    assert translate("[a-z]") == "[\\x61-\\x7a]"
    assert translate("a.b") == "a[^\\n\\r\\x85\\u2028\\u2029]b"


# ------------------------------------------------------------------------------ properties


def strategy(name: str) -> st.SearchStrategy[Any]:
    """Values valid by construction for a shape of the model."""
    shape = SHAPES[name]
    kind = shape["type"]
    if kind == "structure":
        required = set(shape.get("required", ()))
        members = {m: strategy(ref["shape"]) for m, ref in shape["members"].items()}
        if shape.get("union"):
            return st.one_of([st.fixed_dictionaries({m: s}) for m, s in members.items()])
        return st.fixed_dictionaries(
            {m: s for m, s in members.items() if m in required},
            optional={m: s for m, s in members.items() if m not in required},
        )
    low, high = shape.get("min", 0), shape.get("max")
    if name == "ServerlessMemorySizeInMB":  # SageMaker documents steps of 1024 (pier checks it)
        return st.sampled_from(range(low, high + 1, 1024))
    if kind == "list":
        return st.lists(
            strategy(shape["member"]["shape"]), min_size=low, max_size=min(high or 3, low + 3)
        )
    if kind == "map":
        keys, values = strategy(shape["key"]["shape"]), strategy(shape["value"]["shape"])
        return st.dictionaries(keys, values, min_size=low, max_size=min(high or 3, low + 3))
    if kind == "string":
        if "enum" in shape:
            return st.sampled_from(shape["enum"])
        longest = high if high is not None else 256
        if "pattern" in shape:
            compiled = java_pattern(shape["pattern"])
            assert compiled is not None
            return st.from_regex(compiled, fullmatch=True).filter(
                lambda s: low <= len(s) <= longest
            )
        return st.text(min_size=low, max_size=min(longest, 64))
    if kind in ("integer", "long"):
        bits = 31 if kind == "integer" else 63
        return st.integers(shape.get("min", -(2**bits)), shape.get("max", 2**bits - 1))
    if kind in ("float", "double"):
        return st.floats(
            low, high if high is not None else 1e6, width=32 if kind == "float" else 64
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(0, 2**32)
    raise AssertionError(f"no strategy for {kind}")


CREATE_ENDPOINT_CONFIG = MODEL["operations"]["CreateEndpointConfig"]["input"]["shape"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
@given(strategy(CREATE_ENDPOINT_CONFIG))
def test_valid_by_construction_create_endpoint_config_passes(params: dict[str, Any]) -> None:
    assert validate_input("CreateEndpointConfig", params) == params
    input_shape = SERVICE.operation_model("CreateEndpointConfig").input_shape
    assert not ParamValidator().validate(params, input_shape).has_errors()


def member_names(operation: str) -> list[str]:
    """Every member name in the operation's input tree: random JSON that reaches deep shapes."""
    names: set[str] = set()
    seen: set[str] = set()
    stack = [MODEL["operations"][operation]["input"]["shape"]]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            shape = SHAPES[name]
            names.update(shape.get("members", {}))
            stack.extend(shape[k]["shape"] for k in ("member", "key", "value") if k in shape)
            stack.extend(ref["shape"] for ref in shape.get("members", {}).values())
    return sorted(names)


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6)
        ),
        max_leaves=40,
    )


JSON_VALUES = json_values(st.text(max_size=8))


def passes_or_fails_like_aws(operation: str, params: dict[str, Any]) -> None:
    """Only AWS's two errors, and what passes is already in the form validation produces."""
    try:
        result = validate_input(operation, params)
    except (ValidationException, SerializationException):
        return
    assert validate_input(operation, result) == result


@functools.cache
def arbitrary_params(operation: str) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(member_names(operation)) | st.text(max_size=8)
    return st.dictionaries(keys, json_values(keys), max_size=8)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(SUPPORTED_OPERATIONS)), st.data())
def test_arbitrary_json_only_raises_aws_errors(operation: str, data: st.DataObject) -> None:
    params = data.draw(arbitrary_params(operation))
    passes_or_fails_like_aws(operation, params)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(VALID_CASES), st.data())
def test_mutated_valid_requests_only_raise_aws_errors(
    case: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    operation, params = case
    mutated = copy.deepcopy(params)
    for key in data.draw(st.lists(st.sampled_from(sorted(params) or ["X"]), max_size=3)):
        mutated[key] = data.draw(JSON_VALUES)
    passes_or_fails_like_aws(operation, mutated)


# ------------------------------------------------------------------------------ boto3 agrees


def boto3_accepts(operation: str, params: dict[str, Any]) -> bool:
    input_shape = SERVICE.operation_model(operation).input_shape
    return not ParamValidator().validate(params, input_shape).has_errors()


def pier_accepts(operation: str, params: dict[str, Any]) -> bool:
    try:
        validate_input(operation, params)
    except (ValidationException, SerializationException):
        return False
    return True


# Inputs without timestamps (boto3 takes datetimes, the wire epoch seconds) and without the
# checks boto3 leaves to the service (pattern, enum, max).
AGREEMENT_SAMPLE = [
    *[(op, p) for op, p in VALID_CASES if "Time" not in "".join(p)],
    ("CreateEndpoint", {"EndpointName": "churn-prod"}),
    ("CreateEndpoint", {}),
    ("CreateEndpointConfig", config(variant(InitialInstanceCount=0))),
    ("CreateEndpointConfig", config()),
    ("CreateEndpointConfig", config({"ModelName": "m"})),
    ("CreateEndpointConfig", config(variant(InitialVariantWeight=-1))),
    ("CreateEndpointConfig", config(variant(InitialVariantWeight=1))),
    ("CreateEndpointConfig", config(variant(InitialInstanceCount="1"))),
    ("CreateModel", {"ModelName": 7}),
    ("CreateModel", {"ModelName": "m", "PrimaryContainer": "img"}),
    ("CreateModel", {"ModelName": "m", "PrimaryContainer": {"Environment": ["A=1"]}}),
    ("CreateModel", {"ModelName": "m", "EnableNetworkIsolation": True}),
    ("AddTags", {"ResourceArn": ENDPOINT_ARN, "Tags": [{"Key": "", "Value": "v"}]}),
    ("AddTags", {"ResourceArn": ENDPOINT_ARN, "Tags": [{"Key": "k"}]}),
    ("AddTags", {"ResourceArn": ENDPOINT_ARN, "Tags": "k=v"}),
    ("ListModels", {"MaxResults": 0}),
    ("ListModels", {"MaxResults": "10"}),
    ("ListTags", {"ResourceArn": ENDPOINT_ARN, "MaxResults": 49}),
    ("DeleteTags", {"ResourceArn": ENDPOINT_ARN, "TagKeys": [""]}),
    ("DeleteTags", {"ResourceArn": ENDPOINT_ARN, "TagKeys": []}),
    (
        "UpdateEndpointWeightsAndCapacities",
        {
            "EndpointName": "e",
            "DesiredWeightsAndCapacities": [{"VariantName": "v", "DesiredInstanceCount": -1}],
        },
    ),
    (
        "UpdateEndpointWeightsAndCapacities",
        {"EndpointName": "e", "DesiredWeightsAndCapacities": [{}]},
    ),
]


@pytest.mark.parametrize(("operation", "params"), AGREEMENT_SAMPLE)
def test_boto3_and_pier_agree_where_boto3_checks(operation: str, params: dict[str, Any]) -> None:
    assert boto3_accepts(operation, params) == pier_accepts(operation, params)


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("CreateEndpoint", {"EndpointName": "bad_name", "EndpointConfigName": "c"}),  # pattern
        ("CreateModel", {"ModelName": "m" * 64}),  # max
        ("CreateEndpointConfig", config(variant(InstanceType="ml.foo"))),  # enum
        ("ListModels", {"MaxResults": 101}),  # max
    ],
)
def test_pier_like_aws_rejects_what_boto3_leaves_to_the_service(
    operation: str, params: dict[str, Any]
) -> None:
    assert boto3_accepts(operation, params)
    assert not pier_accepts(operation, params)


@pytest.mark.parametrize(
    "url", ["/tmp/model", "file:///tmp/model", "models:/diabetes@champion", "runs:/abc/model"]
)
def test_model_locations_pier_runs_are_accepted(url: str) -> None:
    """AWS allows only s3:// and https:// here; pier also runs MLflow URIs and local paths."""
    params = {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": url}}
    assert validate_input("CreateModel", params)["PrimaryContainer"]["ModelDataUrl"] == url
