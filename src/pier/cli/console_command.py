"""`pier console-url`: a one-time sign-in link to the web console (docs/console.md).

The running platform mints the link (POST /console/links, signed with the home's key like
every other call), so the token never touches the disk; it is good for one sign-in within
its expiry (5 minutes by default).
"""

from __future__ import annotations

from typing import Any

import typer

from pier.cli.common import HomeOption, err, fail, platform_settings
from pier.platform.home import Home

CONSOLE_PATH = "/console/"


def console_link(h: Home, region: str) -> dict[str, Any]:
    """A fresh one-time link of the platform running from `h`: {"Url", "ExpiresInSeconds"}."""
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url, creds = h.url(), h.credentials(create=False)
    if h.running_pid() is None or url is None or creds is None:
        raise fail(f"pier is not running (home {h.root}); start it with pier up --detach")
    target = f"{url}/console/links"
    request = AWSRequest(method="POST", url=target, data=b"")
    SigV4Auth(
        Credentials(creds.access_key_id, creds.secret_access_key), "sagemaker", region
    ).add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    try:
        response = httpx.post(target, headers=headers, content=b"", timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach pier at {url}: {exc}") from None
    if response.status_code == 404:
        raise fail(f"the pier running on {url} has no console; restart it with a newer pier")
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code != 200:
        raise fail(f"{body.get('__type', response.status_code)}: {body.get('message', '')}")
    return {"Url": url + body["Path"], "ExpiresInSeconds": body["ExpiresInSeconds"]}


def console_url(home: HomeOption = None) -> None:
    """Print a one-time link that signs a browser in to the web console."""
    settings = platform_settings(home=home)
    link = console_link(Home(settings.home), settings.region)
    typer.echo(link["Url"])
    minutes = link["ExpiresInSeconds"] / 60
    err.print(
        f"[dim]one sign-in, within {minutes:g} min; or sign in at "
        f"{link['Url'].split('/console/')[0]}{CONSOLE_PATH} with `pier env`'s keys[/dim]",
        highlight=False,
    )
