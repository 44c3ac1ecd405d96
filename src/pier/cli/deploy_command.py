"""`pier deploy MODEL_URI`: one command from a registered model to an InService endpoint, and
`pier weights ENDPOINT VARIANT=WEIGHT ...`: shift its traffic.

Both are clients of the SageMaker API through pier.iac.model_deploy (the MLflow deployments
plugin calls the same code). Exit codes: 0 done, 1 the platform refused or the endpoint failed,
2 bad arguments (nothing changed).
"""

from __future__ import annotations

import os
import shlex
from typing import Annotated, Any

import typer
from rich.markup import escape

from pier.cli.common import HomeOption, aws_errors, connect, fail, out, platform_settings
from pier.platform.home import Home

__all__ = ["deploy", "weights"]


def _status(endpoint: str) -> Any:
    """A callback that prints each status the endpoint passes through."""

    def show(status: str) -> None:
        out.print(f"  [dim]…[/dim] {escape(endpoint)}: {escape(status)}")

    return show


def deploy(
    model_uri: Annotated[
        str,
        typer.Argument(
            help="The MLflow model: models:/NAME/VERSION, models:/NAME@ALIAS (pinned to its "
            "version now), runs:/ID/PATH or a path."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="The endpoint (default: the registered model's name)."),
    ] = None,
    instances: Annotated[
        int, typer.Option("--instances", min=1, help="Instances of the variant.")
    ] = 1,
    instance_type: Annotated[
        str | None, typer.Option("--instance-type", help="SageMaker instance type.")
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(help="The production variant's name (default NAME-vVERSION)."),
    ] = None,
    add: Annotated[
        bool,
        typer.Option(
            "--add",
            help="Add the model beside the endpoint's variants with weight 0 "
            "(then shift traffic with pier weights) instead of replacing them.",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the endpoint may take to become InService.")
    ] = 1200.0,
    home: HomeOption = None,
) -> None:
    """Deploy a model to an endpoint and wait for InService: create it, or update it
    blue/green (the old instances serve until the new ones are healthy)."""
    from pier.iac.model_deploy import (
        DEFAULT_INSTANCE_TYPE,
        DeployError,
        Mode,
        Request,
        check_endpoint_name,
        registered_name,
    )
    from pier.iac.model_deploy import deploy as run_deploy

    endpoint = name or registered_name(model_uri)
    if endpoint is None:
        raise fail(f"--name: give the endpoint's name ({model_uri} is not a models:/ URI)", 2)
    try:
        check_endpoint_name(endpoint)
    except DeployError as exc:
        raise fail(f"--name: {exc.message}", 2) from None
    request = Request(
        endpoint=endpoint,
        model_uri=model_uri,
        mode=Mode.ADD if add else Mode.REPLACE,
        instance_type=instance_type or DEFAULT_INSTANCE_TYPE,
        instance_count=instances,
        variant_name=variant,
        timeout_seconds=timeout,
    )
    sm = connect(home)
    h = Home(platform_settings(home=home).home)
    tracking_uri = h.mlflow_url() or os.environ.get("MLFLOW_TRACKING_URI")
    with aws_errors():
        try:
            result = run_deploy(sm, request, tracking_uri, _status(endpoint))
        except DeployError as exc:
            raise fail(exc.message) from None
    verb = "created" if result.created else "updated"
    weight = " with weight 0" if add and not result.created else ""
    out.print(
        f"[green]✓[/green] endpoint {escape(endpoint)} {verb}: variant {escape(result.variant)} "
        f"serves {escape(result.model_uri)}{weight} (InService)"
    )
    for what in result.deleted:
        out.print(f"  deleted {escape(what)} (replaced)")
    body = '{"dataframe_split": {"columns": [...], "data": [[...]]}}'
    opts = "" if home is None else f" --home {shlex.quote(str(home))}"
    out.print("Invoke it:", highlight=False)
    out.print(
        f"  pier invoke {escape(endpoint)}{escape(opts)} --body {escape(shlex.quote(body))}",
        highlight=False,
    )


def weights(
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    pairs: Annotated[
        list[str],
        typer.Argument(help="VARIANT=WEIGHT for each variant to change, e.g. champion=90."),
    ],
    timeout: Annotated[float, typer.Option(min=1, help="Seconds the change may take.")] = 300.0,
    home: HomeOption = None,
) -> None:
    """Shift an endpoint's traffic between its variants (UpdateEndpointWeightsAndCapacities):
    each variant gets weight / sum of weights of the requests."""
    from pier.iac.model_deploy import DeployError, parse_weights, set_weights

    try:
        given = parse_weights(pairs)
    except DeployError as exc:
        raise fail(exc.message, 2) from None
    sm = connect(home)
    with aws_errors():
        try:
            done = set_weights(sm, endpoint, given, timeout)
        except DeployError as exc:
            raise fail(exc.message) from None
    variants = done.get("ProductionVariants", [])
    total = sum(float(v.get("CurrentWeight", 0)) for v in variants) or 1.0
    shares = ", ".join(
        f"{escape(v['VariantName'])} {float(v.get('CurrentWeight', 0)):g} "
        f"({100 * float(v.get('CurrentWeight', 0)) / total:.0f}%)"
        for v in variants
    )
    out.print(f"[green]✓[/green] {escape(endpoint)}: {shares}")
