"""Applying a plan: in dependency order, with rollback, then CloudFormation's cleanup.

`apply` runs the creates, replacements and updates in dependency order, waiting for each
endpoint to be InService; only after everything succeeded does it delete what was replaced or
removed (CloudFormation's cleanup phase). If a call fails, what this apply created is deleted
and updated endpoints go back to their old configuration: the stack is as it was, and the
error says so. `delete_stack` deletes a stack's resources, endpoints first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pier.iac.cloudformation.engine import Action, Change, Plan
from pier.iac.cloudformation.resources import ENDPOINT, ENDPOINT_CONFIG, MODEL, Kind
from pier.iac.cloudformation.stack import Planned
from pier.iac.cloudformation.state import (
    ApplyError,
    Existing,
    error_text,
    read_platform,
    wait_gone,
    wait_in_service,
)

DEFAULT_TIMEOUT = 1800.0  # seconds an endpoint may take to become InService


class Reporter:
    """Where progress goes: `step` for what is done, `waiting` while an endpoint moves."""

    def step(self, text: str) -> None:
        pass

    def waiting(self, subject: str, status: str, elapsed: float) -> None:
        pass


@dataclass
class _Undo:
    what: str
    run: Callable[[], None]


def apply(
    client: Any, the_plan: Plan, reporter: Reporter, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Run the plan; ApplyError (after rolling back) if a call fails."""
    stack = the_plan.stack.name
    undo: list[_Undo] = []
    current = ""
    try:
        for change in the_plan.changes:
            if change.action in (Action.NONE, Action.DELETE):
                continue
            current = (
                f"Resources.{change.logical_id}: {change.action} of {change.kind.noun} "
                f"{change.name}"
            )
            _run(client, change, stack, the_plan, reporter, timeout, undo)
    except (Exception, KeyboardInterrupt) as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else _reason(exc)
        rolled, failed = _roll_back(undo, reporter)
        message = f"{current} failed: {reason.rstrip('.')}"
        if rolled:
            message += f". Rolled back: {'; '.join(rolled)}"
        if failed:
            message += f". Could not roll back: {'; '.join(failed)}"
        elif not rolled:
            message += ". Nothing had been changed"
        raise ApplyError(message) from None
    _cleanup(client, the_plan, reporter, timeout)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApplyError):
        return exc.message
    return error_text(exc)


def _run(
    client: Any,
    change: Change,
    stack: str,
    the_plan: Plan,
    reporter: Reporter,
    timeout: float,
    undo: list[_Undo],
) -> None:
    planned = change.planned
    assert planned is not None
    kind, name = planned.kind, planned.name
    progress = reporter.waiting
    if change.action in (Action.CREATE, Action.REPLACE, Action.RECREATE):
        if change.action is Action.RECREATE:
            client.delete_endpoint(EndpointName=name)
            wait_gone(client, name, progress, timeout)
            reporter.step(f"deleted the failed endpoint {name}")
        elif name in the_plan.waits_for:
            wait_gone(client, name, progress, timeout)
        request = planned.create_request(stack)
        if kind is MODEL:
            client.create_model(**request)
            undo.append(_Undo(f"deleted model {name}", lambda: client.delete_model(ModelName=name)))
        elif kind is ENDPOINT_CONFIG:
            client.create_endpoint_config(**request)
            undo.append(
                _Undo(
                    f"deleted endpoint configuration {name}",
                    lambda: client.delete_endpoint_config(EndpointConfigName=name),
                )
            )
        else:
            client.create_endpoint(**request)

            def drop() -> None:
                client.delete_endpoint(EndpointName=name)
                wait_gone(client, name, progress, timeout)

            undo.append(_Undo(f"deleted endpoint {name}", drop))
            wait_in_service(client, name, planned.body["EndpointConfigName"], progress, timeout)
        verb = "created" if change.action is not Action.REPLACE else "created (replacement)"
        reporter.step(f"{verb} {kind.noun} {name}")
        return
    old = change.old
    assert old is not None
    if change.action is Action.UPDATE:
        new_config = planned.body["EndpointConfigName"]
        client.update_endpoint(EndpointName=name, **_update_args(planned))
        wait_in_service(client, name, new_config, progress, timeout)
        previous = old.config_name

        def back() -> None:
            client.update_endpoint(EndpointName=name, EndpointConfigName=previous)
            wait_in_service(client, name, str(previous), progress, timeout)

        undo.append(_Undo(f"endpoint {name} back on {previous}", back))
        reporter.step(f"updated endpoint {name}: {previous} -> {new_config}")
    _set_tags(client, old.arn, old.tags, planned.all_tags(stack))
    undo.append(
        _Undo(
            f"tags of {name} restored",
            lambda: _set_tags(client, old.arn, planned.all_tags(stack), old.tags),
        )
    )
    if change.action is Action.TAGS:
        reporter.step(f"updated the tags of {kind.noun} {name}")


