"""A pier spec from SageMaker's own descriptions: of a deployed endpoint, or of the endpoint a
CloudFormation template describes. `pier export --endpoint NAME` and `pier export -f
template.yaml` go through it, so every export is made from a spec the same way.

The input is what CreateEndpointConfig and CreateModel take (DescribeEndpointConfig and
DescribeModel give the same members): each variant's model is its container's model data
(`ModelDataUrl` or `ModelDataSource.S3DataSource.S3Uri`). What a spec cannot say is refused
with the reason, naming the variant: a model with several containers, a model that lives
inside its image (no model data), a serverless variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from pier.iac.export import ExportError
from pier.iac.spec import EndpointSpec

__all__ = ["spec_from_requests"]


def _model_uri(variant: str, model_name: str, model: Mapping[str, Any]) -> str:
    containers = model.get("Containers") or []
    if len(containers) > 1:
        raise ExportError(
            f"variant {variant}: model {model_name} has {len(containers)} containers; a pier "
            "spec runs one model per variant"
        )
    container = model.get("PrimaryContainer") or (containers[0] if containers else {})
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    uri = container.get("ModelDataUrl") or source.get("S3Uri")
    if not uri:
        image = container.get("Image", "(none)")
        raise ExportError(
            f"variant {variant}: model {model_name} lives inside its image {image} (no "
            "ModelDataUrl); a pier spec names a model's data, not an image"
        )
    return str(uri)


def _environment(model: Mapping[str, Any]) -> dict[str, str]:
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}


def _variant(variant: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    name = variant["VariantName"]
    if "ServerlessConfig" in variant:
        raise ExportError(f"variant {name}: a serverless variant has no place in a pier spec")
    model_name = variant["ModelName"]
    model = models[model_name]
    out: dict[str, Any] = {
        "name": name,
        "model": _model_uri(name, model_name, model),
        "weight": float(variant.get("InitialVariantWeight", 1.0)),
        "instances": int(variant.get("InitialInstanceCount", 1)),
    }
    if "InstanceType" in variant:
        out["instance_type"] = variant["InstanceType"]
    environment = _environment(model)
    if environment:
        out["environment"] = environment
    return out


def _data_capture(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "destination": config["DestinationS3Uri"],
        "enabled": bool(config.get("EnableCapture", True)),
        "sampling_percentage": int(config.get("InitialSamplingPercentage", 100)),
        "capture": [o["CaptureMode"].lower() for o in config.get("CaptureOptions", [])]
        or ["input", "output"],
    }
    if config.get("KmsKeyId"):
        out["kms_key_id"] = config["KmsKeyId"]
    header = config.get("CaptureContentTypeHeader") or {}
    if header.get("JsonContentTypes"):
        out["json_content_types"] = list(header["JsonContentTypes"])
    if header.get("CsvContentTypes"):
        out["csv_content_types"] = list(header["CsvContentTypes"])
    return out


def spec_from_requests(
    endpoint: str,
    config: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any]],
    tags: Mapping[str, str] | None = None,
    what: str = "",
) -> EndpointSpec:
    """The spec of endpoint `endpoint` running `config` (an endpoint configuration), whose
    variants' models are `models` (model name → its CreateModel request). `what` names the
    source in messages."""
    doc: dict[str, Any] = {
        "kind": "pier/Endpoint",
        "endpoint": endpoint,
        "variants": [_variant(v, models) for v in config.get("ProductionVariants", [])],
    }
    shadows = config.get("ShadowProductionVariants") or []
    if len(shadows) > 1:
        raise ExportError(
            f"{what}endpoint {endpoint} has {len(shadows)} shadow variants; a pier spec has one"
        )
    if shadows:
        doc["shadow"] = _variant(shadows[0], models)
    if config.get("DataCaptureConfig"):
        doc["data_capture"] = _data_capture(config["DataCaptureConfig"])
    kept = {k: v for k, v in (tags or {}).items() if not k.lower().startswith(("aws:", "pier:"))}
    if kept:
        doc["tags"] = kept
    try:
        return EndpointSpec.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise ExportError(
            f"{what}endpoint {endpoint} cannot be written as a pier spec: {at}: {first['msg']}"
        ) from None
