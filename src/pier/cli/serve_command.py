"""`pier serve`: one MLflow model over the SageMaker container contract, in this process.

Light at import like every CLI module, and more: it is all that `pier serve` loads of the CLI
(pier.cli.main), because every instance's cold start pays for it. Rich loads only where the
command prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from pier.settings import ServeSettings


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
        from pier.cli.common import err

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
        from pier.cli.common import err

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

    from pier.cli.common import err
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