def _update_args(planned: Planned) -> dict[str, Any]:
    args = {"EndpointConfigName": planned.body["EndpointConfigName"], **planned.update_options}
    if "DeploymentConfig" in planned.body:
        args["DeploymentConfig"] = planned.body["DeploymentConfig"]
    return args


def _set_tags(client: Any, arn: str, old: dict[str, str], new: dict[str, str]) -> None:
    gone = [k for k in old if k not in new]
    if gone:
        client.delete_tags(ResourceArn=arn, TagKeys=gone)
    changed = [{"Key": k, "Value": v} for k, v in new.items() if old.get(k) != v]
    if changed:
        client.add_tags(ResourceArn=arn, Tags=changed)


def _roll_back(undo: list[_Undo], reporter: Reporter) -> tuple[list[str], list[str]]:
    rolled, failed = [], []
    for step in reversed(undo):
        try:
            step.run()
        except Exception as exc:  # keep going: undo as much as possible
            failed.append(f"{step.what} ({_reason(exc)})")
        else:
            rolled.append(step.what)
            reporter.step(f"rolled back: {step.what}")
    return rolled, failed


def _cleanup(client: Any, the_plan: Plan, reporter: Reporter, timeout: float) -> None:
    """Delete what was replaced or removed: endpoints first, then configurations, models."""
    order = {ENDPOINT.short: 0, ENDPOINT_CONFIG.short: 1, MODEL.short: 2}
    deletes = [c for c in the_plan.changes if c.action is Action.DELETE]
    failed = []
    for change in sorted(deletes, key=lambda c: order[c.kind.short]):
        try:
            delete_resource(client, change.kind, change.name, reporter, timeout)
        except Exception as exc:  # CloudFormation's cleanup failures leave the update done
            failed.append(f"{change.kind.noun} {change.name} ({_reason(exc)})")
    if failed:
        raise ApplyError(
            "the stack is updated, but the cleanup could not delete: " + "; ".join(failed)
        )


def delete_resource(client: Any, kind: Kind, name: str, reporter: Reporter, timeout: float) -> None:
    if kind is ENDPOINT:
        client.delete_endpoint(EndpointName=name)
        wait_gone(client, name, reporter.waiting, timeout)
    elif kind is ENDPOINT_CONFIG:
        client.delete_endpoint_config(EndpointConfigName=name)
    else:
        client.delete_model(ModelName=name)
    reporter.step(f"deleted {kind.noun} {name}")


def delete_stack(
    client: Any, stack_name: str, reporter: Reporter, timeout: float = DEFAULT_TIMEOUT
) -> list[Existing]:
    """Delete every resource of the stack (endpoints first); what was deleted."""
    platform = read_platform(client, stack_name)
    order = {ENDPOINT.short: 0, ENDPOINT_CONFIG.short: 1, MODEL.short: 2}
    failed = []
    deleted = []
    for existing in sorted(platform.stack, key=lambda e: order[e.kind.short]):
        try:
            delete_resource(client, existing.kind, existing.name, reporter, timeout)
            deleted.append(existing)
        except Exception as exc:
            failed.append(f"{existing.kind.noun} {existing.name} ({_reason(exc)})")
    if failed:
        raise ApplyError("could not delete: " + "; ".join(failed))
    return deleted
