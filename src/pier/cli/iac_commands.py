"""`pier apply`, `pier plan`, `pier delete` -f FILE: CloudFormation templates and pier specs.

A pier spec (`kind: pier/Endpoint`) is compiled to a template first (its stack is named after
its endpoint); a CloudFormation template is applied as it is (its stack is named after the
file, or --stack-name). Either way the platform is spoken to through its SageMaker API only.
Exit codes: 0 done, 1 the platform refused or failed (rolled back), 2 the file or the options
cannot be applied (nothing was changed).
"""

from __future__ import annotations

from typing import Annotated

import typer

from pier.cli.common import HomeOption
from pier.cli.options import (
    DEFAULT_TIMEOUT,
    FileOption,
    MapImageOption,
    MapModelOption,
    MappingOption,
    MapS3Option,
    ParameterOption,
    StackOption,
    TimeoutOption,
)

__all__ = ["apply", "delete", "plan"]


def apply(
    file: FileOption,
    parameter: ParameterOption = None,
    stack_name: StackOption = None,
    map_image: MapImageOption = None,
    map_model: MapModelOption = None,
    mapping: MappingOption = None,
    map_s3: MapS3Option = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    home: HomeOption = None,
) -> None:
    """Create or update what a CloudFormation template or pier spec describes.

    Applying the same file twice changes nothing.
    A changed Model or EndpointConfig is replaced, its endpoint updated blue/green.
    What left the file is deleted; a failed apply is rolled back.
    """
    from pier.cli import iac_run

    iac_run.apply(file, parameter, stack_name, map_image, map_model, mapping, timeout, home, map_s3)


def plan(
    file: FileOption,
    parameter: ParameterOption = None,
    stack_name: StackOption = None,
    map_image: MapImageOption = None,
    map_model: MapModelOption = None,
    mapping: MappingOption = None,
    map_s3: MapS3Option = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Show what `pier apply` would change, and change nothing."""
    from pier.cli import iac_run

    iac_run.plan(file, parameter, stack_name, map_image, map_model, mapping, as_json, home, map_s3)


def delete(
    file: FileOption,
    parameter: ParameterOption = None,
    stack_name: StackOption = None,
    map_image: MapImageOption = None,
    map_model: MapModelOption = None,
    mapping: MappingOption = None,
    map_s3: MapS3Option = None,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    home: HomeOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation on a terminal.")
    ] = False,
) -> None:
    """Delete every resource the file's stack created (endpoints first).

    Takes the options `apply` took (parameters, mappings), so the same command line works.
    On a terminal it asks first (--yes does not); a script's call does not ask.
    """
    import sys

    if not yes and sys.stdin.isatty() and sys.stdout.isatty():  # a person, not a script
        stack = f"stack {stack_name}" if stack_name else f"the stack of {file}"
        if not typer.confirm(f"Delete every resource of {stack}?", default=False):
            typer.echo("Nothing deleted.", err=True)
            raise typer.Exit(1)
    from pier.cli import iac_run

    iac_run.delete(
        file, parameter, stack_name, map_image, map_model, mapping, timeout, home, map_s3
    )
