"""`pier apply`, `pier plan`, `pier delete` -f FILE: CloudFormation templates and pier specs.

A pier spec (`kind: pier/Endpoint`) is compiled to a template first (its stack is named after
its endpoint); a CloudFormation template is applied as it is (its stack is named after the
file, or --stack-name). Either way the platform is spoken to through its SageMaker API only.
Exit codes: 0 done, 1 the platform refused or failed (rolled back), 2 the file or the options
cannot be applied (nothing was changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pier.cli.platform_commands import HomeOption

__all__ = ["HomeOption", "apply", "delete", "plan"]

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
MappingOption = Annotated[
    Path | None,
    typer.Option("--mapping", help="A YAML file with `images:` and `models:` mappings."),
]
TimeoutOption = Annotated[
    float, typer.Option(help="Seconds an endpoint may take to become InService.")
]


def apply(
    file: FileOption,
    parameter: ParameterOption = None,
    stack_name: StackOption = None,
    map_image: MapImageOption = None,
    map_model: MapModelOption = None,
    mapping: MappingOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    home: HomeOption = None,
) -> None:
    """Create or update what a CloudFormation template or pier spec describes.

    Applying the same file twice changes nothing.
    A changed Model or EndpointConfig is replaced, its endpoint updated blue/green.
    What left the file is deleted; a failed apply is rolled back.
    """
    from pier.cli import iac_run

    iac_run.apply(file, parameter, stack_name, map_image, map_model, mapping, timeout, home)


def plan(
    file: FileOption,
    parameter: ParameterOption = None,
    stack_name: StackOption = None,
    map_image: MapImageOption = None,
    map_model: MapModelOption = None,
    mapping: MappingOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Show what `pier apply` would change, and change nothing."""
    from pier.cli import iac_run

    iac_run.plan(file, parameter, stack_name, map_image, map_model, mapping, as_json, home)


def delete(
    file: FileOption,
    stack_name: StackOption = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    home: HomeOption = None,
) -> None:
    """Delete every resource the file's stack created (endpoints first)."""
    from pier.cli import iac_run

    iac_run.delete(file, stack_name, timeout, home)
