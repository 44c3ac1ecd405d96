"""Export a pier spec for real AWS: a CloudFormation template (YAML) or Terraform (HCL).

A spec names models the way pier runs them (`models:/diabetes@champion`), which means nothing
to SageMaker: every variant's model needs an S3 (or https) location of its `model.tar.gz`,
given per model URI or variant name (`--model-data models:/diabetes@champion=s3://...`), and
the container image and the execution role are deploy-time inputs. All of them become
parameters (CloudFormation) or variables (Terraform) whose defaults are the options given, so
one exported file deploys to several accounts. No IAM role is created: the role stays an input.

Both outputs keep what makes blue/green work on AWS: Model and EndpointConfig have no fixed
names, so a change creates new ones and updates the Endpoint in place (CloudFormation does this
by itself; Terraform needs `create_before_destroy`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from pier.errors import PierError
from pier.iac.hcl import Block, Body, Expr, quote, render
from pier.iac.spec import EndpointSpec, Variant, model_logical_ids, template

__all__ = [
    "ExportError",
    "resolve_model_data",
    "to_cloudformation",
    "to_cloudformation_yaml",
    "to_terraform",
]

# AWS's own patterns (botocore's service model), anchored for CloudFormation's AllowedPattern.
ROLE_ARN = r"^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
S3_LOCATION = r"^(https|s3)://([^/]+)/?(.*)$"
_IMAGE = re.compile(r"\S{1,255}")


class ExportError(PierError):
    """An export cannot be made from these options: the message says which and why."""

    status = 400
    code = "ValidationError"


@dataclass(frozen=True)
class _Inputs:
    """What an export needs besides the spec, checked: variant name → S3 location, etc."""

    model_data: dict[str, str]
    image: str | None
    role_arn: str | None
    capture_destination: str | None


def resolve_model_data(spec: EndpointSpec, given: Mapping[str, str]) -> dict[str, str]:
    """Variant name → S3 location. `given` is keyed by model URI or variant name; a variant
    whose model already is an s3:// or https:// location needs nothing."""
    by_name = {v.name: v for v in spec.all_variants}
    by_model = {v.model for v in spec.all_variants}
    for key, value in given.items():
        if key not in by_name and key not in by_model:
            known = ", ".join(sorted(by_model | by_name.keys()))
            raise ExportError(
                f"--model-data {key}=...: no variant has this model or name (known: {known})"
            )
        _check_location(f"--model-data {key}", value)
    out: dict[str, str] = {}
    for variant in spec.all_variants:
        location = given.get(variant.name) or given.get(variant.model)
        if location is None and re.match(S3_LOCATION, variant.model):
            location = variant.model
        if location is None:
            raise ExportError(
                f"variant {variant.name!r} ({variant.model}) has no S3 location for AWS: "
                f"add --model-data {variant.model}=s3://BUCKET/PATH/model.tar.gz"
            )
        out[variant.name] = location
    return out


def _check_location(what: str, location: str) -> None:
    if not re.match(S3_LOCATION, location) or len(location) > 1024:
        raise ExportError(
            f"{what}: {location!r} is not an S3 location such as s3://bucket/path/model.tar.gz"
        )


def _inputs(
    spec: EndpointSpec,
    model_data: Mapping[str, str],
    image: str | None,
    execution_role_arn: str | None,
    capture_destination: str | None,
) -> _Inputs:
    if image is not None and not _IMAGE.fullmatch(image):
        raise ExportError(f"--image: {image!r} is not an image URI (no spaces, 1-255 characters)")
    if execution_role_arn is not None and not re.match(ROLE_ARN, execution_role_arn):
        raise ExportError(
            f"--role-arn: {execution_role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::123456789012:role/NAME)"
        )
    destination = None
    if capture_destination is not None:
        if spec.data_capture is None:
            raise ExportError("--capture-destination: the spec has no data_capture section")
        if not re.match(S3_LOCATION, capture_destination):
            raise ExportError(
                f"--capture-destination: {capture_destination!r} is not an S3 location "
                "such as s3://bucket/capture"
            )
        destination = capture_destination
    elif spec.data_capture is not None:
        destination = spec.data_capture.destination
        if not re.match(S3_LOCATION, destination):
            raise ExportError(
                f"data_capture.destination {destination!r} is a directory on pier's machine: "
                "give --capture-destination s3://BUCKET/PREFIX for AWS"
            )
    return _Inputs(resolve_model_data(spec, model_data), image, execution_role_arn, destination)


# --------------------------------------------------------------------------- CloudFormation


