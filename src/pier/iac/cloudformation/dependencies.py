"""The dependency graph: what each resource refers to, and an order that respects it.

References are found without evaluating anything (`Ref`, `Fn::GetAtt`, `Fn::Sub`'s `${...}`,
in every branch of an `Fn::If`, as CloudFormation's own graph does) plus `DependsOn`. A name
that is neither a parameter, a pseudo parameter, a resource nor one SAM would add, and a cycle
through a resource pier runs, are errors. Resources pier skips need no order among themselves
(what they give is made up from their names), so a cycle among them only is a note.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pier.iac.cloudformation.intrinsics import (
    PSEUDO_PARAMETERS,
    SUB_PLACEHOLDER,
    intrinsic_name,
)
from pier.iac.cloudformation.resources import KINDS
from pier.iac.cloudformation.template import Template, TemplateError, problem
from pier.iac.source import Located, where


def references(node: Any, path: str, at: str) -> Iterator[tuple[str, str, str]]:
    """(name, file:line, path) of every parameter, pseudo parameter or resource `node` refers
    to, in any branch (CloudFormation's dependency graph ignores conditions too). Malformed
    intrinsics are left to the evaluator, which says what is wrong with them."""
    if isinstance(node, dict):
        fn = intrinsic_name(node)
        if fn is not None and isinstance(node, Located):
            at = where(node, fn)
        args = node[fn] if fn is not None else None
        here = f"{path}.{fn}"
        if fn == "Ref" and isinstance(args, str):
            yield args, at, here
        elif fn == "Fn::GetAtt" and isinstance(args, str):
            yield args.split(".", 1)[0], at, here
        elif fn == "Fn::GetAtt" and isinstance(args, list) and len(args) == 2:
            if isinstance(args[0], str):
                yield args[0], at, here
            yield from references(args[1], f"{here}[1]", at)
        elif fn == "Fn::Sub":
            text, variables = args, {}
            if isinstance(args, list) and len(args) == 2 and isinstance(args[1], dict):
                text, variables = args
                yield from references(variables, f"{here}[1]", at)
            if isinstance(text, str):
                for match in SUB_PLACEHOLDER.finditer(text):
                    name = match.group(1).strip()
                    if not name.startswith("!") and name not in variables:
                        yield name.split(".", 1)[0], at, here
        elif fn is None or fn not in ("Ref", "Fn::GetAtt"):
            for key, value in node.items():
                yield from references(value, f"{path}.{key}", _at(node, key, at))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from references(item, f"{path}[{i}]", _at(node, i, at))


def _at(container: Any, key: str | int, fallback: str) -> str:
    return where(container, key) if getattr(container, "line", 0) else fallback


def _unknown(name: str) -> str:
    if name.startswith("AWS::"):
        return f"unknown pseudo parameter {name} (known: {', '.join(sorted(PSEUDO_PARAMETERS))})"
    return f"refers to {name!r}: no parameter, pseudo parameter or resource of that name"


def check_references(template: Template) -> dict[str, set[str]]:
    """Each resource's dependencies (references and DependsOn) among the resources; an
    unknown name is an error, as in CloudFormation's template validation."""
    known = (
        set(template.parameters)
        | PSEUDO_PARAMETERS
        | set(template.resources)
        | set(template.implicit)
    )
    graph: dict[str, set[str]] = {}
    for logical_id, resource in template.resources.items():
        path = f"Resources.{logical_id}"
        deps: set[str] = set()
        props_at = where(resource.node, "Properties") if resource.properties else resource.at
        for name, at, where_ in references(resource.properties, f"{path}.Properties", props_at):
            if name not in known:
                raise problem(at, where_, _unknown(name))
            if name in template.resources:
                deps.add(name)
        for name in resource.depends_on:
            if name in template.implicit:
                continue  # SAM's own: made with its source, which pier skips too
            if name not in template.resources:
                raise problem(
                    where(resource.node, "DependsOn"),
                    f"{path}.DependsOn",
                    f"{name!r} is not a resource of this template",
                )
            deps.add(name)
        if logical_id in deps:
            raise problem(resource.at, path, "the resource refers to itself")
        graph[logical_id] = deps
    for name, output in template.outputs.items():
        value_at = where(output, "Value")
        for ref, at, where_ in references(output.get("Value"), f"Outputs.{name}.Value", value_at):
            if ref not in known:
                raise problem(at, where_, _unknown(ref))
    return graph


def order(template: Template, graph: dict[str, set[str]], rank: Callable[[str], int]) -> list[str]:
    """The resources in an order that creates each after what it depends on; ties broken by
    `rank`, then template order. A cycle through a resource pier runs is an error naming its
    members; resources pier skips need no order among themselves (what they give is made up
    from their names), so a cycle among them only is left to `skipped_cycle`."""
    position = {name: i for i, name in enumerate(template.resources)}
    runs = _runs(template)
    for cycle in _cycles(graph):
        if cycle & runs:
            members = sorted(cycle, key=position.__getitem__)
            first = template.resources[members[0]]
            raise TemplateError(
                f"{first.at}: Resources: circular dependency between resources "
                f"[{', '.join(members)}]"
            )
    done: list[str] = []
    waiting = {name: {d for d in deps if name in runs or d in runs} for name, deps in graph.items()}
    while waiting:
        ready = [n for n, deps in waiting.items() if not deps]
        ready.sort(key=lambda n: (rank(n), position[n]))
        chosen = ready[0]
        done.append(chosen)
        del waiting[chosen]
        for deps in waiting.values():
            deps.discard(chosen)
    return done


def skipped_cycle(template: Template, graph: dict[str, set[str]]) -> list[str]:
    """The resources on cycles among resources pier skips only (template order)."""
    position = {name: i for i, name in enumerate(template.resources)}
    runs = _runs(template)
    members = set().union(*(cycle for cycle in _cycles(graph) if not cycle & runs))
    return sorted(members, key=position.__getitem__)


def _runs(template: Template) -> set[str]:
    return {name for name, r in template.resources.items() if r.type in KINDS}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components that hold a cycle, in the graph's order."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, ()))
        reach[start] = seen
    cycles: list[set[str]] = []
    placed: set[str] = set()
    for name in graph:
        if name in placed or name not in reach[name]:
            continue
        component = {other for other in reach[name] if name in reach[other]}
        placed |= component
        cycles.append(component)
    return cycles
