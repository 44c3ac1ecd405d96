"""`pier keys create|list|revoke|usage`: the gateway's API keys (docs/gateway.md).

These work on the home's state store (the platform need not run; `--state-url` or
PIER_STATE_URL names a PostgreSQL store). A new key is printed once and only its HMAC is kept.
After a change, a running platform is told at once (`POST /pier/gateway/sync`, signed), so a
revoked key is refused from the next request on; `usage` asks it to write its counts first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pier.cli.common import HomeOption, JsonOption, err, fail, out, platform_settings, print_json
from pier.platform.home import Home

keys_app = typer.Typer(
    help="API keys of the public gateway (POST /api/v1/ENDPOINT/predict with x-api-key).",
    no_args_is_help=True,
)

StateUrlOption = Annotated[
    str | None,
    typer.Option(help="State database URL (default: the home's SQLite, or PIER_STATE_URL)."),
]


@contextmanager
def gateway_store(home: Any, state_url: str | None) -> Iterator[tuple[Home, Any]]:
    """The home and its ApiKeyStore (schema brought up to date), or exit 1 with the reason."""
    from pier.errors import PierError
    from pier.store import db
    from pier.store.api_keys import ApiKeyStore

    settings = platform_settings(home=home, state_url=state_url)
    h = Home(settings.home)
    try:
        h.prepare()
        engine = db.create(settings.resolved_state_url())
        db.migrate(engine)
    except PierError as exc:
        raise fail(exc.message) from None
    try:
        yield h, ApiKeyStore(db.sessions(engine))
    finally:
        engine.dispose()


def tell_platform(h: Home) -> bool:
    """Ask a running platform of `h` to write usage and reload keys now. False when none
    runs (it reads the store when it starts) or it could not be reached (said on stderr)."""
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url, creds = h.url(), h.credentials(create=False)
    if h.running_pid() is None or url is None or creds is None:
        return False
    target = url + "/pier/gateway/sync"
    request = AWSRequest(method="POST", url=target, data=b"", headers={})
    signer = Credentials(creds.access_key_id, creds.secret_access_key)
    SigV4Auth(signer, "sagemaker", platform_settings(home=h.root).region).add_auth(request)
    try:
        response = httpx.post(target, content=b"", headers=dict(request.headers), timeout=30)
    except httpx.HTTPError as exc:
        err.print(f"[yellow]warning:[/yellow] the platform did not answer ({exc}); it reloads "
                  "keys within a few seconds")  # fmt: skip
        return False
    if response.status_code != 200:
        err.print(f"[yellow]warning:[/yellow] the platform refused to reload keys "
                  f"({response.status_code}); it reloads them within a few seconds")  # fmt: skip
        return False
    return True


def _positive(value: float | None, option: str) -> None:
    if value is not None and value <= 0:
        raise fail(f"{option} must be more than 0 (got {value:g})", 2)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the key is for (e.g. the team using it).")],
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", "-e", help="An endpoint it may call (repeat; default all)."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Requests per second per endpoint (default no limit).")
    ] = None,
    burst: Annotated[
        int | None, typer.Option(help="Requests allowed at once above the rate (default rate).")
    ] = None,
    quota_day: Annotated[
        int | None, typer.Option(help="Requests per UTC day per endpoint.")
    ] = None,
    quota_month: Annotated[
        int | None, typer.Option(help="Requests per UTC month per endpoint.")
    ] = None,
    home: HomeOption = None,
    state_url: StateUrlOption = None,
    as_json: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the key alone (for scripts).")
    ] = False,
) -> None:
    """Create an API key and print it (once: only its HMAC is stored)."""
    from pier.control.api_keys import digest, new_key
    from pier.store.api_keys import StoredKey

    if not name.strip() or len(name) > 128:
        raise fail("NAME must be 1 to 128 characters", 2)
    _positive(rate, "--rate")
    _positive(burst, "--burst")
    _positive(quota_day, "--quota-day")
    _positive(quota_month, "--quota-month")
    if burst is not None and rate is None:
        raise fail("--burst needs --rate (the burst is the bucket a rate refills)", 2)
    made = new_key()
    with gateway_store(home, state_url) as (h, store):
        stored = StoredKey(
            key_id=made.key_id,
            name=name,
            digest=digest(h.gateway_secret(), made.key),
            created_at=datetime.now(UTC),
            revoked_at=None,
            endpoints=frozenset(endpoint) if endpoint else None,
            rate=rate,
            burst=burst,
            quota_day=quota_day,
            quota_month=quota_month,
        )
        store.add(stored)
        tell_platform(h)
    if as_json:
        print_json({**_key_json(stored), "Key": made.key})
        return
    if quiet:
        typer.echo(made.key)
        return
    out.print(f"[green]✓[/green] key {made.key_id} ({escape(name)}) created. The key, shown "
              "this once (pier keeps only its HMAC):")  # fmt: skip
    typer.echo(made.key)


def _plan(k: Any) -> str:
    parts = []
    if k.rate is not None:
        parts.append(f"{k.rate:g}/s burst {k.burst if k.burst is not None else max(1, k.rate):g}")
    if k.quota_day is not None:
        parts.append(f"{k.quota_day}/day")
    if k.quota_month is not None:
        parts.append(f"{k.quota_month}/month")
    return ", ".join(parts) or "no limits"


def _key_json(k: Any) -> dict[str, Any]:
    return {
        "KeyId": k.key_id,
        "Name": k.name,
        "CreatedAt": k.created_at.isoformat(),
        "RevokedAt": k.revoked_at.isoformat() if k.revoked_at else None,
        "Endpoints": sorted(k.endpoints) if k.endpoints is not None else None,
        "Rate": k.rate,
        "Burst": k.burst,
        "QuotaDay": k.quota_day,
        "QuotaMonth": k.quota_month,
    }


@keys_app.command("list")
def list_keys(
    home: HomeOption = None, state_url: StateUrlOption = None, as_json: JsonOption = False
) -> None:
    """List the keys (ids, names, endpoints, plans; never the keys themselves)."""
    with gateway_store(home, state_url) as (_, store):
        keys = store.list_keys()
    if as_json:
        print_json([_key_json(k) for k in keys])
        return
    if not keys:
        out.print("no API keys; create one with `pier keys create NAME`")
        return
    table = Table("key id", "name", "endpoints", "plan", "created", "state")
    for k in keys:
        table.add_row(
            k.key_id,
            escape(k.name),
            escape(", ".join(sorted(k.endpoints))) if k.endpoints is not None else "all",
            _plan(k),
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            "[red]revoked[/red]" if k.revoked_at else "[green]active[/green]",
        )
    out.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (pier keys list).")],
    home: HomeOption = None,
    state_url: StateUrlOption = None,
) -> None:
    """Revoke a key: the gateway refuses it from now on."""
    with gateway_store(home, state_url) as (h, store):
        revoked = store.revoke(key_id, datetime.now(UTC))
        if revoked is None:
            raise fail(f"no API key {key_id!r} (pier keys list shows the ids)")
        told = tell_platform(h)
    where = "" if told else " (a running platform picks it up within a few seconds)"
    out.print(f"[green]✓[/green] key {key_id} ({escape(revoked.name)}) revoked{where}")


@keys_app.command("usage")
def usage(
    key_id: Annotated[str | None, typer.Argument(help="One key's id (default: every key).")] = None,
    home: HomeOption = None,
    state_url: StateUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Requests per key and endpoint today and this month (UTC), against the plan's quotas."""
    from pier.control.usage_plans import day_period, month_period

    now = datetime.now(UTC)
    day, month = day_period(now), month_period(now)
    with gateway_store(home, state_url) as (h, store):
        if key_id is not None and store.get(key_id) is None:
            raise fail(f"no API key {key_id!r} (pier keys list shows the ids)")
        tell_platform(h)  # the counts it holds, written first
        keys = {k.key_id: k for k in store.list_keys()}
        counts = store.usage([day, month], key_id)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for c in counts:
        k = keys.get(c.key_id)
        row = rows.setdefault(
            (c.key_id, c.endpoint),
            {
                "KeyId": c.key_id,
                "Name": k.name if k else "",
                "Endpoint": c.endpoint,
                "Day": day,
                "RequestsToday": 0,
                "ThrottledToday": 0,
                "QuotaDay": k.quota_day if k else None,
                "Month": month,
                "RequestsThisMonth": 0,
                "QuotaMonth": k.quota_month if k else None,
            },
        )
        if c.period == day:
            row["RequestsToday"], row["ThrottledToday"] = c.requests, c.throttled
        else:
            row["RequestsThisMonth"] = c.requests
    items = [rows[k] for k in sorted(rows)]
    if as_json:
        print_json(items)
        return
    if not items:
        out.print("no usage yet" + (f" of key {key_id}" if key_id else ""))
        return
    table = Table("key id", "name", "endpoint", f"today ({day})", "throttled today",
                  f"month ({month})")  # fmt: skip
    for r in items:
        table.add_row(
            r["KeyId"],
            escape(r["Name"]),
            escape(r["Endpoint"]),
            _of(r["RequestsToday"], r["QuotaDay"]),
            str(r["ThrottledToday"]),
            _of(r["RequestsThisMonth"], r["QuotaMonth"]),
        )
    out.print(table)


def _of(n: int, quota: int | None) -> str:
    return f"{n}" if quota is None else f"{n} / {quota}"


__all__ = ["gateway_store", "keys_app", "tell_platform"]
