"""The resource types: the three pier runs, as SageMaker requests, and the ones it skips.

A Model, EndpointConfig or Endpoint's resolved Properties become the Create* request. Their
values are coerced to the types of botocore's service model the way CloudFormation coerces them
(templates pass counts and weights as String parameters, "1" and "0.0", and booleans as
"true"); anything else of the wrong type, and any property the type does not have, is an error
naming the property. Which properties replace the resource when they change is CloudFormation's
own rule (its resource schemas' createOnlyProperties): all of a Model's and an EndpointConfig's
except Tags; only EndpointName for an Endpoint.

Other types are skipped with a reason each; `Ref` and `Fn::GetAtt` of a skipped resource give
plausible values (an IAM role's Arn is an IAM role ARN), so templates that wire them into a
Model's ExecutionRoleArn still resolve.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pier.iac.cloudformation.intrinsics import Pseudo
from pier.iac.cloudformation.template import problem
from pier.iac.source import Located, where

RESERVED_TAG_PREFIXES = ("aws:", "pier:")


@dataclass(frozen=True)
class Kind:
    type: str
    noun: str  # as SageMaker's messages say it
    short: str  # Model, EndpointConfig, Endpoint
    name_key: str
    arn_kind: str
    create: str
    properties: frozenset[str]
    attributes: frozenset[str]  # Fn::GetAtt names giving the name; *Arn gives the ARN
    rank: int  # creation order among independent resources

    def arn(self, pseudo: Pseudo, name: str) -> str:
        return (
            f"arn:{pseudo.partition}:sagemaker:{pseudo.region}:{pseudo.account}:"
            f"{self.arn_kind}/{name.lower()}"
        )


MODEL = Kind(
    type="AWS::SageMaker::Model",
    noun="model",
    short="Model",
    name_key="ModelName",
    arn_kind="model",
    create="CreateModel",
    properties=frozenset(
        {
            *("Containers", "EnableNetworkIsolation", "ExecutionRoleArn", "ModelName"),
            *("InferenceExecutionConfig", "PrimaryContainer", "Tags", "VpcConfig"),
        }
    ),
    attributes=frozenset({"ModelName", "ModelArn", "Arn"}),
    rank=0,
)
ENDPOINT_CONFIG = Kind(
    type="AWS::SageMaker::EndpointConfig",
    noun="endpoint configuration",
    short="EndpointConfig",
    name_key="EndpointConfigName",
    arn_kind="endpoint-config",
    create="CreateEndpointConfig",
    properties=frozenset(
        {
            *("AsyncInferenceConfig", "DataCaptureConfig", "EnableNetworkIsolation"),
            *("EndpointConfigName", "ExecutionRoleArn", "ExplainerConfig", "KmsKeyId"),
            *("MetricsConfig", "ProductionVariants", "ShadowProductionVariants", "Tags"),
            "VpcConfig",
        }
    ),
    attributes=frozenset({"EndpointConfigName", "EndpointConfigArn", "Arn"}),
    rank=1,
)
ENDPOINT = Kind(
    type="AWS::SageMaker::Endpoint",
    noun="endpoint",
    short="Endpoint",
    name_key="EndpointName",
    arn_kind="endpoint",
    create="CreateEndpoint",
    properties=frozenset(
        {
            *("DeploymentConfig", "EndpointConfigName", "EndpointName", "Tags"),
            *("ExcludeRetainedVariantProperties", "RetainAllVariantProperties"),
            "RetainDeploymentConfig",
        }
    ),
    attributes=frozenset({"EndpointName", "EndpointArn", "Arn"}),
    rank=2,
)
KINDS = {kind.type: kind for kind in (MODEL, ENDPOINT_CONFIG, ENDPOINT)}
#: Endpoint properties that only steer UpdateEndpoint; not part of CreateEndpoint.
UPDATE_ONLY = (
    "RetainAllVariantProperties",
    "ExcludeRetainedVariantProperties",
    "RetainDeploymentConfig",
)


# ---------------------------------------------------------------------------- skipped types

_SKIPPED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("AWS::IAM::", "IAM: pier's instances run with the platform's own permissions"),
    (
        "AWS::ApplicationAutoScaling::",
        "autoscaling: each variant keeps its instance count (change it with "
        "UpdateEndpointWeightsAndCapacities)",
    ),
    (
        "AWS::CloudWatch::",
        "CloudWatch: not created from templates; pier runs the alarms you put with its "
        "cloudwatch API (boto3, docs/monitoring.md)",
    ),
    ("AWS::Logs::", "CloudWatch Logs: instances log under pier's home"),
    ("AWS::Lambda::", "Lambda functions do not run in pier"),
    ("AWS::Serverless::", "SAM resources (Lambda, API Gateway) do not run in pier"),
    ("AWS::ApiGateway", "API Gateway: clients call the endpoint through pier's runtime API"),
    ("AWS::SageMaker::MonitoringSchedule", "model monitoring schedules are not run by pier yet"),
    (
        "AWS::SageMaker::",
        "pier runs SageMaker's hosting resources: Model, EndpointConfig, Endpoint",
    ),
    ("AWS::S3::", "S3 buckets: pier reads model data from S3 or from --map-model locations"),
    ("AWS::KMS::", "KMS keys: pier does not encrypt with AWS keys"),
    ("AWS::SNS::", "SNS topics: pier sends no notifications"),
    ("AWS::Events::", "EventBridge rules do not run in pier"),
    ("AWS::CloudFormation::CustomResource", "custom resources run Lambda code pier cannot run"),
    ("Custom::", "custom resources run Lambda code pier cannot run"),
)


def skip_reason(resource_type: str) -> str:
    for prefix, reason in _SKIPPED_PREFIXES:
        if resource_type.startswith(prefix):
            return reason
    return "pier runs AWS::SageMaker::Model, EndpointConfig and Endpoint only"


def skipped_ref(resource_type: str, physical: str) -> str:
    """What `Ref` gives for a skipped resource: its (made-up) physical name."""
    return physical


def skipped_att(resource_type: str, physical: str, attribute: str, pseudo: Pseudo) -> str:
    """What `Fn::GetAtt` gives for a skipped resource: ARNs of the right shape, else a
    placeholder naming the attribute."""
    parts = resource_type.split("::")
    if attribute == "Arn" and len(parts) == 3:
        service, kind = parts[1].lower(), parts[2].lower()
        if service == "iam":
            return f"arn:{pseudo.partition}:iam::{pseudo.account}:{kind}/{physical}"
        if service == "lambda":
            return (
                f"arn:{pseudo.partition}:lambda:{pseudo.region}:{pseudo.account}:{kind}:{physical}"
            )
        return (
            f"arn:{pseudo.partition}:{service}:{pseudo.region}:{pseudo.account}:{kind}/{physical}"
        )
    return f"{physical}.{attribute}"


# ---------------------------------------------------------------------------- requests


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def _input_shape(operation: str) -> Any:
    return _service_model().operation_model(operation).input_shape


@dataclass(frozen=True)
class Request:
    """A resource's SageMaker request: `body` without name and Tags, `tags` apart."""

    body: dict[str, Any]
    name: str | None  # the custom name, if the template sets one
    tags: dict[str, str]
    update_options: dict[str, Any]  # an Endpoint's RetainAllVariantProperties & co.