def to_cloudformation(
    spec: EndpointSpec,
    *,
    model_data: Mapping[str, str],
    image: str | None = None,
    execution_role_arn: str | None = None,
    capture_destination: str | None = None,
) -> dict[str, Any]:
    """The CloudFormation template (a dict) that deploys `spec` on SageMaker."""
    inputs = _inputs(spec, model_data, image, execution_role_arn, capture_destination)
    ids = model_logical_ids(spec)
    parameters: dict[str, Any] = {
        "ImageUri": _parameter(
            "Container image serving MLflow models on SageMaker (an ECR image URI)",
            inputs.image,
            min_length=1,
        ),
        "ExecutionRoleArn": _parameter(
            "IAM role SageMaker assumes to pull the image and read the model data",
            inputs.role_arn,
            pattern=ROLE_ARN,
        ),
    }
    containers = {}
    for variant in spec.all_variants:
        name = f"{ids[variant.name]}DataUrl"
        parameters[name] = _parameter(
            f"S3 location of the model.tar.gz of variant {variant.name} ({variant.model})",
            inputs.model_data[variant.name],
            pattern=S3_LOCATION,
        )
        container: dict[str, Any] = {"Image": {"Ref": "ImageUri"}, "ModelDataUrl": {"Ref": name}}
        if variant.environment:
            container["Environment"] = dict(variant.environment)
        containers[variant.name] = container
    destination = None
    if inputs.capture_destination is not None:
        parameters["DataCaptureDestination"] = _parameter(
            "S3 prefix where the endpoint's captured requests and responses are written",
            inputs.capture_destination,
            pattern=S3_LOCATION,
        )
        destination = {"Ref": "DataCaptureDestination"}
    return template(
        spec,
        containers=containers,
        model_properties={"ExecutionRoleArn": {"Ref": "ExecutionRoleArn"}},
        capture_destination=destination,
        parameters=parameters,
    )


