"""`pier` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from pier import __version__
from pier.cli.common import err
from pier.settings import ServeSettings

app = typer.Typer(
    name="pier",
    help="Put MLflow models into production behind a SageMaker-compatible API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pier {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """pier: MLflow models behind a SageMaker-compatible API."""


@app.command()
def serve(
    model_uri: Annotated[
        str,
        typer.Option(
            "--model-uri",
            "-m",
            help="MLflow model URI: models:/name@alias, models:/name/1, runs:/ID/path, "
            "a directory or file://.",
        ),
    ],
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind, 0 for a free one (default 8080).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes, each with the model (default: one per CPU, at most 4)."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Per-request timeout in seconds (default 60).")
    ] = None,
    batching: Annotated[
        bool | None, typer.Option("--batching/--no-batching", help="Merge concurrent requests.")
    ] = None,
    max_batch_rows: Annotated[
        int | None, typer.Option(help="Rows per merged predict call.")
    ] = None,
    max_batch_wait_ms: Annotated[
        float | None, typer.Option(help="Extra wait for a batch to fill, in milliseconds.")
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Log file (default $PIER_HOME/logs/serve-PORT.log).")
    ] = None,
    env_manager: Annotated[
        str | None,
        typer.Option(
            help="Which environment serves the model: auto (pier's own when it satisfies the "
            "model's requirements, else the model's own virtualenv), local (pier's own), "
            "virtualenv (the model's own). Default auto; see docs/environments.md."
        ),
    ] = None,
    env_cache: Annotated[
        Path | None,
        typer.Option(help="Where model environments are cached (default $PIER_HOME/envs)."),
    ] = None,
) -> None:
    """Serve one MLflow model over the SageMaker container contract (/ping, /invocations).

    Options not given are read from PIER_* environment variables (see docs/serving.md).
    """
    given: dict[str, Any] = {
        "model_uri": model_uri,
        "host": host,
        "port": port,
        "workers": workers,
        "timeout_seconds": timeout,
        "batching": batching,
        "max_batch_rows": max_batch_rows,
        "max_batch_wait_ms": max_batch_wait_ms,
        "log_file": log_file,
        "env_manager": env_manager,
        "env_cache": env_cache,
    }
    try:
        settings = ServeSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for e in exc.errors():
            field = "--" + str(e["loc"][0]).replace("_", "-") if e["loc"] else "?"
            err.print(f"[red]error:[/red] {field}: {e['msg']}")
        raise typer.Exit(2) from None
    log_file = settings.log_file or settings.home / "logs" / f"serve-{settings.port}.log"
    settings = settings.model_copy(update={"log_file": log_file})
    settings, env_dir = _environment(settings, log_file)
    if env_dir is not None:
        from pier.cli.serve_env import exec_server

        exec_server(env_dir, settings)
    import gc

    # Cold start: no collections while the server's modules import and the model unpickles
    # (hundreds of thousands of objects, all long-lived); re-enabled once the model is warm.
    gc.disable()
    from pier.serving.server import run

    try:
        code = run(settings)
    except OSError as exc:
        err.print(
            f"[red]error:[/red] cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        )
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _environment(settings: ServeSettings, log_file: Path) -> tuple[ServeSettings, Path | None]:
    """Which environment serves the model (pier.cli.serve_env); exit 1 with the reason (on
    stderr and in the log file) when it cannot be prepared."""
    import logging

    from rich.text import Text

    from pier.cli.serve_env import choose
    from pier.errors import PierError

    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        return choose(settings, err)
    except PierError as exc:
        logging.getLogger("pier.serve").error("%s", exc.message)
        err.print(Text.assemble(("error:", "red"), " ", exc.message))  # uv's [extras] as is
        raise typer.Exit(1) from None
    finally:
        root.removeHandler(handler)
        handler.close()


# The other commands, each module light at import: heavy libraries load inside the command.
from pier.cli import (  # noqa: E402
    ab_command,
    alarms_command,
    audit_command,
    build_command,
    compare_command,
    console_command,
    delete_command,
    deploy_command,
    endpoint_commands,
    export_command,
    gateway_command,
    ground_truth_command,
    iac_commands,
    keys_command,
    logs_command,
    metrics_command,
    monitor_commands,
    platform_commands,
    quickstart_command,
    rollout_command,
    users_command,
)

app.command()(quickstart_command.quickstart)
app.command()(platform_commands.up)
app.command()(platform_commands.down)
app.command()(platform_commands.status)
app.command()(platform_commands.env)
app.command("console-url")(console_command.console_url)
app.command()(endpoint_commands.endpoints)
app.command()(endpoint_commands.describe)
app.command()(endpoint_commands.invoke)
app.command()(logs_command.logs)
app.command()(build_command.build)
app.command()(metrics_command.metrics)
app.command("delete-endpoint")(delete_command.delete_endpoint)
app.command()(iac_commands.apply)
app.command()(iac_commands.plan)
app.command()(iac_commands.delete)
app.command()(export_command.export)
app.command()(alarms_command.alarms)
app.add_typer(ground_truth_command.ground_truth_app, name="ground-truth")
app.command()(ground_truth_command.quality)
app.add_typer(monitor_commands.monitor_app, name="monitor")
app.add_typer(users_command.users_app, name="users")
app.command()(audit_command.audit)
app.add_typer(keys_command.keys_app, name="keys")
app.add_typer(gateway_command.gateway_app, name="gateway")
app.command()(compare_command.compare)
app.command()(ab_command.ab)
app.command()(rollout_command.rollout)
app.command()(deploy_command.deploy)
app.command()(deploy_command.weights)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
