"""The options of `pier apply`, `plan` and `delete`, shared by their commands (iac_commands) and
the code that runs them (iac_run), so that neither imports the other's module for them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The same as pier.iac.cloudformation.execute.DEFAULT_TIMEOUT (tests/cli pins it): not imported,
# so that `pier` starts without the engine.
DEFAULT_TIMEOUT = 1800.0

FileOption = Annotated[
    Path, typer.Option("--file", "-f", help="A CloudFormation template or a pier spec (YAML/JSON).")
]
ParameterOption = Annotated[
    list[str] | None,
    typer.Option("--parameter", "-p", help="A template parameter NAME=VALUE (repeatable)."),
]
StackOption = Annotated[
    str | None,
    typer.Option(help="Stack name (default: the file's name; a spec's endpoint name)."),
]
MapImageOption = Annotated[
    list[str] | None,
    typer.Option("--map-image", help="Run IMAGE where the template says URI: URI=IMAGE."),
]
MapModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map-model",
        help="Use MODEL_URI where the template says S3URI (exact or prefix): S3URI=MODEL_URI.",
    ),
]
MapS3Option = Annotated[
    list[str] | None,
    typer.Option(
        "--map-s3",
        help="Write where the template says S3URI (data capture, exact or prefix) to "
        "file:///DIR, a path or another s3:// store: S3URI=TARGET.",
    ),
]
MappingOption = Annotated[
    Path | None,
    typer.Option("--mapping", help="A YAML file with `images:`, `models:` and `s3:` mappings."),
]
TimeoutOption = Annotated[
    float, typer.Option(help="Seconds an endpoint may take to become InService.")
]


__all__ = [
    "DEFAULT_TIMEOUT",
    "FileOption",
    "MapImageOption",
    "MapModelOption",
    "MapS3Option",
    "MappingOption",
    "ParameterOption",
    "StackOption",
    "TimeoutOption",
]
