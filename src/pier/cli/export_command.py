"""`pier export`: a pier spec, a CloudFormation template or a deployed endpoint as a
CloudFormation template or a Terraform configuration for AWS. A template or an endpoint is
first written as a pier spec (pier.iac.spec_of), then exported like one."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pier.cli.common import HomeOption, aws_errors, connect, err, fail
from pier.cli.options import ParameterOption
from pier.errors import PierError

if TYPE_CHECKING:
    from pier.iac.spec import EndpointSpec

_DEFAULT_NAMES = {"cloudformation": "template.yaml", "terraform": "main.tf"}


class ExportFormat(enum.StrEnum):
    cloudformation = "cloudformation"
    terraform = "terraform"


def _model_data(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, location = pair.partition("=")
        if not sep or not key or not location:
            raise fail(f"--model-data {pair!r}: write MODEL=S3URI, e.g. {_EXAMPLE}", 2)
        if key in out:
            raise fail(f"--model-data {key}: given twice", 2)
        out[key] = location
    return out


_EXAMPLE = "models:/diabetes@champion=s3://bucket/diabetes/model.tar.gz"


def _spec_of_endpoint(name: str, home: Path | None) -> tuple[EndpointSpec, str | None]:
    """The spec of a deployed endpoint, read through the platform's SageMaker API, and the
    image its models share (if one)."""
    from pier.iac.spec_of import spec_from_requests

    sm = connect(home)
    with aws_errors():
        endpoint = sm.describe_endpoint(EndpointName=name)
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variants = [*config["ProductionVariants"], *config.get("ShadowProductionVariants", [])]
        models = {v["ModelName"]: sm.describe_model(ModelName=v["ModelName"]) for v in variants}
        tags = sm.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
    spec = spec_from_requests(
        name, config, models, {t["Key"]: t["Value"] for t in tags}, what="the deployed "
    )
    return spec, _shared_image(models.values())


def _spec_of_template(
    file: Path, parameters: list[str] | None, home: Path | None
) -> tuple[EndpointSpec, str | None]:
    """The spec of the one endpoint a CloudFormation template describes (compiled as `pier
    plan` compiles it, without mappings: the export is for AWS)."""
    from pier.cli.iac_run import compile_file
    from pier.iac.cloudformation.resources import ENDPOINT
    from pier.iac.export import ExportError
    from pier.iac.spec_of import spec_from_requests

    stack = compile_file(file, parameters, None, None, None, None, home)
    endpoints = [p for p in stack.resources if p.kind is ENDPOINT]
    if len(endpoints) != 1:
        found = ", ".join(p.logical_id for p in endpoints) or "none"
        raise ExportError(
            f"{file}: export takes a template with one AWS::SageMaker::Endpoint (found: {found})"
        )
    by_name = {p.name: p for p in stack.resources}
    config = by_name[endpoints[0].body["EndpointConfigName"]].body
    models = {p.name: p.body for p in stack.resources if p.kind.short == "Model"}
    spec = spec_from_requests(
        endpoints[0].name, config, models, endpoints[0].tags, what=f"{file}: the "
    )
    return spec, _shared_image(models.values())


def _shared_image(models: Any) -> str | None:
    images = {(m.get("PrimaryContainer") or {}).get("Image") for m in models if isinstance(m, dict)}
    return images.pop() if len(images) == 1 and None not in images else None


def export(
    output_format: Annotated[
        ExportFormat, typer.Option("--format", help="cloudformation (YAML) or terraform (HCL).")
    ],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="A pier spec or a CloudFormation template (YAML or JSON)."
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="A deployed endpoint of the running platform."),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="File to write, a directory (template.yaml / main.tf in it) or - for stdout.",
        ),
    ] = "-",
    image: Annotated[
        str | None,
        typer.Option(help="Container image URI serving MLflow models (default of ImageUri)."),
    ] = None,
    role_arn: Annotated[
        str | None,
        typer.Option("--role-arn", help="IAM role ARN for SageMaker (default of the parameter)."),
    ] = None,
    model_data: Annotated[
        list[str] | None,
        typer.Option(
            "--model-data",
            help="MODEL=S3URI: where a variant's model.tar.gz is on S3; MODEL is the model URI "
            "in the spec or the variant's name. Repeat for each model.",
        ),
    ] = None,
    capture_destination: Annotated[
        str | None,
        typer.Option(help="S3 prefix for data capture (default: the spec's destination)."),
    ] = None,
    parameter: ParameterOption = None,
    home: HomeOption = None,
) -> None:
    """Write a pier spec, a CloudFormation template or a deployed endpoint (--endpoint) as a
    CloudFormation template or Terraform for real AWS.

    Each model needs an S3 location (--model-data); image, role and locations become parameters.
    """
    from pier.iac import export as exporting
    from pier.iac.source import read
    from pier.iac.spec import is_spec, load_spec

    if (file is None) == (endpoint is None):
        raise fail("give either --file (a spec or a template) or --endpoint NAME", 2)
    given = _model_data(model_data or [])
    source = str(file) if file is not None else f"endpoint {endpoint}"
    try:
        if endpoint is not None:
            spec, shared = _spec_of_endpoint(endpoint, home)
        else:
            assert file is not None
            doc = read(file, cfn_tags=True)
            if is_spec(doc):
                spec, shared = load_spec(read(file)), None
            elif isinstance(doc, dict) and "Resources" in doc:
                spec, shared = _spec_of_template(file, parameter, home)
            else:
                raise fail(
                    f"{file}: neither a pier spec (`endpoint:` and `variants:`, docs/spec.md) "
                    "nor a CloudFormation template (`Resources:`)",
                    2,
                )
        image = image or shared
        if output_format is ExportFormat.cloudformation:
            template = exporting.to_cloudformation(
                spec,
                model_data=given,
                image=image,
                execution_role_arn=role_arn,
                capture_destination=capture_destination,
            )
            text = exporting.to_cloudformation_yaml(template, source=source)
        else:
            text = exporting.to_terraform(
                spec,
                model_data=given,
                image=image,
                execution_role_arn=role_arn,
                capture_destination=capture_destination,
                source=source,
            )
    except PierError as exc:
        raise fail(exc.message, 2) from None

    if output == "-":
        typer.echo(text, nl=False)
        return
    target = Path(output)
    if target.is_dir():
        target = target / _DEFAULT_NAMES[output_format.value]
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {target}: {exc.strerror or exc}", 1) from None
    err.print(f"wrote {escape(str(target))}")
