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
from rich import box
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from pier.platform.home import Home
from pier.settings import PlatformSettings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # one error, one line


# ------------------------------------------------------------------------------- output
# One policy for what commands print, so that nothing that matters is hidden. In a terminal a
# table fits its width by wrapping cells between words: each column gets at least its longest
# word (the columns named `whole`, such as names and versions, their longest cell; a path or a
# URI longer than the room left folds onto the next line), and the room left goes to the
# columns that need it. A table that cannot fit so is printed wider rather than cut. Anything
# else (a pipe, a file, CI) gets every line at its full width. `--json` stays the format for
# scripts.


def table(*columns: str, whole: tuple[str, ...] = (), title: str | None = None, **kw: Any) -> Table:
    """A table whose cells are never cut; the columns in `whole` are never wrapped."""
    t = Table(title=title, title_justify="left", **kw)
    for name in columns:
        t.add_column(name, overflow="fold", no_wrap=name in whole)
    return t


def compact(*columns: str, whole: tuple[str, ...] = (), title: str | None = None) -> Table:
    """A `table` with a rule under the header only, for many narrow columns (numbers)."""
    return table(
        *columns, whole=whole, title=title, box=box.SIMPLE_HEAD, show_edge=False,
        padding=(0, 1, 0, 0), pad_edge=False,
    )  # fmt: skip


def show(renderable: RenderableType) -> None:
    """Print a table or a panel: fitted to a terminal, at full width anywhere else."""
    wide = out.options.update_width(100_000)
    if out.is_terminal:
        if isinstance(renderable, Table):
            _fit(renderable, out.width)
            width = Measurement.get(out, wide, renderable).maximum
            if width > out.width:  # wider than the terminal: let it wrap the lines, uncut
                Console(width=width, highlight=False).print(renderable)
                return
        out.print(renderable, soft_wrap=False)  # (soft wrap crops a panel's lines)
        return
    needed = Measurement.get(out, wide, renderable).maximum
    Console(width=max(needed, 1), highlight=False).print(renderable)


def _fit(t: Table, width: int) -> None:
    """Fix the widths of `t`'s columns so that it fits `width` with no word cut, if it can."""
    from rich.text import Text

    def cells(c: Any) -> list[str]:
        return [Text.from_markup(str(x)).plain for x in (c.header, *c.cells)]

    natural = [max((len(line) for x in cells(c) for line in x.splitlines()), default=0)
               for c in t.columns]  # fmt: skip
    least = [
        n if c.no_wrap else max((len(w) for x in cells(c) for w in x.split()), default=0)
        for n, c in zip(natural, t.columns, strict=True)
    ]
    total = Measurement.get(out, out.options.update_width(100_000), t).maximum
    room = width - (total - sum(natural))  # what the borders and padding leave
    if sum(natural) <= room:
        return
    floor = 12  # a word longer than its share (a path, a URI) folds, down to this width
    while sum(least) > room:
        shrinkable = [i for i, c in enumerate(t.columns) if not c.no_wrap and least[i] > floor]
        if not shrinkable:
            break  # it cannot fit: printed wider, whole
        widest = max(shrinkable, key=lambda i: least[i])
        least[widest] -= min(least[widest] - floor, sum(least) - room)
    spare = max(0, room - sum(least))
    wanted = [n - m for n, m in zip(natural, least, strict=True)]
    for c, m, w in zip(t.columns, least, wanted, strict=True):
        c.width = m + (spare * w // sum(wanted) if sum(wanted) else 0)


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


def pier_command() -> list[str]:
    """How to run `pier`, as the user would type it: plain `pier` if that is this one on the
    PATH, else its path (after `make demo`, .venv/bin/pier until .venv is activated)."""
    import shutil
    import sys

    here = Path(sys.executable).with_name("pier")
    on_path = shutil.which("pier")
    if on_path is not None and Path(on_path).resolve() == here.resolve():
        return ["pier"]
    return [str(here)]


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
    "compact",
    "connect",
    "err",
    "fail",
    "not_found",
    "out",
    "pier_command",
    "platform_settings",
    "print_json",
    "sagemaker_client",
    "show",
    "table",
    "unless_gone",
]
