"""`pier up`, `pier down`, `pier status`, `pier env`: the platform's lifecycle."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table

from pier.cli.common import (
    HomeOption,
    err,
    out,
    pier_command,
    platform_settings,
    sagemaker_client,
)
from pier.errors import PierError
from pier.hosting.pids import is_running, start_ticks
from pier.platform.home import Home
from pier.settings import PlatformSettings


def _healthy(url: str, timeout: float = 1.0) -> bool:
    import httpx  # here, not at the top: `pier serve` starts faster without it

    try:
        return httpx.get(url + "/ping", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def up(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of both APIs (default 7437).")] = None,
    state_url: Annotated[
        str | None,
        typer.Option(help="State database URL, e.g. postgresql://user@host/db (default SQLite)."),
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    mlflow: Annotated[
        bool | None,
        typer.Option("--mlflow/--no-mlflow", help="Start an MLflow tracking server (default on)."),
    ] = None,
    mlflow_uri: Annotated[
        str | None, typer.Option(help="Use this MLflow tracking server instead of starting one.")
    ] = None,
    mlflow_port: Annotated[
        int | None, typer.Option(help="Port of pier's MLflow server, 0 for a free one (5000).")
    ] = None,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(help="MLflow backend store, e.g. postgresql://user@host/db (default SQLite)."),
    ] = None,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(help="MLflow artefact store: a directory, s3://bucket/path or ftp://..."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Where instances run: process (MLflow models as processes, other images in "
            "Docker) or docker (every instance a container). Default process."
        ),
    ] = None,
    map_image: Annotated[
        list[str] | None,
        typer.Option(
            "--map-image",
            help="Run the local IMAGE where a Model names URI: URI=IMAGE (repeatable).",
        ),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(help="Base of the serving images of MLflow models in Docker."),
    ] = None,
    env_manager: Annotated[
        str | None,
        typer.Option(
            help="Which environment serves a model whose container Environment has no "
            "PIER_ENV_MANAGER: auto (pier's own when it satisfies the model, else the model's "
            "own virtualenv), local, virtualenv. Default auto; see docs/environments.md."
        ),
    ] = None,
    max_instances: Annotated[
        int | None,
        typer.Option(
            help="The quota of instances across every endpoint: a create or update past it "
            "answers ResourceLimitExceeded (default 32)."
        ),
    ] = None,
    endpoints_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="With --detach: how long to wait, in seconds, for the endpoints that were "
            "InService to serve again (their instances adopted or relaunched).",
        ),
    ] = 120.0,
) -> None:
    """Start the platform (SageMaker control and runtime APIs on one port) and MLflow."""
    settings = platform_settings(
        home=home, host=host, port=port, state_url=state_url, mlflow=mlflow,
        mlflow_uri=mlflow_uri, mlflow_port=mlflow_port, backend_store_uri=backend_store_uri,
        artifacts_destination=artifacts_destination, backend=backend,
        image_map=map_image or None, base_image=base_image, env_manager=env_manager,
        max_instances=max_instances,
    )  # fmt: skip
    h = Home(settings.home)
    if detach:
        up_detached(settings, h, endpoints_timeout=endpoints_timeout)
        return
    from pier.platform.server import run

    try:
        code = run(settings)
    except PierError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def up_detached(settings: PlatformSettings, h: Home, *, endpoints_timeout: float = 120.0) -> None:
    try:
        h.prepare()
    except PierError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    pid = h.running_pid()
    if pid is not None:  # what was asked is true: scripts and the guides go on (exit 0)
        out.print(
            f"pier is already up on {h.url()} (home {h.root}, pid {pid}); options given now "
            "do not apply to it (`pier down` first to change them)"
        )
        return
    args = [sys.executable, "-m", "pier.cli.main", "up"]
    console_log = h.root / "logs" / "platform.console.log"
    # Owner-only like the rest of the home (the platform's own files get it from its umask);
    # each start's console log is its own (its tail is what a failed start shows).
    fd = os.open(console_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=settings_env(settings),
        )  # fmt: skip
    with out.status("Starting pier and MLflow..." if settings.mlflow else "Starting pier..."):
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = console_log.read_text(errors="replace").strip().splitlines()[-5:]
                err.print("[red]error:[/red] pier did not start:\n" + "\n".join(tail))
                raise typer.Exit(1)
            url = h.url()
            if url and _healthy(url) and _mlflow_joined(settings, h):
                try:
                    _wait_for_endpoints(h, url, endpoints_timeout)
                except Exception as exc:  # the platform is up: say it, and what went wrong
                    err.print(f"[yellow]warning:[/yellow] could not check the endpoints: {exc}")
                out.print(f"[green]✓[/green] pier is up on {url} (pid {proc.pid})")
                if h.mlflow_url():
                    out.print(f"  MLflow UI and tracking URI: {h.mlflow_url()}")
                out.print(f"  console: {url}/console/ (or a one-time link: pier console-url)")
                out.print(f"  logs: {h.log_file}")
                pier = shlex.join(pier_command())
                home = shlex.quote(str(settings.home))
                out.print(f'  boto3 setup: eval "$({pier} env --home {home})"')
                out.print(f"  stop: {pier} down --home {home}")
                return
            time.sleep(0.1)
    err.print(f"[red]error:[/red] pier did not answer in 180 s; see {h.log_file}")
    raise typer.Exit(1)


def _mlflow_joined(settings: PlatformSettings, h: Home) -> bool:
    """Whether pier's own MLflow server answers (the platform serves before it does)."""
    return not settings.mlflow or bool(settings.mlflow_uri) or h.mlflow_url() is not None


