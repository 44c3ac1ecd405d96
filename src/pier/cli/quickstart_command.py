"""`pier quickstart`: start the platform if needed, then train, register, deploy and invoke."""

from __future__ import annotations

import shlex
import time
from typing import Annotated

import typer
from rich.markup import escape

from pier.cli.common import (
    HomeOption,
    err,
    out,
    pier_command,
    platform_settings,
    sagemaker_client,
)
from pier.cli.platform_commands import up_detached
from pier.errors import PierError
from pier.platform.home import Home

MLFLOW_WAIT_S = 60.0


def _wait_for_mlflow(url: str, h: Home) -> None:
    import httpx

    deadline = time.monotonic() + MLFLOW_WAIT_S
    with out.status(f"Waiting for the MLflow tracking server on {url}..."):
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    err.print(
        f"[red]error:[/red] the MLflow tracking server on {url} did not answer in "
        f"{MLFLOW_WAIT_S:.0f} s; see {h.mlflow_log_file}"
    )
    raise typer.Exit(1)


def quickstart(
    home: HomeOption = None,
    port: Annotated[
        int | None, typer.Option(help="Port of pier's APIs if it must be started (default 7437).")
    ] = None,
) -> None:
    """Train, register, deploy and invoke two diabetes models; starts pier if needed.

    Trains two models on sklearn's diabetes data, registers them in MLflow as
    diabetes@champion and diabetes@challenger, deploys both behind endpoint `diabetes`
    (90/10) and invokes it with boto3 and `pier invoke`. Re-running updates the endpoint.
    """
    settings = platform_settings(home=home, port=port)
    h = Home(settings.home)
    pier_options = [] if home is None else ["--home", str(settings.home)]
    pier = shlex.join(pier_command())
    opts = " " + shlex.join(pier_options) if pier_options else ""
    if h.running_pid() is None:
        try:
            up_detached(settings, h)
        except typer.Exit as exc:
            if exc.exit_code:
                err.print(f"  logs: {h.log_file.parent}/ (platform.log, platform.console.log)")
            raise
    else:
        out.print(f"[green]✓[/green] pier is already running on {h.url()} (home {h.root})")
    url, tracking_uri = h.url(), h.mlflow_url()
    if not url:
        err.print(f"[red]error:[/red] pier runs but wrote no URL in {h.url_file}; see {h.log_file}")
        raise typer.Exit(1)
    if not tracking_uri:
        err.print(
            f"[red]error:[/red] the pier running from {h.root} has no MLflow tracking server; "
            f"restart it with `{pier} down{opts}` then "
            f"`{pier} quickstart{opts}`"
        )
        raise typer.Exit(1)
    _wait_for_mlflow(tracking_uri, h)

    import botocore.exceptions
    from mlflow.exceptions import MlflowException

    from pier.demo import quickstart as flow

    platform = flow.Platform(
        tracking_uri=tracking_uri,
        pier_url=url,
        sm=sagemaker_client(h, url),
        runtime=sagemaker_client(h, url, "sagemaker-runtime"),
        pier_command=pier_command(),
        pier_options=pier_options,
        workdir=h.root / "quickstart",
    )
    try:
        flow.run(platform, out)
    except PierError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        err.print(f"  pier's log: {h.log_file}; instances' logs: {h.instances_dir}/*/serve.log")
        raise typer.Exit(1) from None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        err.print(f"[red]error:[/red] SageMaker API: {escape(str(exc))}", highlight=False)
        err.print(f"  pier's log: {h.log_file}")
        raise typer.Exit(1) from None
    except MlflowException as exc:
        err.print(
            f"[red]error:[/red] MLflow ({tracking_uri}): {escape(str(exc.message))}",
            highlight=False,
        )
        raise typer.Exit(1) from None
    out.print(f"  endpoints:                  {pier} status{opts}")
    out.print(f'  boto3 / AWS CLI setup:      eval "$({pier} env{opts})"')
    out.print(
        f"\npier keeps running. Stop it (and every endpoint's instances) with: "
        f"[bold]{pier} down{opts}[/bold]"
    )
