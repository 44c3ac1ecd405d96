"""Rollouts driven by the registry: put the version an MLflow alias names into one variant of an
endpoint, under SageMaker's deployment guardrails, and follow the alias as it moves.

A client of the SageMaker API (boto3) and of MLflow's registry (MlflowClient), like the rest of
pier.iac; the platform's control plane runs the update itself (UpdateEndpoint with a
DeploymentConfig: canary, linear or all at once, alarms that roll back).

One rollout (`start`, then `follow`):
1. the alias is resolved to a version in the registry (`models:/NAME@ALIAS` → `models:/NAME/7`);
2. a new Model copies the variant's current one (image, environment, role) with ModelDataUrl
   `models:/NAME/7`, tagged with where it came from;
3. a new EndpointConfig copies the current one with that variant's ModelName replaced;
4. UpdateEndpoint with that config and the DeploymentConfig of the settings;
5. DescribeEndpoint until the endpoint is InService again: on the new config it succeeded; on
   the old one it was rolled back, FailureReason says why (an alarm, an instance that failed).
A rollback is recorded on the model version in MLflow: tag `pier.rollback` = JSON of the
reason, endpoint, variant and time.

`watch` repeats this whenever the alias moves to a version not yet tried.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pier.errors import PierError
from pier.iac.deployment import DeploymentSettings

ROLLBACK_TAG = "pier.rollback"
_ALIAS_URI = re.compile(r"models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)/?")
# What DescribeEndpointConfig answers that CreateEndpointConfig takes back (the rest is the
# response's own: ARN, creation time).
_CONFIG_KEYS = (
    "DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig", "ExplainerConfig",
    "ShadowProductionVariants", "ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation",
)  # fmt: skip
_MODEL_KEYS = ("ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation")
_CONTAINER_DROP = ("ModelDataSource", "ModelPackageName")


class RolloutError(PierError):
    """A rollout that cannot start: a bad alias URI, an unknown variant, an endpoint that is
    not InService, a registry that does not know the alias."""

    status = 400
    code = "RolloutError"


@dataclass(frozen=True)
class AliasUri:
    """`models:/NAME@ALIAS`."""

    name: str
    alias: str

    @staticmethod
    def parse(uri: str) -> AliasUri:
        """The name and alias of `uri`; RolloutError unless it is models:/NAME@ALIAS."""
        match = _ALIAS_URI.fullmatch(uri.strip())
        if match is None:
            raise RolloutError(
                f"{uri!r} is not a registry alias: give models:/NAME@ALIAS (e.g. "
                "models:/shop@champion)"
            )
        return AliasUri(match.group("name"), match.group("alias"))

    def __str__(self) -> str:
        return f"models:/{self.name}@{self.alias}"


class Registry:
    """MLflow's model registry at `tracking_uri` (pier's own MLflow under `pier up`)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self.uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def resolve(self, alias: AliasUri) -> str:
        """The version `alias` names now; RolloutError when the registry does not know it."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client.get_model_version_by_alias(alias.name, alias.alias).version)
        except MlflowException as exc:
            first = str(exc.message).strip().splitlines()[0] if exc.message else str(exc)
            raise RolloutError(f"{alias}: {first} (registry {self.uri})") from None

    def record_rollback(
        self, name: str, version: str, endpoint: str, variant: str, reason: str
    ) -> dict[str, str]:
        """Tag the version with the rollback (`pier.rollback`); the tag's value, parsed."""
        value = {
            "reason": reason,
            "endpoint": endpoint,
            "variant": variant,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self._client.set_model_version_tag(name, version, ROLLBACK_TAG, json.dumps(value))
        return value


@dataclass(frozen=True)
class Plan:
    """A rollout started: what the endpoint moves from and to."""

    endpoint: str
    variant: str
    alias: AliasUri
    version: str
    old_config: str
    new_config: str
    model: str
    deployment_config: dict[str, Any]

    @property
    def model_uri(self) -> str:
        return f"models:/{self.alias.name}/{self.version}"


@dataclass(frozen=True)
class Outcome:
    """How a rollout ended: on the new config, or back on the old one and why."""

    plan: Plan
    succeeded: bool
    reason: str | None
    seconds: float


def _name(*parts: str) -> str:
    """A SageMaker name (63 characters at most) from `parts`, the last one kept whole."""
    stamp = parts[-1]
    head = "-".join(parts[:-1])[: 62 - len(stamp)].strip("-")
    return f"{head}-{stamp}"


def start(
    sm: Any,
    endpoint: str,
    alias: AliasUri,
    version: str,
    settings: DeploymentSettings,
    variant: str | None = None,
) -> Plan:
    """Create the Model and EndpointConfig and call UpdateEndpoint (steps 2-4 of the module
    docstring). RolloutError when the endpoint is not InService or has no such variant;
    botocore's ClientError for what the platform refuses."""
    described = sm.describe_endpoint(EndpointName=endpoint)
    if described["EndpointStatus"] != "InService":
        raise RolloutError(
            f"endpoint {endpoint} is {described['EndpointStatus']}: a rollout starts from "
            "InService (wait for the update in progress, or fix the endpoint)"
        )
    old_config = described["EndpointConfigName"]
    config = sm.describe_endpoint_config(EndpointConfigName=old_config)
    variants = config["ProductionVariants"]
    names = [v["VariantName"] for v in variants]
    chosen = variant or names[0]
    if chosen not in names:
        raise RolloutError(
            f"endpoint {endpoint} has no production variant {chosen!r}: {', '.join(names)}"
        )
    current = next(v for v in variants if v["VariantName"] == chosen)
    model = sm.describe_model(ModelName=current["ModelName"])
    container = copy.deepcopy(model.get("PrimaryContainer") or model["Containers"][0])
    for key in _CONTAINER_DROP:
        container.pop(key, None)
    container["ModelDataUrl"] = f"models:/{alias.name}/{version}"
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + f"{time.time_ns() // 1000 % 1000:03d}"
    model_name = _name(endpoint, chosen, f"v{version}", stamp)
    sm.create_model(
        ModelName=model_name,
        PrimaryContainer=container,
        **{k: model[k] for k in _MODEL_KEYS if k in model},
        Tags=[
            {"Key": "pier:registry-alias", "Value": str(alias)},
            {"Key": "pier:registry-version", "Value": version},
        ],
    )
    new_variants = []
    for v in variants:
        v = copy.deepcopy(v)
        if v["VariantName"] == chosen:
            v["ModelName"] = model_name
        new_variants.append(v)
    new_config = _name(endpoint, f"v{version}", stamp)
    sm.create_endpoint_config(
        EndpointConfigName=new_config,
        ProductionVariants=new_variants,
        **{k: config[k] for k in _CONFIG_KEYS if k in config},
    )
    deployment_config = settings.deployment_config()
    sm.update_endpoint(
        EndpointName=endpoint, EndpointConfigName=new_config, DeploymentConfig=deployment_config
    )
    return Plan(endpoint, chosen, alias, version, old_config, new_config, model_name,
                deployment_config)  # fmt: skip


def follow(
    sm: Any,
    plan: Plan,
    progress: Callable[[dict[str, Any], float], None] = lambda described, elapsed: None,
    poll: float = 1.0,
    timeout: float = 8 * 3600,
) -> Outcome:
    """DescribeEndpoint every `poll` seconds until the update is over (step 5), telling
    `progress` each answer and the seconds since the start. RolloutError after `timeout`."""
    started = time.monotonic()
    while True:
        described = sm.describe_endpoint(EndpointName=plan.endpoint)
        elapsed = time.monotonic() - started
        progress(described, elapsed)
        status = described["EndpointStatus"]
        if status == "InService":
            if described["EndpointConfigName"] == plan.new_config:
                return Outcome(plan, True, None, elapsed)
            reason = described.get("FailureReason") or "the update was rolled back"
            return Outcome(plan, False, reason, elapsed)
        if status in ("Failed", "UpdateRollbackFailed"):
            reason = described.get("FailureReason") or status
            return Outcome(plan, False, f"{status}: {reason}", elapsed)
        if elapsed > timeout:
            raise RolloutError(f"endpoint {plan.endpoint} is still {status} after {timeout:.0f} s")
        time.sleep(poll)


def roll(
    sm: Any,
    registry: Registry,
    endpoint: str,
    alias: AliasUri,
    settings: DeploymentSettings,
    variant: str | None = None,
    version: str | None = None,
    progress: Callable[[dict[str, Any], float], None] = lambda described, elapsed: None,
    poll: float = 1.0,
) -> Outcome:
    """One whole rollout of `version` (default: what the alias names now); a rollback is
    recorded on the version in the registry."""
    version = version or registry.resolve(alias)
    plan = start(sm, endpoint, alias, version, settings, variant)
    outcome = follow(sm, plan, progress, poll)
    if not outcome.succeeded:
        registry.record_rollback(alias.name, version, endpoint, plan.variant,
                                 outcome.reason or "rolled back")  # fmt: skip
    return outcome


def watch(
    sm: Any,
    registry: Registry,
    endpoint: str,
    alias: AliasUri,
    settings: DeploymentSettings,
    tried: str,
    on_rollout: Callable[[str], Callable[[dict[str, Any], float], None]],
    on_outcome: Callable[[Outcome], None],
    variant: str | None = None,
    interval: float = 10.0,
    poll: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Follow the alias: every `interval` seconds resolve it, and when it names a version other
    than the last one tried (`tried` at the start), roll that version out (`on_rollout(version)`
    gives the progress callback, `on_outcome` hears how it ended). A rolled-back version is not
    tried again until the alias moves elsewhere and back. Returns when `stop()` is true."""
    while not stop():
        version = registry.resolve(alias)
        if version != tried:
            tried = version
            on_outcome(roll(sm, registry, endpoint, alias, settings, variant, version,
                            on_rollout(version), poll))  # fmt: skip
            continue
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and not stop():
            time.sleep(min(0.2, interval))


__all__ = [
    "ROLLBACK_TAG",
    "AliasUri",
    "Outcome",
    "Plan",
    "Registry",
    "RolloutError",
    "follow",
    "roll",
    "start",
    "watch",
]
