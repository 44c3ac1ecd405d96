"""`pier audit`: the audit trail (every state-changing or denied API call, user changes).

Reads the home's state store (pier.cli.access_store); newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pier.cli.common import HomeOption, JsonOption, fail, out, print_json
from pier.cli.metrics_command import parse_duration
from pier.cli.users_command import StateUrlOption


def audit(
    since: Annotated[str, typer.Option(help="How far back: 30m, 1h, 7d.")] = "24h",
    user: Annotated[str | None, typer.Option(help="Only this user's calls.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events (newest).")] = 200,
    home: HomeOption = None,
    state_url: StateUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Who changed what, when, from where, and how it ended; denied calls too."""
    if limit < 1:
        raise fail(f"--limit: {limit} is not a positive number", 2)
    start = datetime.now(UTC) - timedelta(seconds=parse_duration(since, "--since"))
    from pier.cli.access_store import open_store

    with open_store(home, state_url) as store:
        events = store.audit.query(since=start, user=user, limit=limit)
    if as_json:
        print_json([e.to_json() for e in events])
        return
    if not events:
        who = f" by {user}" if user else ""
        out.print(f"no audited calls{who} in the last {escape(since)}")
        return
    table = Table("time (UTC)", "user", "key", "source", "operation", "resource", "status",
                  "error")  # fmt: skip
    for e in events:
        status = f"[green]{e.status}[/green]" if e.status < 400 else f"[red]{e.status}[/red]"
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}", escape(e.user), e.key_id, e.source, e.operation,
            escape(e.resource or "-"), status, e.error_code or "",
        )  # fmt: skip
    out.print(table)


__all__ = ["audit"]
