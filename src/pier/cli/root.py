"""The root of the `pier` command: its own options (--version) and its first command, serve.

`pier serve` runs on this alone (pier.cli.main); pier.cli.app adds every other command to it.
Both build the same root, so `pier serve --help` and its errors read the same either way.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pier import __version__
from pier.cli import serve_command


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pier {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """pier: MLflow models behind a SageMaker-compatible API."""


def new_root() -> typer.Typer:
    """A `pier` app with its options and `serve`."""
    app = typer.Typer(
        name="pier",
        help="Put MLflow models into production behind a SageMaker-compatible API.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    app.callback()(_root)
    app.command()(serve_command.serve)
    return app
