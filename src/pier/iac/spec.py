"""The pier spec: one short YAML document for one endpoint, compiled to a CloudFormation template.

```yaml
kind: pier/Endpoint            # optional marker; a document with `endpoint:` and no
endpoint: diabetes             # `Resources` is a spec too
variants:
  - {name: champion, model: "models:/diabetes@champion", weight: 90}
  - {name: challenger, model: "models:/diabetes@challenger", weight: 10}
```

The spec adds no semantics of its own: `to_local_template` turns it into the template a
person would write by hand (a Model per variant, one EndpointConfig, one Endpoint), and the
CloudFormation engine applies that. Model and EndpointConfig get no explicit names, so a change
replaces them under new generated names and updates the Endpoint in place (blue/green).

Validation is pydantic's, with every error re-raised as a `SourceError` that names the file,
the line and the field (`spec.yaml:7: variants[1].weight: ...`); checks that span fields
(unique names, some weight above zero, SageMaker's one-variant rule for shadows) follow it.
The format is documented in docs/spec.md.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from pier.contract.aws_patterns import java_pattern
from pier.iac.deployment import DeploymentSettings
from pier.iac.source import Located, LocatedList, SourceError, where
from pier.iac.validation import describe, locate, report, shown

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "KIND",
    "DataCapture",
    "DeploymentSettings",
    "EndpointSpec",
    "Variant",
    "is_spec",
    "load_spec",
    "model_logical_ids",
    "template",
    "to_local_template",
]

KIND: Literal["pier/Endpoint"] = "pier/Endpoint"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
# SageMaker allows 50 tags per resource; `pier apply` adds 3 of its own (pier:stack,
# pier:logical-id, pier:hash: see pier.iac.cloudformation.stack)
MAX_TAGS = 47

# SageMaker's patterns (botocore's service model), matched whole.
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_ENV_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CONTENT_TYPE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*/[a-zA-Z0-9](-*[a-zA-Z0-9.])*")
_KMS_KEY = re.compile(r"[a-zA-Z0-9:/_-]*")
_S3_DESTINATION = re.compile(r"s3://[^/]+(/.*)?", re.DOTALL)
_FILE_DESTINATION = re.compile(r"file:(///|(?!/))(.+)", re.DOTALL)
_TAG_PATTERN = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]+:")  # two letters at least: C:\ is a path


# ---------------------------------------------------------------------------- field checks


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a SageMaker name: 1 to 63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return value


@functools.cache
def _instance_types() -> frozenset[str]:
    import botocore.session  # the list SageMaker's API validates against, shipped with boto3

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for("ProductionVariantInstanceType").enum)


def _instance_type(value: str) -> str:
    known = _instance_types()
    if value not in known:
        close = difflib.get_close_matches(value, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (such as 'ml.m5.large')"
        raise ValueError(f"{value!r} is not a SageMaker instance type{hint}")
    return value


def _as_text(value: Any) -> Any:
    """Environment values and tags are strings to SageMaker; YAML's numbers and booleans are
    written the way a person typed them (`true`, not `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _env_key(value: str) -> str:
    if not _ENV_KEY.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name ([a-zA-Z_][a-zA-Z0-9_]*)")
    return value


def _content_type(value: str) -> str:
    if not _CONTENT_TYPE.fullmatch(value):
        raise ValueError(f"{value!r} is not a content type such as application/json")
    return value


def _destination(value: str) -> str:
    # What pier captures to (pier.monitor.capture): s3://bucket/prefix, or a local directory,
    # absolute (file:///dir) or under the platform's capture directory (file:dir)
    local = _FILE_DESTINATION.fullmatch(value)
    if not (_S3_DESTINATION.fullmatch(value) or local) or (local and ".." in local[2].split("/")):
        raise ValueError(
            f"{value!r} is not a capture destination: s3://bucket/prefix, or a local "
            "directory file:///absolute/dir or file:dir (under pier's capture directory)"
        )
    return value


def _kms_key(value: str) -> str:
    if not _KMS_KEY.fullmatch(value):
        raise ValueError(f"{value!r} is not a KMS key id, alias or ARN")
    return value


def _tag_text(value: str) -> str:
    pattern = java_pattern(_TAG_PATTERN)
    if pattern is not None and not pattern.fullmatch(value):
        raise ValueError(f"{value!r}: tags hold only letters, digits, spaces and _ . : / = + - @")
    return value


def _tag_key(value: str) -> str:
    if value.lower().startswith("aws:"):
        raise ValueError("the aws: prefix is reserved for AWS's own tags")
    if value.lower().startswith("pier:"):
        raise ValueError("the pier: prefix is reserved for the tags pier keeps its stacks in")
    return _tag_text(value)


Name = Annotated[str, AfterValidator(_name)]
EnvKey = Annotated[str, Field(max_length=1024), AfterValidator(_env_key)]
EnvValue = Annotated[str, BeforeValidator(_as_text), Field(max_length=1024)]
TagKey = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_tag_key)]
TagValue = Annotated[
    str, BeforeValidator(_as_text), Field(max_length=256), AfterValidator(_tag_text)
]
ContentType = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_content_type)]


ContentTypes = Annotated[list[ContentType], Field(min_length=1, max_length=10)]
CaptureMode = Literal["input", "output"]


def _both_modes() -> list[CaptureMode]:
    return ["input", "output"]


class _Strict(BaseModel):
    # strict: `weight: "10"` or `instances: true` are mistakes worth naming, not coercing
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ----------------------------------------------------------------------------------- models


class Variant(_Strict):
    """A production variant (or the shadow): one model on `instances` instances."""

    name: Name
    model: Annotated[str, Field(min_length=1, max_length=1024)]
    weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    instances: Annotated[int, Field(ge=1)] = 1
    instance_type: Annotated[str, AfterValidator(_instance_type)] = DEFAULT_INSTANCE_TYPE
    environment: Annotated[dict[EnvKey, EnvValue], Field(max_length=100)] = Field(
        default_factory=dict
    )


class DataCapture(_Strict):
    """SageMaker's DataCaptureConfig, in the spec's words."""

    destination: Annotated[str, Field(max_length=512), AfterValidator(_destination)]
    enabled: bool = True
    sampling_percentage: Annotated[int, Field(ge=0, le=100)] = 100
    capture: Annotated[list[CaptureMode], Field(min_length=1, max_length=2)] = Field(
        default_factory=_both_modes
    )
    json_content_types: ContentTypes | None = None
    csv_content_types: ContentTypes | None = None
    kms_key_id: Annotated[str, Field(max_length=2048), AfterValidator(_kms_key)] | None = None


class EndpointSpec(_Strict):
    """A whole spec: the endpoint, its variants, an optional shadow, data capture and tags."""

    kind: Literal["pier/Endpoint"] = KIND
    endpoint: Name
    description: Annotated[str, Field(max_length=1024)] | None = None
    variants: Annotated[list[Variant], Field(min_length=1, max_length=10)]
    shadow: Variant | None = None
    data_capture: DataCapture | None = None
    deployment: DeploymentSettings | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=50)] = Field(default_factory=dict)

    @property
    def all_variants(self) -> list[Variant]:
        return [*self.variants, *([self.shadow] if self.shadow else [])]


# ------------------------------------------------------------------------------- detection


def is_spec(doc: Any) -> bool:
    """A mapping that says `kind: pier/...`, or has `endpoint:` and none of a CloudFormation
    template's own sections, is a pier spec (and `load_spec` judges it)."""
    if not isinstance(doc, dict):
        return False
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.startswith("pier/"):
        return True
    return "endpoint" in doc and not {"Resources", "AWSTemplateFormatVersion"} & doc.keys()


# ----------------------------------------------------------------------------------- loading


def load_spec(doc: Any) -> EndpointSpec:
    """Validate a document read by `pier.iac.source`; SourceError names file:line: field."""
    if not isinstance(doc, dict):
        raise SourceError(
            f"{where(doc)}: a pier spec is a mapping with `endpoint:` and `variants:`, "
            f"not {describe(doc)}"
        )
    try:
        spec = EndpointSpec.model_validate(doc)
    except ValidationError as exc:
        raise SourceError(report(doc, exc.errors(), EndpointSpec)) from None
    _cross_checks(doc, spec)
    return spec


def _cross_checks(doc: Any, spec: EndpointSpec) -> None:
    seen: dict[str, str] = {}
    for path, variant in _variant_paths(spec):
        if variant.name in seen:
            raise _error(
                doc,
                (*path, "name"),
                f"the variant name {variant.name!r} is already used by {seen[variant.name]}",
            )
        seen[variant.name] = shown(path)
    if not any(v.weight > 0 for v in spec.variants):
        raise _error(doc, ("variants",), "at least one variant needs a weight above 0")
    if spec.shadow is not None and len(spec.variants) != 1:
        raise _error(
            doc,
            ("shadow",),
            "SageMaker runs a shadow variant beside exactly one production variant; "
            f"this spec has {len(spec.variants)}",
        )
    if len(spec.tags) > MAX_TAGS:
        raise _error(
            doc,
            ("tags",),
            f"at most {MAX_TAGS} tags, not {len(spec.tags)} (SageMaker allows 50 per resource "
            "and pier keeps 3 of its own)",
        )
    capture = spec.data_capture
    if capture is not None and len(set(capture.capture)) != len(capture.capture):
        raise _error(doc, ("data_capture", "capture"), "input and output may each appear once")


def _variant_paths(spec: EndpointSpec) -> list[tuple[tuple[str | int, ...], Variant]]:
    out: list[tuple[tuple[str | int, ...], Variant]] = [
        (("variants", i), v) for i, v in enumerate(spec.variants)
    ]
    if spec.shadow is not None:
        out.append((("shadow",), spec.shadow))
    return out


def _error(doc: Any, loc: Sequence[str | int], message: str) -> SourceError:
    place, path = locate(doc, loc)
    return SourceError(f"{place}: {path}: {message}")


# -------------------------------------------------------------------------------- templates


def model_logical_ids(spec: EndpointSpec) -> dict[str, str]:
    """Variant name → logical id of its Model resource (`ModelChampion`); stable as long as the
    variant keeps its name, so an edit updates the resource instead of replacing it."""
    ids: dict[str, str] = {}
    for variant in spec.all_variants:
        base = "Model" + "".join(p[:1].upper() + p[1:] for p in variant.name.split("-") if p)
        logical, n = base, 2
        while logical in ids.values():  # `a-b` and `aB` both read `ModelAB`
            logical, n = f"{base}{n}", n + 1
        ids[variant.name] = logical
    return ids


def template(
    spec: EndpointSpec,
    *,
    containers: dict[str, dict[str, Any]],
    model_properties: dict[str, Any] | None = None,
    capture_destination: Any = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The CloudFormation template of a spec. `containers` gives each variant's
    PrimaryContainer; `model_properties` is added to every Model (ExecutionRoleArn);
    `capture_destination` replaces the spec's data capture destination (a `Ref`)."""
    ids = model_logical_ids(spec)
    tags = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
    resources: dict[str, Any] = {}
    for variant in spec.all_variants:
        props: dict[str, Any] = {**(model_properties or {})}
        props["PrimaryContainer"] = containers[variant.name]
        if tags:
            props["Tags"] = tags
        resources[ids[variant.name]] = {"Type": "AWS::SageMaker::Model", "Properties": props}

    config: dict[str, Any] = {"ProductionVariants": [_variant(v, ids) for v in spec.variants]}
    if spec.shadow is not None:
        config["ShadowProductionVariants"] = [_variant(spec.shadow, ids)]
    if spec.data_capture is not None:
        config["DataCaptureConfig"] = _data_capture(spec.data_capture, capture_destination)
    if tags:
        config["Tags"] = tags
    resources["EndpointConfig"] = {"Type": "AWS::SageMaker::EndpointConfig", "Properties": config}

    endpoint: dict[str, Any] = {
        "EndpointName": spec.endpoint,
        "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
    }
    if spec.deployment is not None:
        endpoint["DeploymentConfig"] = spec.deployment.deployment_config()
    if tags:
        endpoint["Tags"] = tags
    resources["Endpoint"] = {"Type": "AWS::SageMaker::Endpoint", "Properties": endpoint}

    out: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": spec.description or f"SageMaker endpoint {spec.endpoint} (pier spec)",
    }
    if parameters:
        out["Parameters"] = parameters
    out["Resources"] = resources
    out["Outputs"] = {
        "EndpointName": {
            "Description": "The endpoint to invoke",
            "Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
        },
        "EndpointArn": {"Description": "The endpoint's ARN", "Value": {"Ref": "Endpoint"}},
    }
    return out


def _variant(variant: Variant, ids: dict[str, str]) -> dict[str, Any]:
    return {
        "VariantName": variant.name,
        "ModelName": {"Fn::GetAtt": [ids[variant.name], "ModelName"]},
        "InitialInstanceCount": variant.instances,
        "InstanceType": variant.instance_type,
        "InitialVariantWeight": variant.weight,
    }


def _data_capture(capture: DataCapture, destination: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "EnableCapture": capture.enabled,
        "InitialSamplingPercentage": capture.sampling_percentage,
        "DestinationS3Uri": destination if destination is not None else capture.destination,
        "CaptureOptions": [{"CaptureMode": mode.capitalize()} for mode in capture.capture],
    }
    if capture.kms_key_id is not None:
        out["KmsKeyId"] = capture.kms_key_id
    header: dict[str, Any] = {}
    if capture.csv_content_types:
        header["CsvContentTypes"] = list(capture.csv_content_types)
    if capture.json_content_types:
        header["JsonContentTypes"] = list(capture.json_content_types)
    if header:
        out["CaptureContentTypeHeader"] = header
    return out


def to_local_template(doc: Any) -> dict[str, Any]:
    """The template that runs a spec on pier: model URIs as given (`models:/...`), relative
    paths made absolute against the spec's own directory, pier's built-in image.

    The template is a `Located` tree whose lines are the spec's own (a variant's weight at the
    line of its `weight:`), so whatever the CloudFormation engine reports names the spec."""
    spec = load_spec(doc)
    file = str(getattr(doc, "file", "?"))
    base = Path(file).parent if file != "?" else None
    containers = {}
    for variant in spec.all_variants:
        container: dict[str, Any] = {"ModelDataUrl": local_model_uri(variant.model, base)}
        if variant.environment:
            container["Environment"] = dict(variant.environment)
        containers[variant.name] = container
    out: Located = _stamp(template(spec, containers=containers), file, _line(doc, "endpoint"))
    _spec_lines(out, doc, spec)
    return out


# Template property → the spec field it comes from, for the lines of `to_local_template`.
_VARIANT_FIELDS = {
    "VariantName": "name",
    "ModelName": "model",
    "InitialInstanceCount": "instances",
    "InstanceType": "instance_type",
    "InitialVariantWeight": "weight",
}
_CAPTURE_FIELDS = {
    "EnableCapture": "enabled",
    "InitialSamplingPercentage": "sampling_percentage",
    "DestinationS3Uri": "destination",
    "CaptureOptions": "capture",
    "KmsKeyId": "kms_key_id",
    "CaptureContentTypeHeader": "json_content_types",
}


def _line(node: Any, key: str | int | None = None) -> int:
    """The spec line of `node[key]` (or of `node`), 0 if unknown."""
    if isinstance(node, Located) and isinstance(key, str):
        return node.key_lines.get(key, node.line)
    if isinstance(node, LocatedList) and isinstance(key, int) and key < len(node.item_lines):
        return node.item_lines[key]
    return int(getattr(node, "line", 0))


def _stamp(value: Any, file: str, line: int) -> Any:
    """`value` as Located / LocatedList, every part of it at `line`."""
    if isinstance(value, dict):
        mapping = Located()
        mapping.file, mapping.line = file, line
        for k, v in value.items():
            mapping[k] = _stamp(v, file, line)
            mapping.key_lines[k] = line
        return mapping
    if isinstance(value, list):
        items = LocatedList()
        items.file, items.line = file, line
        for v in value:
            items.append(_stamp(v, file, line))
            items.item_lines.append(line)
        return items
    return value


def _relocate(value: Any, line: int) -> None:
    """Move a Located / LocatedList subtree, in place, to `line`."""
    if isinstance(value, Located):
        value.line = line
        value.key_lines = dict.fromkeys(value.key_lines, line)
        for v in value.values():
            _relocate(v, line)
    elif isinstance(value, LocatedList):
        value.line = line
        value.item_lines = [line] * len(value.item_lines)
        for v in value:
            _relocate(v, line)


def _pin(node: Any, key: str | int, line: int, fields: Mapping[str, str] | None = None,
         source: Any = None) -> None:  # fmt: skip
    """Put `node[key]` (all of it) at `line`; with `fields` (its key → the `source` mapping's
    key), each of its keys at the line of the spec field it came from."""
    if not line:
        return
    if isinstance(node, Located) and isinstance(key, str):
        node.key_lines[key] = line
    elif isinstance(node, LocatedList) and isinstance(key, int):
        node.item_lines[key] = line
    _relocate(node[key], line)
    if fields is not None and isinstance(source, Located):
        for prop, field in fields.items():
            if prop in node[key]:
                _pin(node[key], prop, _line(source, field))


def _spec_lines(out: Located, doc: Any, spec: EndpointSpec) -> None:
    resources = out["Resources"]
    ids = model_logical_ids(spec)
    config = resources["EndpointConfig"]["Properties"]
    entries: list[tuple[Variant, Any, str | int, Any, int]] = [
        (v, doc.get("variants"), i, config["ProductionVariants"], i)
        for i, v in enumerate(spec.variants)
    ]
    if spec.shadow is not None:
        entries.append((spec.shadow, doc, "shadow", config["ShadowProductionVariants"], 0))
    _pin(resources, "EndpointConfig", _line(doc, "variants"))
    _pin(resources, "Endpoint", _line(doc, "endpoint"))
    if "DeploymentConfig" in resources["Endpoint"]["Properties"]:
        _pin(resources["Endpoint"]["Properties"], "DeploymentConfig", _line(doc, "deployment"))
    for variant, parent, key, variants, index in entries:
        source = parent[key]
        model = ids[variant.name]
        _pin(resources, model, _line(parent, key))
        container = resources[model]["Properties"]["PrimaryContainer"]
        _pin(container, "ModelDataUrl", _line(source, "model"))
        if "Environment" in container:
            environment = source.get("environment")
            _pin(container, "Environment", _line(source, "environment"))
            for name in container["Environment"]:
                container["Environment"].key_lines[name] = _line(environment, name)
        _pin(variants, index, _line(parent, key), _VARIANT_FIELDS, source)
    if "DataCaptureConfig" in config:
        _pin(config, "DataCaptureConfig", _line(doc, "data_capture"), _CAPTURE_FIELDS,
             doc.get("data_capture"))  # fmt: skip
    for resource in resources.values():
        tags = resource["Properties"].get("Tags")
        if tags is not None:
            _pin(resource["Properties"], "Tags", _line(doc, "tags"))
            for i, tag in enumerate(tags):
                _pin(tags, i, _line(doc.get("tags"), tag["Key"]))


def local_model_uri(model: str, base: Path | None) -> str:
    """A URI (`models:/`, `runs:/`, `s3://`, `file://`...) as is; a path absolute, relative
    paths against `base` (the spec's directory: the platform runs elsewhere)."""
    if _SCHEME.match(model):
        return model
    path = Path(model).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return os.path.abspath(path)  # normalised (`..` folded), symlinks left as written
