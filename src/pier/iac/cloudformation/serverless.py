"""SAM templates (`Transform: AWS::Serverless-2016-10-31`): the resources SAM makes implicitly.

On AWS the SAM transform rewrites `AWS::Serverless::*` resources into plain CloudFormation
before anything runs, and adds resources the template never declares but may refer to: the
API of a function's `Api` events (`ServerlessRestApi`, its `ServerlessRestApiProdStage`), an
`HttpApi`'s `ServerlessHttpApi`, a function's role (`<Function>Role`) when it names none,
`<Function>.Alias` / `<Function>.Version` with `AutoPublishAlias`, CodeDeploy's
`ServerlessDeploymentApplication` with `DeploymentPreference`, and so on. pier runs none of
them; it only needs to know them, so that references to them resolve (to the placeholder the
skipped resources give) instead of being "no resource of that name".

`implicit_resources` lists them, by logical ID, with the type SAM gives them and the SAM
resource they come from. It reads the declared resources only (no evaluation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVERLESS_TRANSFORM = "AWS::Serverless-2016-10-31"
#: Resource attributes SAM accepts on its own resources besides CloudFormation's.
SAM_ATTRIBUTES = frozenset({"Connectors", "IgnoreGlobals"})

#: A function event's type → the resource SAM makes for it as `<Function><Event>`.
_EVENT_RESOURCES = {
    "Schedule": "AWS::Events::Rule",
    "ScheduleV2": "AWS::Scheduler::Schedule",
    "CloudWatchEvent": "AWS::Events::Rule",
    "EventBridgeRule": "AWS::Events::Rule",
    "SQS": "AWS::Lambda::EventSourceMapping",
    "Kinesis": "AWS::Lambda::EventSourceMapping",
    "DynamoDB": "AWS::Lambda::EventSourceMapping",
    "MSK": "AWS::Lambda::EventSourceMapping",
    "MQ": "AWS::Lambda::EventSourceMapping",
    "SelfManagedKafka": "AWS::Lambda::EventSourceMapping",
    "DocumentDB": "AWS::Lambda::EventSourceMapping",
    "SNS": "AWS::SNS::Subscription",
    "CloudWatchLogs": "AWS::Logs::SubscriptionFilter",
    "IoTRule": "AWS::IoT::TopicRule",
}


@dataclass(frozen=True)
class Implicit:
    """A resource the SAM transform would add."""

    logical_id: str
    type: str
    source: str  # the SAM resource it comes from (or "" for the template-wide ones)


def is_serverless(transform: Any) -> bool:
    names = transform if isinstance(transform, list) else [transform]
    return SERVERLESS_TRANSFORM in names


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def implicit_resources(
    resources: Mapping[str, Any], globals_: Mapping[str, Any] | None = None
) -> dict[str, Implicit]:
    """Logical ID (or `Resource.Alias`-style reference) → the implicit resource."""
    out: dict[str, Implicit] = {}

    def add(logical_id: str, kind: str, source: str) -> None:
        if logical_id not in resources:  # a declared resource of that name wins
            out.setdefault(logical_id, Implicit(logical_id, kind, source))

    function_globals = _mapping(_mapping(globals_).get("Function"))
    for name, node in resources.items():
        node = _mapping(node)
        kind = node.get("Type")
        props = _mapping(node.get("Properties"))
        if kind == "AWS::Serverless::Function":
            merged = {**function_globals, **props}
            if "Role" not in merged:
                add(f"{name}Role", "AWS::IAM::Role", name)
            if "AutoPublishAlias" in merged:
                add(f"{name}.Alias", "AWS::Lambda::Alias", name)
                add(f"{name}.Version", "AWS::Lambda::Version", name)
                alias = merged["AutoPublishAlias"]
                if isinstance(alias, str) and alias.isalnum():
                    add(f"{name}Alias{alias}", "AWS::Lambda::Alias", name)
            if "DeploymentPreference" in merged:
                add("ServerlessDeploymentApplication", "AWS::CodeDeploy::Application", name)
                add(f"{name}DeploymentGroup", "AWS::CodeDeploy::DeploymentGroup", name)
                add("CodeDeployServiceRole", "AWS::IAM::Role", name)
            if "FunctionUrlConfig" in merged:
                add(f"{name}Url", "AWS::Lambda::Url", name)
            if "EventInvokeConfig" in merged:
                add(f"{name}EventInvokeConfig", "AWS::Lambda::EventInvokeConfig", name)
            for event, spec in _mapping(props.get("Events")).items():
                spec = _mapping(spec)
                event_type = spec.get("Type")
                event_props = _mapping(spec.get("Properties"))
                add(f"{name}{event}Permission", "AWS::Lambda::Permission", name)
                if event_type == "Api" and "RestApiId" not in event_props:
                    add("ServerlessRestApi", "AWS::ApiGateway::RestApi", name)
                    add("ServerlessRestApiProdStage", "AWS::ApiGateway::Stage", name)
                elif event_type == "HttpApi" and "ApiId" not in event_props:
                    add("ServerlessHttpApi", "AWS::ApiGatewayV2::Api", name)
                    add("ServerlessHttpApiApiGatewayDefaultStage", "AWS::ApiGatewayV2::Stage", name)
                elif isinstance(event_type, str) and event_type in _EVENT_RESOURCES:
                    add(f"{name}{event}", _EVENT_RESOURCES[event_type], name)
        elif kind == "AWS::Serverless::Api":
            add(f"{name}.Stage", "AWS::ApiGateway::Stage", name)
            add(f"{name}.Deployment", "AWS::ApiGateway::Deployment", name)
            stage = props.get("StageName")
            if isinstance(stage, str) and stage.isalnum():
                add(f"{name}{stage}Stage", "AWS::ApiGateway::Stage", name)
        elif kind == "AWS::Serverless::HttpApi":
            add(f"{name}.Stage", "AWS::ApiGatewayV2::Stage", name)
            add(f"{name}ApiGatewayDefaultStage", "AWS::ApiGatewayV2::Stage", name)
        elif kind == "AWS::Serverless::StateMachine" and "Role" not in props:
            add(f"{name}Role", "AWS::IAM::Role", name)
    return out
