"""`pier rollout ENDPOINT --to models:/NAME@ALIAS`: the version an alias names, rolled into a
variant under deployment guardrails; `--watch` follows the alias. The work is pier.iac.rollout's;
this module parses options and shows progress (docs/rollouts-registry.md)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pier.cli.common import HomeOption, aws_errors, connect, err, fail, out, platform_settings
from pier.platform.home import Home

if TYPE_CHECKING:
    from pier.iac.deployment import DeploymentSettings
    from pier.iac.rollout import Outcome

_OPTION_OF = {"canary": "--canary", "linear": "--linear", "bake": "--bake",
              "alarms": "--alarm", "termination_wait": "--termination-wait",
              "timeout": "--timeout"}  # fmt: skip


def rollout(
    endpoint: Annotated[str, typer.Argument(help="The endpoint to update.")],
    to: Annotated[
        str, typer.Option("--to", help="The registry alias to deploy: models:/NAME@ALIAS.")
    ],
    variant: Annotated[
        str | None, typer.Option(help="The production variant that gets it (default: first).")
    ] = None,
    canary: Annotated[
        str | None, typer.Option(help="Canary step: a share (10%) or instances (1).")
    ] = None,
    linear: Annotated[
        str | None, typer.Option(help="Linear step: a share (20%) or instances (1).")
    ] = None,
    bake: Annotated[str, typer.Option(help="How long each step is watched: 30s, 5m.")] = "5m",
    alarm: Annotated[
        list[str] | None,
        typer.Option("--alarm", help="A CloudWatch alarm that rolls back (repeatable)."),
    ] = None,
    termination_wait: Annotated[
        str, typer.Option(help="How long the old fleet is kept after the switch.")
    ] = "0s",
    timeout: Annotated[
        str | None, typer.Option(help="The update's maximum time (10m to 8h).")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep following the alias (Ctrl-C stops).")
    ] = False,
    interval: Annotated[
        str, typer.Option(help="--watch: how often the registry is asked.")
    ] = "10s",
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow's tracking URI (default: the platform's MLflow, else MLFLOW_TRACKING_URI)."
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Deploy the model version a registry alias names into an endpoint's variant, with a
    canary or linear traffic shift and alarms that roll it back; exit 1 on a rollback."""
    from pydantic import ValidationError

    from pier.iac.deployment import DeploymentSettings, parse_duration
    from pier.iac.rollout import AliasUri, Registry, RolloutError, roll
    from pier.iac.rollout import watch as follow_alias

    try:
        alias = AliasUri.parse(to)
    except RolloutError as exc:
        raise fail(f"--to: {exc.message}", 2) from None
    try:
        every = float(parse_duration(interval))
    except ValueError as exc:
        raise fail(f"--interval: {exc}", 2) from None
    given: dict[str, Any] = {"canary": canary, "linear": linear, "bake": bake,
                             "alarms": alarm, "termination_wait": termination_wait,
                             "timeout": timeout}  # fmt: skip
    try:
        settings = DeploymentSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        e = exc.errors()[0]
        where = (
            _OPTION_OF.get(str(e["loc"][0]), "--canary/--linear")
            if e["loc"]
            else "--canary/--linear"
        )
        raise fail(f"{where}: {e['msg'].removeprefix('Value error, ')}", 2) from None
    sm = connect(home)
    registry = Registry(tracking_uri or _tracking_uri(home))
    described = _describe(settings)
    with aws_errors():
        try:
            version = registry.resolve(alias)
            current = _current_version(sm, endpoint, alias, variant)
            if current == version and watch:
                out.print(f"{escape(endpoint)} already runs {alias} (version {version}).")
            else:
                out.print(f"Rolling {escape(endpoint)} to {alias} = version {version} "
                          f"({described}).")  # fmt: skip
                outcome = roll(sm, registry, endpoint, alias, settings, variant, version,
                               _progress(endpoint, version))  # fmt: skip
                _said(outcome, exit_on_rollback=not watch)
            if watch:
                out.print(f"Watching {alias} every {interval} (Ctrl-C stops).")
                try:
                    follow_alias(sm, registry, endpoint, alias, settings, version,
                                 lambda v: _progress(endpoint, v),
                                 lambda o: _said(o, exit_on_rollback=False),
                                 variant, every)  # fmt: skip
                except KeyboardInterrupt:
                    out.print("Stopped watching.")
        except RolloutError as exc:
            raise fail(exc.message) from None


def _tracking_uri(home: Any) -> str:
    url = Home(platform_settings(home=home).home).mlflow_url() or os.environ.get(
        "MLFLOW_TRACKING_URI"
    )
    if not url:
        raise fail(
            "no MLflow to ask: the platform runs without one and MLFLOW_TRACKING_URI is not set "
            "(give --tracking-uri)"
        )
    return url


def _current_version(sm: Any, endpoint: str, alias: Any, variant: str | None) -> str | None:
    """The registry version the variant runs now, when its model is models:/NAME/VERSION."""
    described = sm.describe_endpoint(EndpointName=endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variants = config["ProductionVariants"]
    chosen = next((v for v in variants if v["VariantName"] == (variant or "")), variants[0])
    model = sm.describe_model(ModelName=chosen["ModelName"])
    url = str((model.get("PrimaryContainer") or {}).get("ModelDataUrl", ""))
    prefix = f"models:/{alias.name}/"
    return url[len(prefix) :].rstrip("/") if url.startswith(prefix) else None


def _describe(settings: DeploymentSettings) -> str:
    step = settings.canary or settings.linear
    how = settings.strategy.lower().replace("_", " ")
    if step is not None:
        size = f"{step['Value']}%" if step["Type"] == "CAPACITY_PERCENT" else f"{step['Value']}"
        how += f" {size}" + (" instance(s)" if step["Type"] == "INSTANCE_COUNT" else "")
    how += f", bake {settings.bake} s"
    if settings.alarms:
        how += ", alarms " + ", ".join(settings.alarms)
    return how


def _progress(endpoint: str, version: str) -> Any:
    """A progress callback for pier.iac.rollout.follow: one live status line."""
    status = out.status(f"{escape(endpoint)}: starting version {version}...")
    status.start()

    def show(described: dict[str, Any], elapsed: float) -> None:
        text = f"{escape(endpoint)}: {described['EndpointStatus']} ({elapsed:.0f} s)"
        pending = described.get("PendingDeploymentSummary") or {}
        for v in pending.get("ProductionVariants", []):
            weight = v.get("CurrentWeight", v.get("DesiredWeight"))
            states = ", ".join(s.get("Status", "") for s in v.get("VariantStatus", []))
            text += f"  {escape(v['VariantName'])}: weight {weight}" + (
                f" [{escape(states)}]" if states else ""
            )
        status.update(text)
        if described["EndpointStatus"] not in ("Updating", "SystemUpdating", "RollingBack"):
            status.stop()

    return show


def _said(outcome: Outcome, exit_on_rollback: bool) -> None:
    plan = outcome.plan
    if outcome.succeeded:
        out.print(
            f"[green]✓[/green] {escape(plan.endpoint)}/{escape(plan.variant)} runs "
            f"{escape(plan.model_uri)} ({escape(str(plan.alias))}) on {escape(plan.new_config)} "
            f"after {outcome.seconds:.0f} s."
        )
        return
    err.print(
        f"[red]rolled back:[/red] {escape(plan.endpoint)} stays on {escape(plan.old_config)}: "
        f"{escape(outcome.reason or '')}. Recorded on {escape(plan.model_uri)} (tag pier.rollback)."
    )
    if exit_on_rollback:
        raise typer.Exit(1)


__all__ = ["rollout"]
