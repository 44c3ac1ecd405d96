"""One model URI to one endpoint, the way MLflow's SageMaker target does it: `pier deploy` and
the MLflow deployments plugin (`mlflow deployments create -t pier`) both call this.

A client of the SageMaker API (boto3), like the rest of pier.iac. One deployment:
1. the URI is pinned: `models:/NAME@ALIAS` becomes `models:/NAME/7` (the version the alias
   names now), so the endpoint does not move when the alias does;
2. CreateModel with ModelDataUrl = that URI (a new Model per deployment);
3. CreateEndpointConfig: mode `create` or `replace` puts the model alone in the config (weight
   1); mode `add` keeps the current variants and adds the model with weight 0 (MLflow's
   SageMaker semantics: shift traffic afterwards with UpdateEndpointWeightsAndCapacities);
4. CreateEndpoint, or UpdateEndpoint (blue/green: the old instances serve until the new ones
   are healthy) when it exists; mode `create` refuses an existing endpoint;
5. DescribeEndpoint until InService on the new config; a failed update keeps the old config
   and says why. Then the old config is deleted with the models only it used (in mode add
   the new config still uses them), unless `archive`, as SageMaker's target does.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pier.errors import PierError
from pier.iac.rollout import AliasUri, Registry

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
_VERSION_URI = re.compile(r"models:/(?P<name>[^/@]+)/(?P<version>\d+)/?")
_SETTLED = ("InService", "Failed")
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9-]+")
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


class DeployError(PierError):
    """A deployment that cannot be done as asked: an existing endpoint in mode create, a
    variant that does not exist, a failed or timed-out endpoint."""

    status = 400
    code = "DeployError"


class Mode(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    ADD = "add"


@dataclass(frozen=True)
class Request:
    """What to deploy and how (MLflow's SageMaker config keys, in SageMaker's words)."""

    endpoint: str
    model_uri: str
    mode: Mode = Mode.REPLACE
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    variant_name: str | None = None
    image_url: str | None = None
    execution_role_arn: str | None = None
    vpc_config: Mapping[str, Any] | None = None
    env: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None
    data_capture_config: Mapping[str, Any] | None = None
    archive: bool = False
    synchronous: bool = True
    timeout_seconds: float = 1200.0


@dataclass(frozen=True)
class Result:
    endpoint: str
    created: bool  # CreateEndpoint (else UpdateEndpoint)
    model_uri: str  # as pinned
    model: str
    variant: str
    config: str
    described: dict[str, Any] | None  # DescribeEndpoint at the end (None: not waited for)
    deleted: list[str] = field(default_factory=list)  # what `replace` cleaned up


def check_endpoint_name(name: str) -> None:
    if not _ENDPOINT_NAME.fullmatch(name):
        raise DeployError(
            f"{name!r} is not an endpoint name: 1 to 63 letters, digits and hyphens, starting "
            "and ending with a letter or digit"
        )


def pin(model_uri: str, tracking_uri: str | None) -> str:
    """`models:/NAME@ALIAS` as `models:/NAME/VERSION` (the registry at `tracking_uri`); any
    other URI as it is."""
    if "@" not in model_uri or not model_uri.startswith("models:/"):
        return model_uri
    alias = AliasUri.parse(model_uri)
    if tracking_uri is None:
        raise DeployError(f"{model_uri}: no MLflow tracking URI to resolve the alias with")
    try:
        return f"models:/{alias.name}/{Registry(tracking_uri).resolve(alias)}"
    except PierError as exc:
        raise DeployError(exc.message) from None


def registered_name(model_uri: str) -> str | None:
    """NAME of `models:/NAME/...` or `models:/NAME@...`, else None."""
    if not model_uri.startswith("models:/"):
        return None
    return re.split(r"[/@]", model_uri.removeprefix("models:/"), maxsplit=1)[0] or None


def _slug(text: str) -> str:
    return _NAME_CHARS.sub("-", text).strip("-") or "model"


def _name(*parts: str) -> str:
    """A SageMaker name (63 characters at most) from `parts`, the last one kept whole."""
    stamp = parts[-1]
    head = _slug("-".join(parts[:-1]))[: 62 - len(stamp)].strip("-")
    return f"{head}-{stamp}"


def default_variant(model_uri: str) -> str:
    """`models:/diabetes/3` → `diabetes-v3`; otherwise a name from the URI's last parts."""
    match = _VERSION_URI.fullmatch(model_uri)
    if match:
        return _name(match.group("name"), f"v{match.group('version')}")
    return _slug(model_uri.rstrip("/").rsplit("/", 2)[-1])[:63].strip("-") or "model"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def not_found(exc: Exception) -> bool:
    return _code(exc) == "ValidationException" and "Could not find" in str(exc)


def describe(sm: Any, endpoint: str) -> dict[str, Any] | None:
    """DescribeEndpoint without its ResponseMetadata, or None if there is no such endpoint."""
    try:
        described = dict(sm.describe_endpoint(EndpointName=endpoint))
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    described.pop("ResponseMetadata", None)
    return described


