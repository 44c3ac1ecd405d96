"""The plan: from what runs to what the stack describes, CloudFormation's way.

`plan` compares the compiled stack with the platform (read-only) and says, per resource:
- create: new in the template;
- no change (or update tags: Tags change in place, as in CloudFormation);
- replace: a Model or EndpointConfig whose request changed gets a new resource under a new
  name; a custom-named one cannot (CloudFormation's own refusal); an Endpoint whose custom
  EndpointName changed is created anew;
- update: an Endpoint whose EndpointConfigName (or DeploymentConfig) changed gets
  UpdateEndpoint, blue/green, the old configuration serving until the new one is healthy;
- delete: in the stack but no longer in the template (or replaced: deleted in the cleanup).

`pier.iac.cloudformation.execute` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pier.iac.cloudformation.resources import ENDPOINT, ENDPOINT_CONFIG, MODEL, Kind
from pier.iac.cloudformation.stack import Planned, Stack
from pier.iac.cloudformation.state import (
    BUSY,
    Existing,
    Platform,
    describe,
    read_platform,
)
from pier.iac.cloudformation.template import MASK, problem

_DESCRIBED_ONLY = frozenset(
    {"ModelArn", "EndpointConfigArn", "CreationTime", "ModelName", "EndpointConfigName"}
    | {"ResponseMetadata"}
)


class Action(StrEnum):
    CREATE = "create"
    NONE = "no change"
    TAGS = "update tags"
    UPDATE = "update"
    REPLACE = "replace"
    RECREATE = "recreate"  # a Failed endpoint: deleted, then created again under its name
    DELETE = "delete"


@dataclass
class Change:
    action: Action
    logical_id: str
    kind: Kind
    name: str
    planned: Planned | None = None
    old: Existing | None = None
    details: list[str] = field(default_factory=list)
    cleanup: bool = False  # a DELETE of something replaced (rather than removed)

    def to_json(self, secrets: list[str]) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "logical_id": self.logical_id,
            "type": self.kind.type,
            "name": self.name,
            "replaces": self.old.name if self.old and self.action is Action.REPLACE else None,
            "details": [redact(d, secrets) for d in self.details],
        }


@dataclass
class Plan:
    stack: Stack
    changes: list[Change]
    waits_for: dict[str, str] = field(default_factory=dict)  # endpoint name → its status

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NONE for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        s = self.stack
        return {
            "stack": s.name,
            "changes": [c.to_json(s.secrets) for c in self.changes],
            "skipped": [
                {"logical_id": k.logical_id, "type": k.type, "reason": k.reason} for k in s.skipped
            ],
            "not_created": [{"logical_id": i, "condition": c} for i, c in s.inactive],
            "outputs": {o.name: redact(o.value, s.secrets) for o in s.outputs},
            "skipped_outputs": [{"name": n, "uses": uses} for n, uses in s.skipped_outputs],
            "notes": [redact(n, s.secrets) for n in s.notes],
        }


def redact(text: str, secrets: list[str]) -> str:
    """`text` with NoEcho parameter values masked."""
    for secret in secrets:
        if secret and (text == secret or (len(secret) >= 4 and secret in text)):
            text = MASK if text == secret else text.replace(secret, MASK)
    return text


# ---------------------------------------------------------------------------------- plan


def plan(client: Any, stack: Stack) -> Plan:
    """What applying `stack` would change; reads the platform and changes nothing. Creates
    and updates come in dependency order, then the deletes (the cleanup, run last)."""
    platform = read_platform(client, stack.name)
    by_logical: dict[str, list[Existing]] = {}
    for existing in platform.stack:
        by_logical.setdefault(existing.logical_id, []).append(existing)
    result = Plan(stack, [])
    deletes: list[Change] = []
    for planned in stack.resources:
        olds = by_logical.pop(planned.logical_id, [])
        change = _change(client, planned, [o for o in olds if o.kind is planned.kind])
        result.changes.append(change)
        _check_name_free(platform, change, result)
        for other in olds:
            if other is change.old and change.action is not Action.REPLACE:
                continue
            why = f"replaced by {change.name}" if other is change.old else "left over"
            deletes.append(_delete(other, why, cleanup=True))
    for olds in by_logical.values():
        deletes.extend(_delete(old, "no longer in the template") for old in olds)
    result.changes.extend(deletes)
    _check_references(platform, result)
    return result


def _delete(old: Existing, why: str, cleanup: bool = False) -> Change:
    return Change(
        Action.DELETE, old.logical_id, old.kind, old.name, old=old, details=[why], cleanup=cleanup
    )


def _change(client: Any, planned: Planned, olds: list[Existing]) -> Change:
    same = next((o for o in olds if o.name.lower() == planned.name.lower()), None)
    old = same or (olds[0] if olds else None)
    base = Change(Action.CREATE, planned.logical_id, planned.kind, planned.name, planned, old)
    if old is None:
        return base
    if planned.kind is ENDPOINT:
        return _endpoint_change(planned, base, same)
    if same is None:
        base.action = Action.REPLACE
        base.details = _differences(describe(client, old), planned.body, planned.kind)
        if old.name != planned.name:
            base.details.insert(0, f"{planned.kind.name_key}: {old.name} -> {planned.name}")
        return base
    if same.digest != planned.digest:
        raise problem(
            planned.at,
            f"Resources.{planned.logical_id}",
            "CloudFormation cannot update a stack when a custom-named resource "
            f"requires replacing. Rename {planned.name} and update the stack "
            "again.",
        )
    return _tags_change(planned, base, same)


def _endpoint_change(planned: Planned, base: Change, same: Existing | None) -> Change:
    old = base.old
    assert old is not None
    if same is None:
        base.action = Action.REPLACE
        base.details = [f"EndpointName: {old.name} -> {planned.name}"]
        return base
    if same.status in BUSY:
        raise problem(
            planned.at,
            f"Resources.{planned.logical_id}",
            f"endpoint {same.name} is {same.status}; apply again once it is InService",
        )
    if same.status == "Failed":
        base.action = Action.RECREATE
        base.details = [
            f"the endpoint is Failed ({same.failure_reason or 'no reason given'}):"
            " it is deleted and created again"
        ]
        return base
    wanted = planned.body["EndpointConfigName"]
    if same.config_name != wanted or same.digest != planned.digest:
        base.action = Action.UPDATE
        if same.config_name != wanted:
            base.details = [f"EndpointConfigName: {same.config_name} -> {wanted}"]
        else:
            base.details = ["DeploymentConfig changed"]
        return base
    return _tags_change(planned, base, same)


def _tags_change(planned: Planned, base: Change, same: Existing) -> Change:
    base.action = Action.NONE
    if same.user_tags != planned.tags:
        base.action = Action.TAGS
        base.details = _differences(same.user_tags, planned.tags, planned.kind, "Tags.")
    return base


def _check_name_free(platform: Platform, change: Change, result: Plan) -> None:
    if change.action not in (Action.CREATE, Action.REPLACE):
        return
    taken = platform.named(change.kind, change.name)
    if taken is None:
        return
    assert change.planned is not None
    if change.kind is ENDPOINT and taken.status == "Deleting":
        result.waits_for[change.name] = "Deleting"
        return
    owner = f"stack {taken.stack}" if taken.stack else "no stack (created by hand)"
    raise problem(
        change.planned.at,
        f"Resources.{change.logical_id}",
        f"a {change.kind.noun} named {change.name!r} already exists and belongs "
        f"to {owner}; rename the resource or delete that {change.kind.noun}",
    )


def _check_references(platform: Platform, result: Plan) -> None:
    """Every ModelName / EndpointConfigName a resource names exists or is planned."""
    planned_names = {
        (c.kind.short, c.name.lower()) for c in result.changes if c.action is not Action.DELETE
    }
    removed = {(c.kind.short, c.name.lower()) for c in result.changes if c.action is Action.DELETE}

    def check(planned: Planned, kind: Kind, name: str, *keys: str | int) -> None:
        key = (kind.short, name.lower())
        if key in planned_names or (platform.named(kind, name) and key not in removed):
            return
        if key in removed:
            why = "is deleted by this apply"
        else:
            why = "does not exist (neither in the template nor on the platform)"
        path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)
        raise problem(
            planned.where(*keys),
            f"Resources.{planned.logical_id}.Properties{path}",
            f"the {kind.noun} {name!r} {why}",
        )

    for change in result.changes:
        planned = change.planned
        if planned is None or change.action is Action.DELETE:
            continue
        if planned.kind is ENDPOINT_CONFIG:
            for member in ("ProductionVariants", "ShadowProductionVariants"):
                for i, variant in enumerate(planned.body.get(member, [])):
                    if "ModelName" in variant:
                        check(planned, MODEL, variant["ModelName"], member, i, "ModelName")
        elif planned.kind is ENDPOINT:
            name = planned.body["EndpointConfigName"]
            check(planned, ENDPOINT_CONFIG, name, "EndpointConfigName")


def _differences(old: Any, new: Any, kind: Kind, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            if not path and key in _DESCRIBED_ONLY:
                continue
            here = f"{path}{key}"
            if _empty(old.get(key)) and _empty(new.get(key)):
                continue  # an empty list or mapping is the same as none
            if key not in old:
                out.append(f"{here}: (none) -> {_short(new[key])}")
            elif key not in new:
                out.append(f"{here}: {_short(old[key])} -> (none)")
            else:
                out.extend(_differences(old[key], new[key], kind, here + "."))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(_differences(a, b, kind, f"{path.rstrip('.')}[{i}]."))
        return out
    keyed = _by_id(old, new) if isinstance(old, list) and isinstance(new, list) else None
    if keyed is not None:  # a variant (or tag) added or removed: name it, diff the others
        key, olds, news = keyed
        out = []
        for ident in [*olds, *(i for i in news if i not in olds)]:
            here = f"{path.rstrip('.')}[{key}={ident}]"
            if ident not in news:
                out.append(f"{here}: removed")
            elif ident not in olds:
                out.append(f"{here}: added {_short(news[ident])}")
            else:
                out.extend(_differences(olds[ident], news[ident], kind, here + "."))
        return out
    if _same(old, new):
        return []
    return [f"{path.rstrip('.')}: {_short(old)} -> {_short(new)}"]


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return math.isclose(float(a), float(b))
    return bool(a == b)


_ID_KEYS = ("VariantName", "Key", "Name")


def _by_id(old: list[Any], new: list[Any]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """Both lists' items by the member that names them (VariantName, Key, Name), if they all
    have one and no name repeats; else None."""
    items = [*old, *new]
    for key in _ID_KEYS:
        if items and all(isinstance(i, dict) and isinstance(i.get(key), str) for i in items):
            olds = {i[key]: i for i in old}
            news = {i[key]: i for i in new}
            if len(olds) == len(old) and len(news) == len(new):
                return key, olds, news
    return None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."
