"""`pier gateway cors ENDPOINT [--origin O ...] [--clear]`: the gateway's settings per endpoint.

Like `pier keys`, it writes the home's state store and tells a running platform at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from pier.cli.common import HomeOption, fail, out
from pier.cli.keys_command import StateUrlOption, gateway_store, tell_platform

gateway_app = typer.Typer(help="Settings of the public gateway (docs/gateway.md).")


@gateway_app.callback(invoke_without_command=True)
def _gateway(ctx: typer.Context) -> None:
    """Settings of the public gateway (docs/gateway.md)."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@gateway_app.command("cors")
def cors(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's name.")],
    origin: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="An origin browsers may call from, e.g. https://app.example.com "
            "(repeat; * for any).",
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Turn CORS off for the endpoint.")] = False,
    home: HomeOption = None,
    state_url: StateUrlOption = None,
) -> None:
    """Set (or show, or --clear) the origins CORS allows for an endpoint's predict route."""
    origins = [o.strip().rstrip("/") for o in origin or []]
    for o in origins:
        if o != "*" and not (
            o.startswith(("http://", "https://")) and "/" not in o.split("://")[1]
        ):
            raise fail(f"--origin {o!r}: an origin is scheme://host[:port] (or *)", 2)
    if clear and origins:
        raise fail("give --origin or --clear, not both", 2)
    with gateway_store(home, state_url) as (h, store):
        if not origins and not clear:
            now = store.cors().get(endpoint)
            out.print(f"{escape(endpoint)}: " + (escape(", ".join(now)) if now else "CORS off"))
            return
        store.set_cors(endpoint, origins, datetime.now(UTC))
        tell_platform(h)
    if clear:
        out.print(f"[green]✓[/green] CORS off for {escape(endpoint)}")
    else:
        out.print(f"[green]✓[/green] {escape(endpoint)} allows {escape(', '.join(origins))}")


__all__ = ["gateway_app"]