def _parameter(
    description: str, default: str | None, *, pattern: str | None = None, min_length: int = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": "String", "Description": description}
    if pattern is not None:
        out["AllowedPattern"] = pattern
    if min_length:
        out["MinLength"] = min_length
    if default is not None:
        out["Default"] = default
    return out


_SHORT_TAGS = frozenset({"!Ref", "!GetAtt"})


def _one_line(text: str) -> str:
    """A file name fit for a `#` comment line (a newline in it would end the comment)."""
    return " ".join(text.splitlines())


class _Short:
    """An intrinsic function written in YAML's short form (`!Ref X`, `!GetAtt A.B`)."""

    def __init__(self, tag: str, value: str) -> None:
        self.tag, self.value = tag, value


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key, as in AWS docs

    def choose_scalar_style(self) -> str:
        # PyYAML quotes every scalar with an explicit tag (`!Ref 'X'`); a logical id or
        # `Resource.Attribute` reads plain, as people write them
        event = self.event
        if (
            isinstance(event, yaml.ScalarEvent)
            and event.tag in _SHORT_TAGS
            and re.fullmatch(r"[A-Za-z0-9.]+", event.value)
        ):
            return ""
        return str(super().choose_scalar_style())


_Dumper.add_representer(
    _Short, lambda dumper, short: dumper.represent_scalar(short.tag, short.value)
)


def _short_forms(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            [(key, arg)] = value.items()
            if key == "Ref" and isinstance(arg, str):
                return _Short("!Ref", arg)
            if key == "Fn::GetAtt" and isinstance(arg, list) and len(arg) == 2:
                return _Short("!GetAtt", f"{arg[0]}.{arg[1]}")
        return {k: _short_forms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_forms(v) for v in value]
    return value


def to_cloudformation_yaml(template: dict[str, Any], source: str | None = None) -> str:
    """Block-style YAML with CloudFormation's short forms, keys in the template's order."""
    head = f"# Generated by `pier export` from {_one_line(source)}.\n" if source else ""
    body = yaml.dump(
        _short_forms(template),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,  # never fold a long description across lines
    )
    return head + body


# -------------------------------------------------------------------------------- Terraform


def _identifier(name: str, taken: set[str]) -> str:
    """A Terraform name for a variant: snake_case, starting with a letter, unique."""
    base = re.sub(r"-+", "_", name).lower()
    if not base[:1].isalpha():
        base = f"variant_{base}"
    ident, n = base, 2
    while ident in taken:
        ident, n = f"{base}_{n}", n + 1
    taken.add(ident)
    return ident


def _variable(
    name: str, description: str, default: str | None, condition: str | None = None
) -> Block:
    body: Body = [("description", description), ("type", Expr("string"))]
    if default is not None:
        body.append(("default", default))
    if condition is not None:
        check = Block(
            "validation",
            (),
            [
                ("condition", Expr(f"can(regex({quote(condition)}, var.{name}))")),
                ("error_message", f"{name} must match {condition}."),
            ],
        )
        body.append(check)
    return Block("variable", (name,), body)


def to_terraform(
    spec: EndpointSpec,
    *,
    model_data: Mapping[str, str],
    image: str | None = None,
    execution_role_arn: str | None = None,
    capture_destination: str | None = None,
    source: str | None = None,
) -> str:
    """A Terraform configuration (main.tf) that deploys `spec` with the AWS provider."""
    inputs = _inputs(spec, model_data, image, execution_role_arn, capture_destination)
    taken: set[str] = set()
    idents = {v.name: _identifier(v.name, taken) for v in spec.all_variants}
    tags = Expr("local.tags") if spec.tags else None

    blocks: list[Block] = [
        Block(
            "terraform",
            (),
            [
                ("required_version", ">= 1.3"),
                Block(
                    "required_providers",
                    (),
                    [("aws", {"source": "hashicorp/aws", "version": ">= 5.0"})],
                ),
            ],
        ),
        _variable(
            "image",
            "Container image serving MLflow models on SageMaker (an ECR image URI)",
            inputs.image,
        ),
        _variable(
            "execution_role_arn",
            "IAM role SageMaker assumes to pull the image and read the model data",
            inputs.role_arn,
            "^arn:aws[a-z-]*:iam::[0-9]{12}:role/",
        ),
    ]
    for variant in spec.all_variants:
        blocks.append(
            _variable(
                f"model_data_{idents[variant.name]}",
                f"S3 location of the model.tar.gz of variant {variant.name} ({variant.model})",
                inputs.model_data[variant.name],
                "^(s3|https)://[^/]+",
            )
        )
    if inputs.capture_destination is not None:
        blocks.append(
            _variable(
                "data_capture_destination",
                "S3 prefix where the endpoint's captured requests and responses are written",
                inputs.capture_destination,
                "^(s3|https)://[^/]+",
            )
        )
    if spec.tags:
        blocks.append(Block("locals", (), [("tags", dict(spec.tags))]))

    replace_first = Block("lifecycle", (), [("create_before_destroy", True)])
    for variant in spec.all_variants:
        container: Body = [
            ("image", Expr("var.image")),
            ("model_data_url", Expr(f"var.model_data_{idents[variant.name]}")),
        ]
        if variant.environment:
            container.append(("environment", dict(variant.environment)))
        body: Body = [
            ("execution_role_arn", Expr("var.execution_role_arn")),
            Block("primary_container", (), container),
        ]
        if tags:
            body.append(("tags", tags))
        body.append(replace_first)
        blocks.append(Block("resource", ("aws_sagemaker_model", idents[variant.name]), body))

    config: Body = [_tf_variant("production_variants", v, idents) for v in spec.variants]
    if spec.shadow is not None:
        config.append(_tf_variant("shadow_production_variants", spec.shadow, idents))
    if spec.data_capture is not None:
        config.append(_tf_data_capture(spec))
    if tags:
        config.append(("tags", tags))
    config.append(replace_first)
    blocks.append(Block("resource", ("aws_sagemaker_endpoint_configuration", "this"), config))

    endpoint: Body = [
        ("name", spec.endpoint),
        ("endpoint_config_name", Expr("aws_sagemaker_endpoint_configuration.this.name")),
    ]
    if tags:
        endpoint.append(("tags", tags))
    blocks.append(Block("resource", ("aws_sagemaker_endpoint", "this"), endpoint))
    blocks.append(
        Block(
            "output",
            ("endpoint_name",),
            [
                ("description", "The endpoint to invoke"),
                ("value", Expr("aws_sagemaker_endpoint.this.name")),
            ],
        )
    )
    blocks.append(
        Block(
            "output",
            ("endpoint_arn",),
            [
                ("description", "The endpoint's ARN"),
                ("value", Expr("aws_sagemaker_endpoint.this.arn")),
            ],
        )
    )
    head = [f"# Generated by `pier export` from {_one_line(source or 'a pier spec')}."]
    head.append(f"# SageMaker endpoint {spec.endpoint!r}: terraform init && terraform apply")
    return "\n".join(head) + "\n\n" + render(blocks)


def _tf_variant(kind: str, variant: Variant, idents: dict[str, str]) -> Block:
    return Block(
        kind,
        (),
        [
            ("variant_name", variant.name),
            ("model_name", Expr(f"aws_sagemaker_model.{idents[variant.name]}.name")),
            ("initial_instance_count", variant.instances),
            ("instance_type", variant.instance_type),
            ("initial_variant_weight", variant.weight),
        ],
    )


def _tf_data_capture(spec: EndpointSpec) -> Block:
    capture = spec.data_capture
    assert capture is not None
    body: Body = [
        ("enable_capture", capture.enabled),
        ("initial_sampling_percentage", capture.sampling_percentage),
        ("destination_s3_uri", Expr("var.data_capture_destination")),
    ]
    if capture.kms_key_id is not None:
        body.append(("kms_key_id", capture.kms_key_id))
    body.extend(
        Block("capture_options", (), [("capture_mode", mode.capitalize())])
        for mode in capture.capture
    )
    header: Body = []
    if capture.csv_content_types:
        header.append(("csv_content_types", list(capture.csv_content_types)))
    if capture.json_content_types:
        header.append(("json_content_types", list(capture.json_content_types)))
    if header:
        body.append(Block("capture_content_type_header", (), header))
    return Block("data_capture_config", (), body)
