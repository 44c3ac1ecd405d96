"""`pier users add|list|remove|rotate-key`: named users, their roles and access keys.

Works on the home's state store (pier.cli.access_store); a running platform picks changes up
within a second. A new secret is printed once, never stored in clear nor logged. What each role
may do: docs/security.md (pier.platform.access.POLICY).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pier.cli.common import HomeOption, JsonOption, fail, out, print_json
from pier.cli.metrics_command import parse_duration
from pier.contract.sigv4 import Credentials

if TYPE_CHECKING:
    from pier.store.users import NewKey

# pier.store.users.ROLES, not imported: the store loads SQLAlchemy, which `pier` loads only in
# the commands that need it (tests/cli/test_startup_imports.py; tests/access checks they match).
ROLES = ("admin", "deployer", "invoker")
StateUrlOption = Annotated[
    str | None,
    typer.Option(
        "--state-url",
        help="The platform's state store, as given to pier up (default $PIER_STATE_URL, "
        "else SQLite in the home).",
    ),
]

users_app = typer.Typer(
    help="Users, roles (admin, deployer, invoker) and access keys; see docs/security.md.",
    no_args_is_help=True,
)

RoleOption = Annotated[
    str, typer.Option("--role", "-r", help=f"One of {', '.join(ROLES)} (docs/security.md).")
]


def _show_key(key: NewKey, as_json: bool, what: str) -> None:
    if as_json:
        print_json({"user": key.user, "role": key.role, "access_key_id": key.access_key_id,
                    "secret_access_key": key.secret_access_key})  # fmt: skip
        return
    body = (
        f"user               [bold]{escape(key.user)}[/bold] ({key.role})\n"
        f"access key id      {key.access_key_id}\n"
        f"secret access key  [bold]{key.secret_access_key}[/bold]"
    )
    out.print(Panel(body, title=what, expand=False))
    out.print(
        "[yellow]The secret is shown this once: store it now (pier keeps it encrypted and "
        "cannot show it again).[/yellow]"
    )


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user's name (letters, digits, ._@+=,-).")],
    role: RoleOption,
    home: HomeOption = None,
    state_url: StateUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a user with a role and a new access key (its secret printed once)."""
    if role not in ROLES:
        raise fail(f"--role: {role!r} is not a role; choose one of {', '.join(ROLES)}", 2)
    from pier.cli.access_store import open_store

    with open_store(home, state_url) as store:
        key = store.users.add(name, role)
        store.record("CreateUser", name)
    _show_key(key, as_json, "new user")


@users_app.command("list")
def list_users(
    home: HomeOption = None, state_url: StateUrlOption = None, as_json: JsonOption = False
) -> None:
    """Every user, its role and its access key ids (never a secret)."""
    from pier.cli.access_store import open_store

    with open_store(home, state_url) as store:
        users = store.users.users()
        home_key = store.home.credentials(create=False)
    home_key_id = home_key.access_key_id if home_key else None
    if as_json:
        print_json([
            {"name": u.name, "role": u.role, "created": u.created_at,
             "access_keys": [{"access_key_id": k, "created": c, "expires": e}
                             for k, c, e in u.keys]}
            for u in users
        ])  # fmt: skip
        return
    now = datetime.now(UTC)
    table = Table("user", "role", "access keys", "created")
    for u in users:
        keys = []
        for key_id, _, expires in u.keys:
            note = " (this home's)" if key_id == home_key_id else ""
            if expires is not None:
                note += " [dim]expired[/dim]" if expires <= now else (
                    f" [yellow]valid until {expires:%Y-%m-%d %H:%M:%S} UTC[/yellow]"
                )  # fmt: skip
            keys.append(key_id + note)
        table.add_row(escape(u.name), u.role, "\n".join(keys), f"{u.created_at:%Y-%m-%d %H:%M}")
    out.print(table)


@users_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The user to remove, with all its keys.")],
    home: HomeOption = None,
    state_url: StateUrlOption = None,
) -> None:
    """Remove a user: its keys stop working within a second."""
    from pier.cli.access_store import open_store

    with open_store(home, state_url) as store:
        home_key = store.home.credentials(create=False)
        if home_key is not None and store.users.owner_of(home_key.access_key_id) == name:
            raise fail(
                f"{name} holds this home's credential (credentials.json, which pier's commands "
                f"sign with); rotate its key with `pier users rotate-key {name}` instead"
            )
        store.users.remove(name)
        store.record("DeleteUser", name)
    out.print(f"removed user [bold]{escape(name)}[/bold] and its access keys")


@users_app.command("rotate-key")
def rotate_key(
    name: Annotated[str, typer.Argument(help="Whose key to replace.")],
    grace: Annotated[
        str, typer.Option(help="How long the old key stays valid: 0s, 15m, 1h, 2d.")
    ] = "1h",
    home: HomeOption = None,
    state_url: StateUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """A new access key for a user; the old one keeps working for --grace (no downtime)."""
    seconds = parse_duration(grace, "--grace")
    from pier.cli.access_store import open_store

    with open_store(home, state_url) as store:
        home_key = store.home.credentials(create=False)
        holds_home_key = (
            home_key is not None and store.users.owner_of(home_key.access_key_id) == name
        )
        key = store.users.rotate(name, timedelta(seconds=seconds))
        if holds_home_key:  # pier's own commands and `pier env` go on with the new key
            store.home.write_credentials(Credentials(key.access_key_id, key.secret_access_key))
        store.record("RotateAccessKey", name)
    _show_key(key, as_json, "new access key")
    if not as_json:
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        old = "revoked now" if seconds == 0 else f"valid until {until:%Y-%m-%d %H:%M:%S} UTC"
        out.print(f"the previous key of {escape(name)}: {old}")
        if holds_home_key:
            out.print("this home's credentials.json now holds the new key (`pier env`)")


__all__ = ["users_app"]
