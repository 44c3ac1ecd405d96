"""A template plus parameter values, compiled into the stack that should run.

Everything is decided here, before the platform is asked anything: parameters and conditions
are evaluated, resources ordered by their dependencies, every property resolved, coerced and
checked against SageMaker's request shapes (the same validator the platform runs), and every
name fixed. A Model or EndpointConfig without a custom name is called
`{stack}-{LogicalId}-{digest}`, the digest being a hash of its resolved request: the same
template gives the same names (so applying twice changes nothing), and a change gives a new
name (CloudFormation's replacement). An Endpoint without a custom name gets a name that depends
on the stack and logical ID only: it is updated in place, never replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pier.contract.sagemaker import validate_input
from pier.errors import AwsError
from pier.iac.cloudformation.dependencies import (
    check_references,
    order,
    references,
    skipped_cycle,
)
from pier.iac.cloudformation.intrinsics import Evaluator, Pseudo
from pier.iac.cloudformation.mapping import LocationMap
from pier.iac.cloudformation.resources import (
    ENDPOINT,
    ENDPOINT_CONFIG,
    KINDS,
    Kind,
    request,
    skip_reason,
    skipped_att,
    skipped_ref,
)
from pier.iac.cloudformation.template import (
    Template,
    TemplateError,
    parameter_values,
    problem,
    scalar_text,
)
from pier.iac.source import Located, where

STACK_TAG = "pier:stack"
LOGICAL_ID_TAG = "pier:logical-id"
DIGEST_TAG = "pier:hash"
MAX_NAME = 63  # SageMaker's names: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}")


def digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def generated_name(stack: str, logical_id: str, key: str) -> str:
    """`{stack}-{logical_id}-{8 hex}`, shortened to SageMaker's 63 characters."""
    suffix = "-" + key[:8]
    base = f"{stack}-{logical_id}"[: MAX_NAME - len(suffix)].rstrip("-")
    return base + suffix


@dataclass(frozen=True)
class Planned:
    """A resource pier runs, fully resolved."""

    logical_id: str
    kind: Kind
    name: str
    custom_name: bool
    body: dict[str, Any]  # the Create* request without name and Tags
    tags: dict[str, str]  # the template's own tags
    update_options: dict[str, Any]
    digest: str
    arn: str
    at: str
    source: Located = field(default_factory=Located, compare=False, repr=False)

    def where(self, *keys: str | int) -> str:
        """`file:line` of a resolved property (`"ProductionVariants", 0, "ModelName"`), as
        close as the template tells; the resource's own line otherwise."""
        found: str = self.at
        node: Any = self.source
        for key in keys:
            if not getattr(node, "line", 0):
                break
            found = where(node, key)
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                break
        return found

    def create_request(self, stack: str) -> dict[str, Any]:
        return {
            self.kind.name_key: self.name,
            **self.body,
            "Tags": [{"Key": k, "Value": v} for k, v in self.all_tags(stack).items()],
        }

    def all_tags(self, stack: str) -> dict[str, str]:
        return {
            **self.tags,
            STACK_TAG: stack,
            LOGICAL_ID_TAG: self.logical_id,
            DIGEST_TAG: self.digest,
        }


@dataclass(frozen=True)
class Skipped:
    logical_id: str
    type: str
    reason: str
    at: str
    source: str = ""  # the SAM resource a resource SAM would add comes from


@dataclass(frozen=True)
class Output:
    name: str
    value: str
    description: str | None = None
    export: str | None = None