def _not_serving(client: Any, names: list[str]) -> dict[str, str]:
    """Of these endpoints, those that do not serve yet (a variant without an instance), with
    what DescribeEndpoint says of them."""
    left = {}
    for name in names:
        d = client.describe_endpoint(EndpointName=name)
        variants = d.get("ProductionVariants", [])
        if d["EndpointStatus"] == "InService" and all(
            v.get("CurrentInstanceCount", 0) > 0 for v in variants
        ):
            continue
        reason = d.get("FailureReason")
        left[name] = d["EndpointStatus"] + (f": {reason}" if reason else "")
    return left


def _wait_for_endpoints(h: Home, url: str, timeout_s: float) -> None:
    """Wait until every endpoint that was InService serves again (its instances adopted or
    launched again), at most `timeout_s`; then name those that do not."""
    client = sagemaker_client(h, url)
    # OutOfService too: one that was InService and already found it cannot get instances back.
    names = [
        e["EndpointName"]
        for e in client.list_endpoints(MaxResults=100)["Endpoints"]
        if e["EndpointStatus"] in ("InService", "OutOfService")
    ]
    deadline = time.monotonic() + timeout_s
    left = _not_serving(client, names)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = _not_serving(client, list(left))
    for name, what in left.items():
        err.print(
            f"[yellow]warning:[/yellow] endpoint {name} does not serve yet after "
            f"{timeout_s:g} s ({what}); `pier logs {name}` shows its instances' logs"
        )