def request(kind: Kind, props: Located, path: str, at: str) -> Request:
    """The resolved Properties of a resource as a SageMaker request, coerced and checked."""
    for key in props:
        if key not in kind.properties:
            listed = ", ".join(sorted(kind.properties))
            raise problem(
                where(props, key) if props.line else at,
                f"{path}.{key}",
                f"{kind.type} has no property {key} (it has: {listed})",
            )
    tags = _tags(props, path, at)
    body = {k: v for k, v in props.items() if k not in ("Tags", kind.name_key, *UPDATE_ONLY)}
    body = _coerce(body, _input_shape(kind.create), path, at)
    name = props.get(kind.name_key)
    if name is not None:
        here = _where(props, kind.name_key, at)
        name = _scalar(name, "string", f"{path}.{kind.name_key}", here)
    options: dict[str, Any] = {}
    if kind is ENDPOINT:
        options = {k: props[k] for k in UPDATE_ONLY if k in props}
        options = _coerce(options, _input_shape("UpdateEndpoint"), path, at)
    return Request(body, name, tags, options)


def _where(container: Any, key: str | int, fallback: str) -> str:
    return where(container, key) if getattr(container, "line", 0) else fallback


def _tags(props: Located, path: str, at: str) -> dict[str, str]:
    tags = props.get("Tags")
    if tags is None:
        return {}
    at = _where(props, "Tags", at)
    if not isinstance(tags, list):
        raise problem(at, f"{path}.Tags", "must be a list of {Key, Value}")
    out: dict[str, str] = {}
    for i, tag in enumerate(tags):
        here = f"{path}.Tags[{i}]"
        if not isinstance(tag, dict) or set(tag) != {"Key", "Value"}:
            raise problem(_where(tags, i, at), here, "a tag is {Key: ..., Value: ...}")
        key = _scalar(tag["Key"], "string", f"{here}.Key", at)
        value = _scalar(tag["Value"], "string", f"{here}.Value", at)
        if key.lower().startswith(RESERVED_TAG_PREFIXES):
            raise problem(
                _where(tags, i, at),
                here,
                f"tag keys starting with aws: or pier: are reserved ({key!r})",
            )
        if key in out:
            raise problem(_where(tags, i, at), here, f"the tag {key!r} appears twice")
        out[key] = value
    return out


_INTEGER = re.compile(r"[+-]?\d+")


def _coerce(value: Any, shape: Any, path: str, at: str) -> Any:
    """`value` as the shape's type."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise problem(at, path, f"must be a mapping of properties, got {_show(value)}")
        out = {}
        for key, item in value.items():
            member = shape.members.get(key)
            here = _where(value, key, at)
            if member is None:
                listed = ", ".join(shape.members)
                raise problem(here, f"{path}.{key}", f"unknown property (known: {listed})")
            out[key] = _coerce(item, member, f"{path}.{key}", here)
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise problem(at, path, f"must be a list, got {_show(value)}")
        return [
            _coerce(item, shape.member, f"{path}[{i}]", _where(value, i, at))
            for i, item in enumerate(value)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise problem(at, path, f"must be a mapping, got {_show(value)}")
        return {
            str(key): _coerce(item, shape.value, f"{path}.{key}", _where(value, key, at))
            for key, item in value.items()
        }
    return _scalar(value, kind, path, at)


def _scalar(value: Any, kind: str, path: str, at: str) -> Any:
    if isinstance(value, dict | list):
        raise problem(at, path, f"must be a single value, got {_show(value)}")
    if kind == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)
    if kind in ("integer", "long"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value)
        raise problem(at, path, f"must be an integer, got {_show(value)}")
    if kind in ("float", "double"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise problem(at, path, f"must be a number, got {_show(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise problem(at, path, f"must be true or false, got {_show(value)}")
    return value  # timestamps, blobs: as written


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