@dataclass
class Stack:
    name: str
    pseudo: Pseudo
    resources: list[Planned] = field(default_factory=list)  # in creation order
    skipped: list[Skipped] = field(default_factory=list)
    inactive: list[tuple[str, str]] = field(default_factory=list)  # (logical ID, condition)
    outputs: list[Output] = field(default_factory=list)
    #: (output name, the skipped resources its value uses): not printed, listed as skipped
    skipped_outputs: list[tuple[str, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # NoEcho values: never printed

    def get(self, logical_id: str) -> Planned | None:
        return next((r for r in self.resources if r.logical_id == logical_id), None)


class _Table:
    """What Ref / Fn::GetAtt of each resource gives, filled in creation order."""

    def __init__(self, template: Template, pseudo: Pseudo) -> None:
        self.template = template
        self.pseudo = pseudo
        self.planned: dict[str, Planned] = {}
        self.inactive: dict[str, str] = {}

    def _check(self, logical_id: str, at: str, path: str) -> None:
        if logical_id in self.inactive:
            raise problem(
                at,
                path,
                f"refers to {logical_id}, which is not created: its "
                f"Condition {self.inactive[logical_id]} is false",
            )

    def _physical(self, logical_id: str) -> str:
        """The placeholder a skipped resource gives: `{stack}-{LogicalId}` (`.` read as `-`
        for SAM's `Function.Alias` and the like)."""
        return f"{self.pseudo.stack_name}-{logical_id.replace('.', '-')}"

    def ref(self, logical_id: str, at: str, path: str) -> Any:
        self._check(logical_id, at, path)
        planned = self.planned.get(logical_id)
        if planned is not None:
            return planned.arn
        implicit = self.template.implicit.get(logical_id)
        if implicit is not None and logical_id not in self.template.resources:
            return skipped_ref(implicit.type, self._physical(logical_id))
        resource = self.template.resources[logical_id]
        if resource.type in KINDS:  # only when DependsOn/reference order was bypassed
            raise problem(at, path, f"refers to {logical_id} before it is resolved")
        return skipped_ref(resource.type, self._physical(logical_id))

    def get_att(self, logical_id: str, attribute: str, at: str, path: str) -> Any:
        self._check(logical_id, at, path)
        implicit = self.template.implicit.get(logical_id)
        if implicit is not None and logical_id not in self.template.resources:
            return skipped_att(implicit.type, self._physical(logical_id), attribute, self.pseudo)
        resource = self.template.resources[logical_id]
        kind = KINDS.get(resource.type)
        if kind is None:
            return skipped_att(resource.type, self._physical(logical_id), attribute, self.pseudo)
        if attribute not in kind.attributes:
            raise problem(
                at,
                path,
                f"{resource.type} has no attribute {attribute!r} (it has: "
                f"{', '.join(sorted(kind.attributes))})",
            )
        planned = self.planned.get(logical_id)
        if planned is None:
            raise problem(at, path, f"refers to {logical_id} before it is resolved")
        return planned.arn if attribute.endswith("Arn") else planned.name


def stack_name_error(name: str) -> str | None:
    if STACK_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid stack name: it must start with a letter and hold only "
        "letters, digits and hyphens (128 at most); choose one with --stack-name"
    )


def compile_stack(
    template: Template,
    given: Mapping[str, str],
    pseudo: Pseudo,
    locations: LocationMap | None = None,
) -> Stack:
    """The stack `template` describes with these parameter values; TemplateError if not."""
    bad_name = stack_name_error(pseudo.stack_name)
    if bad_name:
        raise TemplateError(bad_name)
    locations = locations or LocationMap()
    values = parameter_values(template, given)
    stack = Stack(pseudo.stack_name, pseudo, notes=list(template.notes))
    for name, p in template.parameters.items():
        if p.no_echo and name in values:  # an unread SSM parameter has no value to hide
            value = values[name]
            stack.secrets.extend(value if isinstance(value, list) else [value])
    table = _Table(template, pseudo)
    evaluator = Evaluator(template, values, pseudo, table)
    for name in template.conditions:
        evaluator.condition(name, where(template.conditions, name), f"Conditions.{name}")
    graph = check_references(template)
    _check_duplicates(template, stack)
    cycle = skipped_cycle(template, graph)
    if cycle:
        stack.notes.append(
            f"Resources: circular dependency between resources [{', '.join(cycle)}], all of "
            "which pier skips: not in its way (CloudFormation would refuse it unless a "
            "transform removes it)"
        )

    def rank(logical_id: str) -> int:
        kind = KINDS.get(template.resources[logical_id].type)
        return kind.rank if kind else len(KINDS)

    for logical_id in order(template, graph, rank):
        resource = template.resources[logical_id]
        if resource.condition is not None and not evaluator.condition(
            resource.condition, where(resource.node, "Condition"), f"Resources.{logical_id}"
        ):
            table.inactive[logical_id] = resource.condition
            stack.inactive.append((logical_id, resource.condition))
            continue
        path = f"Resources.{logical_id}.Properties"
        at = where(resource.node, "Properties") if "Properties" in resource.node else resource.at
        kind = KINDS.get(resource.type)
        if kind is None:
            evaluator.lenient = True  # a skipped resource's imports need not resolve
            try:
                evaluator.resolve(resource.properties, path, at)  # its errors are still errors
            finally:
                evaluator.lenient = False
            reason = skip_reason(resource.type)
            stack.skipped.append(Skipped(logical_id, resource.type, reason, resource.at))
            continue
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.node.get(policy) in ("Retain", "RetainExceptOnCreate", "Snapshot"):
                stack.notes.append(
                    f"{logical_id}: {policy} {resource.node[policy]} is not "
                    "honoured: pier deletes what it replaces or removes"
                )
        props = evaluator.resolve(resource.properties, path, at)
        req = request(kind, props, path, at)
        if kind.short == "Model":
            notes, problems = locations.apply(req.body)
            stack.notes.extend(f"{logical_id}: {note}" for note in notes)
            for found in problems:
                raise problem(
                    _where(props, found.keys, at),
                    path + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in found.keys),
                    found.message,
                )
        if kind is ENDPOINT_CONFIG:
            notes = locations.apply_destinations(req.body)
            stack.notes.extend(f"{logical_id}: {note}" for note in notes)
        key = digest(req.body)
        if req.name is not None:
            name = req.name
        elif kind is ENDPOINT:
            name = generated_name(
                pseudo.stack_name,
                logical_id,
                digest({"stack": pseudo.stack_name, "id": logical_id}),
            )
        else:
            name = generated_name(pseudo.stack_name, logical_id, key)
        planned = Planned(
            logical_id=logical_id,
            kind=kind,
            name=name,
            custom_name=req.name is not None,
            body=req.body,
            tags=req.tags,
            update_options=req.update_options,
            digest=key,
            arn=kind.arn(pseudo, name),
            at=resource.at,
            source=props,
        )
        _validate(planned, pseudo.stack_name, path, at)
        table.planned[logical_id] = planned
        stack.resources.append(planned)
    position = {logical_id: i for i, logical_id in enumerate(template.resources)}
    for implicit in template.implicit.values():
        if implicit.source in dict(stack.inactive):
            continue
        reason = f"made by SAM for {implicit.source}: {skip_reason(implicit.type)}"
        at = template.resources[implicit.source].at
        stack.skipped.append(
            Skipped(implicit.logical_id, implicit.type, reason, at, implicit.source)
        )
    stack.skipped.sort(key=lambda s: position[s.source or s.logical_id])
    stack.inactive.sort(key=lambda item: position[item[0]])
    _check_names(stack)
    stack.notes.extend(locations.unused())
    stack.outputs = _outputs(template, evaluator, stack)
    return stack


