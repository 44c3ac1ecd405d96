"""What every command shares: the two consoles, `--home` and `--json`, the platform's settings,
one error line, and a boto3 client of the running platform.

Light at import like every CLI module (boto3 and botocore load inside the functions). Errors are
one line, `error: <message>` on stderr: AWS's as `error: <Code>: <Message>` with exit 1, bad
arguments with exit 2.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from pier.platform.home import Home
from pier.settings import PlatformSettings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # one error, one line

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="pier's home directory (default $PIER_HOME or ~/.pier)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

OPTION_NAMES = {"image_map": "--map-image"}  # settings whose option is not named after them


def platform_settings(**given: Any) -> PlatformSettings:
    """The platform's settings from the options given (None: not given), else the environment;
    exit 2 naming the option that is wrong."""
    try:
        return PlatformSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else ""
            field = OPTION_NAMES.get(name, "--" + name.replace("_", "-")) if name else "?"
            err.print(f"[red]error:[/red] {field}: {e['msg']}")
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; the caller raises what this returns."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def sagemaker_client(h: Home, url: str, service: str = "sagemaker") -> Any:
    import boto3

    creds = h.credentials(create=False)
    if creds is None:
        raise typer.Exit(1)
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=PlatformSettings(home=h.root).region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
    )


def connect(home: Path | None, service: str = "sagemaker") -> Any:
    """A boto3 client of the running platform of `home`, or exit 1 saying it is not running."""
    h = Home(platform_settings(home=home).home)
    url = h.url()
    if h.running_pid() is None or url is None:
        raise fail(f"pier is not running (home {h.root}); start it with pier up --detach")
    return sagemaker_client(h, url, service)


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """AWS's errors as one line and exit 1: never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise fail(f"{error.get('Code', 'Error')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise fail(str(exc)) from None


def not_found(exc: Exception) -> bool:
    """Whether an error is SageMaker's `ValidationException: Could not find ...` (SageMaker has
    no code of its own for a missing resource; boto3's waiters match the message too)."""
    error = getattr(exc, "response", {}).get("Error", {})
    return error.get("Code") == "ValidationException" and str(error.get("Message", "")).startswith(
        "Could not find"
    )


def unless_gone(call: Any, **request: Any) -> dict[str, Any] | None:
    """`call(**request)` without its ResponseMetadata; None if the resource does not exist."""
    from botocore.exceptions import ClientError

    try:
        response: dict[str, Any] = call(**request)
    except ClientError as exc:
        if not_found(exc):
            return None
        raise
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def print_json(value: Any) -> None:
    def iso(o: object) -> str:
        if isinstance(o, datetime):
            return o.isoformat()
        raise TypeError(f"{type(o).__name__} is not JSON serializable")

    typer.echo(json.dumps(value, indent=2, default=iso))


__all__ = [
    "HomeOption",
    "JsonOption",
    "aws_errors",
    "connect",
    "err",
    "fail",
    "not_found",
    "out",
    "platform_settings",
    "print_json",
    "sagemaker_client",
    "unless_gone",
]