def settings_env(settings: PlatformSettings) -> dict[str, str]:
    """The environment that hands `settings` to a detached `pier up` (PIER_* variables): store
    URIs may hold passwords, and the environment, unlike argv, is not shown by `ps`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):  # handed on as itself, not as its mask
            value = value.get_secret_value()
        if isinstance(value, dict):
            env[f"PIER_{name.upper()}"] = json.dumps(value)
        elif value is not None and name != "region":
            env[f"PIER_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    env["PIER_REGION"] = settings.region
    return env


def down(home: HomeOption = None) -> None:
    """Stop the platform and every instance it runs."""
    h = Home(platform_settings(home=home).home)
    pid = h.running_pid()
    if pid is None:
        out.print(f"pier is not running (home {h.root})")
        return
    ticks = start_ticks(pid)
    os.kill(pid, signal.SIGTERM)
    with out.status(f"Stopping pier (pid {pid}) and its instances..."):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # The process itself, not its pid file: the platform removes that file before it
            # has stopped MLflow. A zombie counts as exited (pier.hosting.pids).
            if not is_running(pid, ticks):
                out.print("[green]✓[/green] pier stopped")
                return
            time.sleep(0.1)
    err.print(f"[red]error:[/red] pier (pid {pid}) did not stop in 120 s; see {h.log_file}")
    raise typer.Exit(1)


def status(home: HomeOption = None) -> None:
    """Tell what runs: the platform, its URL, and its endpoints."""
    settings = platform_settings(home=home)
    h = Home(settings.home)
    pid, url = h.running_pid(), h.url()
    if pid is None or not url:
        out.print(f"pier is not running (home {h.root}); start it with `pier up --detach`")
        raise typer.Exit(3)
    state = "[green]up[/green]" if _healthy(url) else "[yellow]not answering[/yellow]"
    out.print(f"pier {state} on {url} (pid {pid}, home {h.root}, log {h.log_file})")
    out.print(f"Console on {url}/console/ (sign in with `pier env`'s keys or `pier console-url`)")
    mlflow_url = h.mlflow_url()
    if mlflow_url:
        out.print(f"MLflow on {mlflow_url} (tracking URI and UI; log {h.mlflow_log_file})")
    client = sagemaker_client(h, url)
    dropped = _capture_write_errors(url)
    table = Table("endpoint", "status", "variants (weight × instances)", "data capture")
    for e in client.list_endpoints(MaxResults=100)["Endpoints"]:
        d = client.describe_endpoint(EndpointName=e["EndpointName"])
        variants = ", ".join(
            f"{v['VariantName']} ({v['CurrentWeight']:g} × {v['CurrentInstanceCount']})"
            for v in d.get("ProductionVariants", [])
        )
        table.add_row(e["EndpointName"], e["EndpointStatus"], variants, _capture(d, dropped))
    out.print(table)


def _capture_write_errors(url: str) -> dict[str, tuple[float, float]]:
    """Endpoint → (records its data capture could not write, failed S3 uploads), from the
    platform's /metrics (pier_capture_dropped_records_total{reason="write_error"},
    pier_capture_upload_errors_total); empty if they cannot be read."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            endpoint = sample.labels.get("endpoint", "")
            dropped, uploads = out.get(endpoint, (0.0, 0.0))
            if sample.name == "pier_capture_dropped_records_total":
                if sample.labels.get("reason") == "write_error":
                    out[endpoint] = (dropped + sample.value, uploads)
            elif sample.name == "pier_capture_upload_errors_total":
                out[endpoint] = (dropped, uploads + sample.value)
    return out


def _capture(described: dict[str, object], problems: dict[str, tuple[float, float]]) -> str:
    """DescribeEndpoint's capture status, and what its destination refused."""
    config = described.get("DataCaptureConfig")
    if not isinstance(config, dict):
        return "-"
    text = str(config.get("CaptureStatus", "?"))
    dropped, uploads = problems.get(str(described.get("EndpointName")), (0.0, 0.0))
    if dropped:
        text += f", [red]{dropped:g} records not written[/red] (destination; see the log)"
    if uploads:
        text += f", [yellow]{uploads:g} S3 uploads failed[/yellow] (retried; see the log)"
    return text


def env(home: HomeOption = None) -> None:
    """Print the `export` lines boto3 and the AWS CLI need to talk to pier."""
    settings = platform_settings(home=home)
    h = Home(settings.home)
    creds = h.credentials(create=False)
    url = h.url() or f"http://{settings.host}:{settings.port}"
    if creds is None:
        err.print(f"[red]error:[/red] no credentials in {h.root} yet; run `pier up` first")
        raise typer.Exit(1)
    if h.running_pid() is None:  # stderr: `eval "$(pier env)"` still gets the settings
        err.print(
            f"[yellow]warning:[/yellow] pier is not running (home {h.root}): these settings "
            "reach it once it runs (pier up --detach)"
        )
    typer.echo(f"export AWS_ENDPOINT_URL_SAGEMAKER={url}")
    typer.echo(f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={url}")
    typer.echo(f"export AWS_ENDPOINT_URL_CLOUDWATCH={url}")  # metrics and alarms
    typer.echo(f"export AWS_ACCESS_KEY_ID={creds.access_key_id}")
    typer.echo(f"export AWS_SECRET_ACCESS_KEY={creds.secret_access_key}")
    typer.echo(f"export AWS_DEFAULT_REGION={settings.region}")
    mlflow_url = h.mlflow_url()
    if mlflow_url:
        typer.echo(f"export MLFLOW_TRACKING_URI={mlflow_url}")