def _where(props: Located, keys: tuple[str | int, ...], fallback: str) -> str:
    """`file:line` of a property by its keys, as close as the template tells."""
    found = fallback
    node_: Any = props
    for key in keys:
        if not getattr(node_, "line", 0):
            break
        found = where(node_, key)
        try:
            node_ = node_[key]
        except (KeyError, IndexError, TypeError):
            break
    return found


def _check_duplicates(template: Template, stack: Stack) -> None:
    """A key given twice inside a resource pier runs is refused; inside one it skips, it is a
    warning (CloudFormation's reading keeps the later value)."""
    for duplicate in template.duplicates:
        resource = template.resources.get(str(duplicate.path[1]))
        if resource is None or resource.type in KINDS:
            raise TemplateError(duplicate.message)
        stack.notes.append(
            f"warning: {duplicate.message} (in Resources.{resource.logical_id}, which pier skips)"
        )


def _validate(planned: Planned, stack: str, path: str, at: str) -> None:
    """The platform's own request validation, before anything is sent."""
    try:
        validate_input(planned.kind.create, planned.create_request(stack))
        if planned.update_options:
            validate_input(
                "UpdateEndpoint",
                {
                    "EndpointName": planned.name,
                    "EndpointConfigName": planned.body.get("EndpointConfigName", ""),
                    **planned.update_options,
                },
            )
    except AwsError as exc:
        keys = _member_keys(exc.message)
        if keys:  # point at the first property AWS names, as closely as the template tells
            at = planned.where(*keys)
            path += "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys)
        raise problem(
            at, path, f"SageMaker would refuse this {planned.kind.noun}: {exc.message}"
        ) from None


