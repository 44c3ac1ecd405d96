"""`pier build`: a container image for any MLflow model (see docs/build.md).

Light at import: the docker SDK and MLflow load inside the command.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pier.cli.common import err
from pier.errors import PierError
from pier.settings import BuildSettings

if TYPE_CHECKING:
    from pier.hosting.images import BuiltImage

_STEP_PREFIXES = ("Step ", "wheelhouse ", "building ", "environment image ", "model ", "some ")


def build(
    model_uri: Annotated[
        str,
        typer.Argument(
            help="MLflow model URI: a directory, file://, models:/name/1, models:/name@alias, "
            "runs:/ID/path.",
            metavar="MODEL_URI",
            show_default=False,
        ),
    ],
    tag: Annotated[
        str,
        typer.Option("--tag", "-t", help="The image's name, NAME[:TAG].", show_default=False),
    ],
    base_image: Annotated[
        str | None,
        typer.Option(
            help="A local image with python3 to build on (default $PIER_BASE_IMAGE, else "
            "python:3.11-slim). Its Python must match the model's minor version."
        ),
    ] = None,
    no_model: Annotated[
        bool,
        typer.Option(
            "--no-model",
            help="Leave the model out: the image serves whatever is mounted at /opt/ml/model.",
        ),
    ] = False,
) -> None:
    """Build an image serving MODEL_URI over SageMaker's container contract.

    `docker run IMAGE serve` answers /ping and /invocations on port 8080
    (SAGEMAKER_BIND_TO_PORT), with the model at /opt/ml/model.
    """
    from pier.hosting import images

    try:
        images.check_tag(tag)
    except PierError as exc:
        err.print(f"[red]error:[/red] --tag: {escape(exc.message)}")
        raise typer.Exit(2) from None
    settings = BuildSettings()
    base = base_image or settings.base_image
    try:
        built = _build(model_uri, tag, base, no_model, settings)
    except PierError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    size_mb = built.size / 1_000_000
    err.print(
        f"[green]built[/green] [bold]{escape(built.tag)}[/bold] "
        f"({built.id.removeprefix('sha256:')[:12]}, {size_mb:,.1f} MB) in {built.seconds:.1f} s"
    )
    mount = "" if not no_model else " -v /path/to/model:/opt/ml/model:ro"
    err.print(f"run it: docker run --rm -p 127.0.0.1:8080:8080{mount} {escape(built.tag)} serve")


def _build(
    model_uri: str, tag: str, base: str, no_model: bool, settings: BuildSettings
) -> BuiltImage:
    from pier.hosting import docker_engine, images, model_env, model_source

    docker_engine.connect().close()  # no engine: say so before downloading anything
    with tempfile.TemporaryDirectory(prefix="pier-model-") as tmp:
        with err.status(f"fetching {escape(model_uri)}", spinner="dots"):
            model = model_source.fetch(model_uri, Path(tmp))
            env = model_env.read(model.path)
        err.print(
            f"model {escape(model_uri)}: Python {env.python or 'unknown'}, "
            f"{len(env.requirements)} requirements ({escape(env.source or 'none declared')})"
        )
        if no_model:
            labels = {f"{model_source.LABEL_PREFIX}environment-of": model.uri}
        else:
            labels = model_source.labels(model)
        with err.status("building", spinner="dots") as status:

            def progress(line: str) -> None:
                shown = escape(line)
                if line.startswith(_STEP_PREFIXES):
                    err.print(f"[bold]{shown}[/bold]", highlight=False)
                    status.update(shown[:100])
                else:
                    err.print(f"[dim]  {shown}[/dim]", highlight=False)

            return images.build_image(
                None if no_model else model.path,
                env,
                tag,
                base_image=base,
                labels=labels,
                progress=progress,
                cache_dir=settings.cache_dir,
            )
