"""`pier delete-endpoint`: an endpoint, then what only it used (its config, its models).

SageMaker deletes one resource per call and leaves the config and models behind; this command
cleans up the chain unless something else still uses a link: another endpoint the config, or
another endpoint config a model (a config kept with --keep-config keeps its models too).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from pier.cli.common import HomeOption, aws_errors, connect, fail, out, unless_gone

DELETE_TIMEOUT_S = 300.0  # an endpoint drains its instances (30 s grace each) before it is gone


def _wait_gone(sm: Any, name: str) -> None:
    with out.status(f"Deleting endpoint {escape(name)} (draining its instances)..."):
        deadline = time.monotonic() + DELETE_TIMEOUT_S
        while time.monotonic() < deadline:
            if unless_gone(sm.describe_endpoint, EndpointName=name) is None:
                return
            time.sleep(0.25)
    raise fail(f"endpoint {name} still exists {DELETE_TIMEOUT_S:g} s after DeleteEndpoint")


def _users_of_config(sm: Any, config: str) -> list[str]:
    """The endpoints that still use an endpoint config."""
    users = []
    for page in sm.get_paginator("list_endpoints").paginate():
        for e in page["Endpoints"]:
            d = unless_gone(sm.describe_endpoint, EndpointName=e["EndpointName"])
            if d is not None and d["EndpointConfigName"] == config:
                users.append(e["EndpointName"])
    return users


def _model_users(sm: Any) -> dict[str, list[str]]:
    """Model name → the endpoint configs that use it."""
    users: dict[str, list[str]] = {}
    for page in sm.get_paginator("list_endpoint_configs").paginate():
        for c in page["EndpointConfigs"]:
            d = unless_gone(sm.describe_endpoint_config, EndpointConfigName=c["EndpointConfigName"])
            for v in _variants(d):
                users.setdefault(v["ModelName"], []).append(c["EndpointConfigName"])
    return users


def _variants(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    if config is None:  # deleted meanwhile
        return []
    return [*config["ProductionVariants"], *config.get("ShadowProductionVariants", [])]


def _delete(what: str, call: Any, **request: Any) -> None:
    unless_gone(call, **request)  # already gone: that is what was asked
    (name,) = request.values()
    out.print(f"[green]✓[/green] deleted {what} {escape(name)}")


def delete_endpoint(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    keep_config: Annotated[
        bool, typer.Option("--keep-config", help="Keep its endpoint config (and so its models).")
    ] = False,
    keep_models: Annotated[
        bool, typer.Option("--keep-models", help="Keep the models its config used.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Delete an endpoint, then its endpoint config and models unless something still uses them."""
    sm = connect(home)
    with aws_errors():
        config_name = sm.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        sm.delete_endpoint(EndpointName=name)
        _wait_gone(sm, name)
        out.print(f"[green]✓[/green] deleted endpoint {escape(name)}")
        config = unless_gone(sm.describe_endpoint_config, EndpointConfigName=config_name)
        if config is None:
            out.print(f"  endpoint config {escape(config_name)} was already deleted")
            return
        users = _users_of_config(sm, config_name)
        if keep_config or users:
            why = "--keep-config" if keep_config else "used by endpoint " + ", ".join(users)
            out.print(f"  kept endpoint config {escape(config_name)} ({escape(why)})")
        else:
            _delete("endpoint config", sm.delete_endpoint_config, EndpointConfigName=config_name)
        model_users = {} if keep_models else _model_users(sm)
        for model in dict.fromkeys(v["ModelName"] for v in _variants(config)):
            if keep_models or model in model_users:
                why = "--keep-models" if keep_models else "used by endpoint config "
                why += ", ".join(model_users.get(model, []))
                out.print(f"  kept model {escape(model)} ({escape(why)})")
            else:
                _delete("model", sm.delete_model, ModelName=model)