_MEMBER = re.compile(r" at '([A-Za-z0-9.]+)' ")


def _member_keys(message: str) -> list[str | int]:
    """AWS's `productionVariants.1.member.instanceType` as the template's keys
    `["ProductionVariants", 0, "InstanceType"]`; [] if the message names no member."""
    found = _MEMBER.search(message)
    if found is None:
        return []
    keys: list[str | int] = []
    for part in found.group(1).split("."):
        if part.isdigit():
            keys.append(int(part) - 1)  # AWS counts list members from 1
        elif part not in ("member", "entry", "key", "value"):
            keys.append(part[:1].upper() + part[1:])
    return keys


def _check_names(stack: Stack) -> None:
    seen: dict[tuple[str, str], Planned] = {}
    for planned in stack.resources:
        key = (planned.kind.short, planned.name.lower())
        if key in seen:
            raise problem(
                planned.at,
                f"Resources.{planned.logical_id}",
                f"{seen[key].logical_id} already names its {planned.kind.noun} {planned.name!r}",
            )
        seen[key] = planned


def _outputs(template: Template, evaluator: Evaluator, stack: Stack) -> list[Output]:
    """The outputs, but for those whose value uses a resource pier skips: they are listed in
    `stack.skipped_outputs` (still evaluated, so that their errors are errors)."""
    skipped = {s.logical_id for s in stack.skipped}
    outputs = []
    for name, node in template.outputs.items():
        path = f"Outputs.{name}"
        at = where(template.outputs, name)
        condition = node.get("Condition")
        if condition is not None and not evaluator.condition(condition, at, path):
            continue
        value_at = where(node, "Value")
        uses = [
            ref
            for ref, _, _ in references(node["Value"], f"{path}.Value", value_at)
            if ref in skipped or ref.split(".", 1)[0] in skipped
        ]
        if uses:
            evaluator.lenient = True
            try:
                evaluator.resolve(node["Value"], f"{path}.Value", value_at)
            finally:
                evaluator.lenient = False
            stack.skipped_outputs.append((name, list(dict.fromkeys(uses))))
            continue
        value = evaluator.resolve(node["Value"], f"{path}.Value", where(node, "Value"))
        text = scalar_text(value)
        if text is None:
            raise problem(
                where(node, "Value"),
                f"{path}.Value",
                "an output's value must be a string (use Fn::Join for a list)",
            )
        export = node.get("Export")
        export_name = None
        if isinstance(export, dict) and "Name" in export:
            resolved = evaluator.resolve(
                export["Name"], f"{path}.Export.Name", where(export, "Name")
            )
            export_name = scalar_text(resolved)
        description = node.get("Description")
        outputs.append(
            Output(name, text, description if isinstance(description, str) else None, export_name)
        )
    return outputs
