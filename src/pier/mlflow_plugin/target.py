"""Which pier an MLflow deployments target URI names, and boto3 clients of it.

- `pier`: the platform `pier up` runs from this machine's home ($PIER_HOME or ~/.pier), with
  the home's access key and region (what `pier env` prints) and its MLflow as the registry;
- `pier:/http://HOST:PORT`: another pier, with boto3's own credentials (AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY, a profile) and region (AWS_DEFAULT_REGION, else pier's default), and
  MLflow's tracking URI (MLFLOW_TRACKING_URI) as the registry.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from pier.platform.home import Home
from pier.settings import PlatformSettings


class TargetError(Exception):
    """A target URI that names no usable pier (raised as MlflowException by the client)."""


@dataclass(frozen=True)
class Target:
    url: str
    region: str
    access_key: tuple[str, str] | None  # None: boto3's own credential chain
    tracking_uri: str | None

    def client(self, service: str) -> Any:
        import boto3

        keys: dict[str, str] = {}
        if self.access_key is not None:
            keys = {
                "aws_access_key_id": self.access_key[0],
                "aws_secret_access_key": self.access_key[1],
            }
        return boto3.client(service, endpoint_url=self.url, region_name=self.region, **keys)


def resolve(target_uri: str, region: str | None = None) -> Target:
    """The pier `target_uri` names (the module docstring); TargetError saying what is wrong."""
    parsed = urllib.parse.urlparse(target_uri)
    rest = target_uri[len(parsed.scheme) + 1 :].lstrip("/") if parsed.scheme else ""
    if (parsed.scheme or parsed.path) != "pier":
        raise TargetError(f"{target_uri!r} is not a pier target: give pier or pier:/URL")
    if not rest:
        return _local(region)
    url = urllib.parse.urlparse(rest)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise TargetError(
            f"target {target_uri!r}: after pier:/ give the platform's URL, e.g. "
            "pier:/http://127.0.0.1:7437"
        )
    import mlflow

    return Target(
        url=rest.rstrip("/"),
        region=region or os.environ.get("AWS_DEFAULT_REGION") or PlatformSettings().region,
        access_key=None,
        tracking_uri=mlflow.get_tracking_uri(),
    )


def _local(region: str | None) -> Target:
    settings = PlatformSettings()
    h = Home(settings.home)
    url = h.url()
    if h.running_pid() is None or url is None:
        raise TargetError(
            f"pier is not running (home {h.root}); start it with `pier up --detach`, or give "
            "another platform as pier:/URL"
        )
    creds = h.credentials(create=False)
    if creds is None:
        raise TargetError(f"no credentials in {h.root}; start pier with `pier up`")
    return Target(
        url=url,
        region=region or settings.region,
        access_key=(creds.access_key_id, creds.secret_access_key),
        tracking_uri=h.mlflow_url(),
    )