def wait(
    sm: Any,
    endpoint: str,
    until: Callable[[dict[str, Any] | None], bool],
    timeout: float,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """DescribeEndpoint until `until(description)`; DeployError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        described = describe(sm, endpoint)
        status = described["EndpointStatus"] if described else "Deleted"
        if on_status is not None and status != last:
            on_status(status)
        last = status
        if until(described):
            return described
        if time.monotonic() > deadline:
            raise DeployError(f"endpoint {endpoint} is still {status} after {timeout:g} s")
        time.sleep(0.25)


def _settled(d: dict[str, Any] | None) -> bool:
    return d is None or d["EndpointStatus"] in _SETTLED


def _variant(request: Request, model: str, weight: float) -> dict[str, Any]:
    return {
        "VariantName": request.variant_name or default_variant(request.model_uri),
        "ModelName": model,
        "InitialInstanceCount": request.instance_count,
        "InstanceType": request.instance_type,
        "InitialVariantWeight": weight,
    }


def _create_model(sm: Any, request: Request, name: str) -> None:
    container: dict[str, Any] = {"ModelDataUrl": request.model_uri}
    if request.image_url:
        container["Image"] = request.image_url
    if request.env:
        container["Environment"] = dict(request.env)
    extra: dict[str, Any] = {}
    if request.execution_role_arn:
        extra["ExecutionRoleArn"] = request.execution_role_arn
    if request.vpc_config:
        extra["VpcConfig"] = dict(request.vpc_config)
    if request.tags:
        extra["Tags"] = [{"Key": k, "Value": str(v)} for k, v in request.tags.items()]
    sm.create_model(ModelName=name, PrimaryContainer=container, **extra)


def deploy(
    sm: Any,
    request: Request,
    tracking_uri: str | None,
    on_status: Callable[[str], None] | None = None,
) -> Result:
    """Deploy `request.model_uri` to `request.endpoint` (the module docstring's steps)."""
    check_endpoint_name(request.endpoint)
    pinned = pin(request.model_uri, tracking_uri)
    request = Request(**{**request.__dict__, "model_uri": pinned})
    current = describe(sm, request.endpoint)
    if current is not None and request.mode is Mode.CREATE:
        raise DeployError(
            f"endpoint {request.endpoint} already exists: update it instead (mode replace or add)"
        )
    if current is not None:
        current = wait(sm, request.endpoint, _settled, request.timeout_seconds, on_status)
    if current is not None and current["EndpointStatus"] == "Failed":
        # SageMaker cannot update a failed endpoint: replace it.
        sm.delete_endpoint(EndpointName=request.endpoint)
        wait(sm, request.endpoint, lambda d: d is None, request.timeout_seconds, on_status)
        current = None
    stamp = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    variant = request.variant_name or default_variant(pinned)
    model = _name(request.endpoint, variant, stamp)
    old: dict[str, Any] | None = None
    if current is not None:
        old = sm.describe_endpoint_config(EndpointConfigName=current["EndpointConfigName"])
    variants: list[dict[str, Any]] = []
    if request.mode is Mode.ADD and old is not None:
        variants = [dict(v) for v in old["ProductionVariants"]]
        if any(v["VariantName"] == variant for v in variants):
            raise DeployError(
                f"endpoint {request.endpoint} already has a variant {variant}: name the new one "
                "(variant_name / --variant) or use mode replace"
            )
    _create_model(sm, request, model)
    weight = 0.0 if request.mode is Mode.ADD and old is not None else 1.0
    variants.append(_variant(request, model, weight))
    config = _name(request.endpoint, stamp)
    extra: dict[str, Any] = {}
    if request.data_capture_config:
        extra["DataCaptureConfig"] = dict(request.data_capture_config)
    elif old is not None and "DataCaptureConfig" in old:
        extra["DataCaptureConfig"] = old["DataCaptureConfig"]
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=variants, **extra)
    if current is None:
        sm.create_endpoint(EndpointName=request.endpoint, EndpointConfigName=config)
    else:
        sm.update_endpoint(EndpointName=request.endpoint, EndpointConfigName=config)
    result = Result(request.endpoint, current is None, pinned, model, variant, config, None)
    if not request.synchronous:
        return result
    done = wait(sm, request.endpoint, _settled, request.timeout_seconds, on_status)
    if done is None:
        raise DeployError(f"endpoint {request.endpoint} was deleted while it was being deployed")
    reason = done.get("FailureReason") or "no reason given"
    if done["EndpointStatus"] != "InService":
        raise DeployError(f"endpoint {request.endpoint} is {done['EndpointStatus']}: {reason}")
    if done["EndpointConfigName"] != config:  # a failed update keeps the previous config
        raise DeployError(
            f"endpoint {request.endpoint} stays on {done['EndpointConfigName']}; "
            f"the update to {config} failed: {reason}"
        )
    deleted: list[str] = []
    if old is not None and not request.archive:  # as SageMaker's target: the old config goes;
        deleted = remove_unused(sm, old)  # its models too unless the new config uses them (add)
    return Result(request.endpoint, current is None, pinned, model, variant, config, done,
                  deleted)  # fmt: skip


def _all(sm: Any, operation: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in sm.get_paginator(operation).paginate():
        items.extend(page[key])
    return items


def remove_unused(sm: Any, config: dict[str, Any]) -> list[str]:
    """Delete the endpoint config described by `config` unless an endpoint uses it, then its
    models that no remaining config uses. What was deleted, as `kind name`."""
    name = config["EndpointConfigName"]
    users = {
        d["EndpointConfigName"]
        for e in _all(sm, "list_endpoints", "Endpoints")
        if (d := describe(sm, e["EndpointName"])) is not None
    }
    if name in users:
        return []
    deleted: list[str] = []
    if _gone_or(sm.delete_endpoint_config, EndpointConfigName=name):
        deleted.append(f"endpoint-config {name}")
    used: set[str] = set()
    for c in _all(sm, "list_endpoint_configs", "EndpointConfigs"):
        try:
            other = sm.describe_endpoint_config(EndpointConfigName=c["EndpointConfigName"])
        except Exception as exc:
            if not_found(exc):
                continue
            raise
        used.update(v["ModelName"] for v in other["ProductionVariants"])
        used.update(v["ModelName"] for v in other.get("ShadowProductionVariants", []))
    variants = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
    for model in dict.fromkeys(v["ModelName"] for v in variants):
        if model not in used and _gone_or(sm.delete_model, ModelName=model):
            deleted.append(f"model {model}")
    return deleted


def _gone_or(call: Any, **request: Any) -> bool:
    """`call(**request)`; False if the resource was already gone."""
    try:
        call(**request)
    except Exception as exc:
        if not_found(exc):
            return False
        raise
    return True


def delete(
    sm: Any,
    endpoint: str,
    archive: bool = False,
    synchronous: bool = True,
    timeout_seconds: float = 300.0,
    on_status: Callable[[str], None] | None = None,
) -> list[str] | None:
    """DeleteEndpoint, then (unless `archive`) its config and models that nothing else uses.
    None if there was no such endpoint (deleting is idempotent); else what was deleted."""
    current = describe(sm, endpoint)
    if current is None:
        return None
    if not synchronous and not archive:
        raise DeployError(
            "archive=False deletes the endpoint's config and models once the endpoint is gone: "
            "it needs synchronous=True"
        )
    config = sm.describe_endpoint_config(EndpointConfigName=current["EndpointConfigName"])
    _gone_or(sm.delete_endpoint, EndpointName=endpoint)
    deleted = [f"endpoint {endpoint}"]
    if not synchronous:
        return deleted
    wait(sm, endpoint, lambda d: d is None, timeout_seconds, on_status)
    if not archive:
        deleted += remove_unused(sm, config)
    return deleted


def parse_weights(pairs: list[str]) -> dict[str, float]:
    """`champion=90 challenger=10` → {"champion": 90.0, "challenger": 10.0}."""
    weights: dict[str, float] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise DeployError(f"{pair!r}: expected VARIANT=WEIGHT, e.g. champion=90")
        try:
            weight = float(value)
        except ValueError:
            raise DeployError(f"{pair!r}: the weight {value!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise DeployError(f"{pair!r}: a weight is a finite number, 0 or more")
        if name in weights:
            raise DeployError(f"variant {name} is given twice")
        weights[name] = weight
    if not weights:
        raise DeployError("give at least one VARIANT=WEIGHT")
    return weights


def set_weights(
    sm: Any,
    endpoint: str,
    weights: Mapping[str, float],
    timeout_seconds: float = 300.0,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """UpdateEndpointWeightsAndCapacities for the variants named (the others keep theirs);
    waits for InService and returns DescribeEndpoint."""
    current = describe(sm, endpoint)
    if current is None:
        raise DeployError(f"there is no endpoint {endpoint}")
    names = [v["VariantName"] for v in current.get("ProductionVariants", [])]
    unknown = [n for n in weights if n not in names]
    if unknown:
        raise DeployError(
            f"endpoint {endpoint} has no variant {', '.join(unknown)}; its variants: "
            f"{', '.join(names)}"
        )
    given = [{"VariantName": n, "DesiredWeight": w} for n, w in weights.items()]
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint, DesiredWeightsAndCapacities=given
    )
    done = wait(sm, endpoint, _settled, timeout_seconds, on_status)
    if done is None:
        raise DeployError(f"endpoint {endpoint} was deleted while its weights changed")
    if done["EndpointStatus"] != "InService":
        reason = done.get("FailureReason") or "no reason given"
        raise DeployError(f"endpoint {endpoint} is {done['EndpointStatus']}: {reason}")
    return done


__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "DeployError",
    "Mode",
    "Request",
    "Result",
    "check_endpoint_name",
    "default_variant",
    "delete",
    "deploy",
    "describe",
    "not_found",
    "parse_weights",
    "pin",
    "registered_name",
    "remove_unused",
    "set_weights",
    "wait",
]
