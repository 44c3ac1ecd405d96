"""`pier export`: a pier spec as a CloudFormation template or a Terraform configuration for AWS."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pier.cli.common import err, fail
from pier.errors import PierError

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


def export(
    file: Annotated[Path, typer.Option("--file", "-f", help="The pier spec (YAML or JSON).")],
    output_format: Annotated[
        ExportFormat, typer.Option("--format", help="cloudformation (YAML) or terraform (HCL).")
    ],
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
) -> None:
    """Write a pier spec as a CloudFormation template or Terraform for real AWS.

    Each model needs an S3 location (--model-data); image, role and locations become parameters.
    """
    from pier.iac import export as exporting
    from pier.iac.source import read
    from pier.iac.spec import is_spec, load_spec

    given = _model_data(model_data or [])
    try:
        doc = read(file)
        if not is_spec(doc):
            raise fail(
                f"{file}: not a pier spec (it needs `endpoint:` and `variants:`, see docs/spec.md)",
                2,
            )
        spec = load_spec(doc)
        if output_format is ExportFormat.cloudformation:
            template = exporting.to_cloudformation(
                spec,
                model_data=given,
                image=image,
                execution_role_arn=role_arn,
                capture_destination=capture_destination,
            )
            text = exporting.to_cloudformation_yaml(template, source=str(file))
        else:
            text = exporting.to_terraform(
                spec,
                model_data=given,
                image=image,
                execution_role_arn=role_arn,
                capture_destination=capture_destination,
                source=str(file),
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
