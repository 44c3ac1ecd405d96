"""The SageMaker control API's wire contract (JSON 1.1): target, body and input validation.

Requests are checked against botocore's service model by pier.contract.aws_model, the walk all
of pier's AWS APIs share, in AWS JSON 1.1's dialect (pier.contract.coral_json): a value of the
wrong JSON type is a SerializationException in Coral's own words, and every constraint
violation, a missing required member included, is listed in one ValidationException (at most
10), as AWS does. This module holds what is SageMaker's own: the operations pier implements,
the X-Amz-Target they arrive under, and the shapes whose pattern pier relaxes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pier.contract import json_depth
from pier.contract.aws_model import ServiceModel
from pier.contract.aws_patterns import java_pattern
from pier.contract.coral_json import JSON_1_1, unexpected
from pier.contract.shape_rules import Rule
from pier.errors import SerializationException, UnknownOperationException

__all__ = [
    "EXPERIMENT_OPERATIONS",
    "MONITORING_OPERATIONS",
    "SUPPORTED_OPERATIONS",
    "TARGET_PREFIX",
    "operation_from_target",
    "parse_body",
    "pattern_coverage",
    "serialize_output",
    "validate_input",
]

TARGET_PREFIX = "SageMaker."
SUPPORTED_OPERATIONS = frozenset(
    {
        *("CreateModel", "DescribeModel", "ListModels", "DeleteModel", "CreateEndpointConfig"),
        *("DescribeEndpointConfig", "ListEndpointConfigs", "DeleteEndpointConfig"),
        *("CreateEndpoint", "DescribeEndpoint", "ListEndpoints", "DeleteEndpoint"),
        *("UpdateEndpoint", "UpdateEndpointWeightsAndCapacities", "AddTags", "ListTags"),
        "DeleteTags",
    }
)
#: Monitoring schedules (pier.control.monitoring_service), beside the hosting operations.
MONITORING_OPERATIONS = frozenset(
    {
        *("CreateMonitoringSchedule", "DescribeMonitoringSchedule", "ListMonitoringSchedules"),
        *("DeleteMonitoringSchedule", "StopMonitoringSchedule", "StartMonitoringSchedule"),
        "ListMonitoringExecutions",
    }
)
#: Shadow tests (pier.control.experiment_service).
EXPERIMENT_OPERATIONS = frozenset(
    {
        *("CreateInferenceExperiment", "DescribeInferenceExperiment"),
        *("ListInferenceExperiments", "StartInferenceExperiment", "StopInferenceExperiment"),
    }
)
_OPERATIONS = SUPPORTED_OPERATIONS | MONITORING_OPERATIONS | EXPERIMENT_OPERATIONS

_NOT_RECOGNIZED = "The requested operation is not recognized by the service."


# ------------------------------------------------------------------------------ target, body


def operation_from_target(x_amz_target: str | None) -> str:
    """`SageMaker.CreateModel` -> `CreateModel`, for the operations pier implements."""
    prefix, _, operation = (x_amz_target or "").partition(".")
    if prefix + "." == TARGET_PREFIX and operation in _OPERATIONS:
        return operation
    if prefix + "." == TARGET_PREFIX and operation in _MODEL.operations:
        raise UnknownOperationException(
            f"{_NOT_RECOGNIZED} pier implements SageMaker's hosting operations, not {operation}."
        )
    raise UnknownOperationException(_NOT_RECOGNIZED)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is malformed: boto3 always sends {})."""
    if json_depth.too_deep(body):
        raise SerializationException(f"Malformed JSON request body: {json_depth.refusal()}")
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SerializationException(f"Malformed JSON request body: {exc}") from None
    if not isinstance(value, dict):
        raise unexpected(value, "structure")
    return value


# ------------------------------------------------------------------------------ constraints


#: Where the model lives (ModelDataUrl, ModelDataSource.S3DataSource.S3Uri): AWS allows only
#: https:// and s3://; pier also runs MLflow URIs (models:/, runs:/), local paths and file://,
#: so these shapes skip their pattern (a deliberate difference, docs/hosting.md).
MODEL_LOCATION_SHAPES = frozenset({"Url", "S3ModelUri"})
#: Where data capture writes (DataCaptureConfig.DestinationS3Uri): AWS allows https:// and
#: s3://; pier also writes to a local directory (file://), so the service checks the scheme
#: instead of this pattern (pier.monitor.capture.destination_problem).
CAPTURE_DESTINATION_SHAPES = frozenset({"DestinationS3Uri"})
#: Baselines and monitoring reports (BaselineConfig.*.S3Uri, S3Output.S3Uri): AWS allows
#: https:// and s3://; pier also reads file: and models:/name/version (a baseline stored with a
#: model version), so the monitoring service checks the scheme instead of these patterns.
MONITORING_LOCATION_SHAPES = frozenset({"S3Uri", "MonitoringS3Uri"})


#: Constraints SageMaker documents that botocore's model does not carry. Serverless memory:
#: "1024 MB, 2048 MB, 3072 MB, 4096 MB, 5120 MB, or 6144 MB" (ProductionVariantServerlessConfig,
#: SageMaker API reference); the model has only the range.
_DOCUMENTED_RULES: dict[str, tuple[Rule, ...]] = {
    "ServerlessMemorySizeInMB": (
        # Within the model's range only: outside it, the range is the one violation reported.
        ("Member must be a multiple of 1024", lambda v: v % 1024 == 0 or not 1024 <= v <= 6144),
    ),
}

_MODEL = ServiceModel(
    "sagemaker",
    relaxed_patterns=MODEL_LOCATION_SHAPES
    | CAPTURE_DESTINATION_SHAPES
    | MONITORING_LOCATION_SHAPES,
    finite_numbers=True,  # weights, sampling percentages, thresholds: never Infinity or NaN
    extra_rules=_DOCUMENTED_RULES,
)


# ------------------------------------------------------------------------------ public


def _validate(shape_name: str, params: Any) -> dict[str, Any]:
    return _MODEL.validate(params, shape_name, JSON_1_1)


def validate_input(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` as the service should read them, or AWS's error for them.

    The result drops unknown and null members, truncates fractional integers and turns
    "true"/"false" into booleans and base64 blobs into bytes, as AWS reads them.
    """
    if operation not in _OPERATIONS:
        raise UnknownOperationException(_NOT_RECOGNIZED)
    return _validate(_input(operation), params)


def serialize_output(operation: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """`result` as boto3 reads the operation's output: datetimes as epoch seconds (naive ones
    are UTC), bytes as base64, None and members the output shape lacks left out."""
    name = _MODEL.io_shape(operation, "output")
    if name is None:
        return {}  # DeleteEndpoint & co. answer an empty body
    encoded: dict[str, Any] = _MODEL.write(result, name, JSON_1_1)
    return encoded


def _input(operation: str) -> str:
    return str(_MODEL.operations[operation]["input"]["shape"])  # every operation has one


def pattern_coverage() -> tuple[int, int]:
    """(translated, skipped): the distinct patterns in the supported operations' inputs."""
    patterns: set[str] = set()
    seen: set[str] = set()
    stack = [_input(op) for op in SUPPORTED_OPERATIONS]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = _MODEL.shape(name)
        if "pattern" in shape:
            patterns.add(shape["pattern"])
        refs = [shape[k] for k in ("member", "key", "value") if k in shape]
        stack.extend(ref["shape"] for ref in [*refs, *shape.get("members", {}).values()])
    translated = sum(java_pattern(p) is not None for p in patterns)
    return translated, len(patterns) - translated
