"""CloudFormation's intrinsic functions, pseudo parameters and conditions.

`Evaluator.resolve` turns a template value into plain data: `Ref`, `Fn::Sub`, `Fn::GetAtt`,
`Fn::FindInMap`, `Fn::If` (with `AWS::NoValue` removing the key or item), `Fn::Join`,
`Fn::Split`, `Fn::Select`, `Fn::Base64`, `Fn::GetAZs`, `Fn::Length`, `Fn::ToJsonString`; the
condition functions (`Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`, `Condition`) belong to the
Conditions section. A resource's `Ref` and attributes come from a `Resources` lookup (the
stack knows them before anything is created: every name is decided up front).

Resolved mappings and lists keep the file and lines of the template nodes they came from, so
later checks can still say `file:line`. Every error names the place: `file:line: path: ...`.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pier.iac.cloudformation.template import Template, problem, scalar_text
from pier.iac.source import Located, LocatedList, where


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()  # what `Ref: AWS::NoValue` gives: the key or item disappears
PSEUDO_PARAMETERS = frozenset(
    {
        *("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::NoValue", "AWS::StackName"),
        *("AWS::StackId", "AWS::URLSuffix", "AWS::NotificationARNs"),
    }
)
CONDITION_FUNCTIONS = frozenset({"Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Condition"})
SUB_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Pseudo:
    """The values of the pseudo parameters for one stack."""

    region: str
    account: str
    stack_name: str
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    @property
    def stack_id(self) -> str:
        # Stable across applies, so that templates using it plan as "no change".
        tail = uuid.uuid5(uuid.NAMESPACE_URL, f"pier:{self.account}:{self.stack_name}")
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:"
            f"stack/{self.stack_name}/{tail}"
        )

    def value(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }[name]


class Resources(Protocol):
    """What `Ref` and `Fn::GetAtt` of a resource give; raises TemplateError when unknown."""

    def ref(self, logical_id: str, at: str, path: str) -> Any: ...

    def get_att(self, logical_id: str, attribute: str, at: str, path: str) -> Any: ...


def _isintrinsic_name(key: str) -> bool:
    return key == "Ref" or key.startswith("Fn::")


def intrinsic_name(node: Any) -> str | None:
    """The intrinsic's name if `node` is one (a mapping whose only key is Ref / Fn::* /
    Condition)."""
    if isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        if _isintrinsic_name(key) or key == "Condition":
            return str(key)
    return None


def _list_args(
    fn: str, args: Any, at: str, path: str, count: tuple[int, ...], form: str
) -> list[Any]:
    if not isinstance(args, list) or len(args) not in count:
        got = f"{len(args)} arguments" if isinstance(args, list) else f"a {_kind(args)}"
        want = " or ".join(str(c) for c in count)
        raise problem(at, path, f"{fn} takes a list of {want} arguments {form}, got {got}")
    return args


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "string" if isinstance(value, str) else type(value).__name__


def _at(container: Any, key: str | int, fallback: str) -> str:
    return where(container, key) if getattr(container, "line", 0) else fallback


class Evaluator:
    """Evaluates one template's values for one set of parameter values."""

    def __init__(
        self,
        template: Template,
        parameters: dict[str, str | list[str]],
        pseudo: Pseudo,
        resources: Resources,
    ) -> None:
        self.template = template
        self.parameters = parameters
        self.pseudo = pseudo
        self.resources = resources
        self._conditions: dict[str, bool] = {}
        self._evaluating: list[str] = []
        self.lenient = False  # True for resources pier skips: unreachable imports are tolerated

    # -------------------------------------------------------------------------- conditions
    def condition(self, name: str, at: str, path: str) -> bool:
        """The value of the condition `name` (each evaluated once; cycles are errors)."""
        if name in self._conditions:
            return self._conditions[name]
        section = self.template.conditions
        if name not in section:
            raise problem(at, path, f"no condition named {name!r} in Conditions")
        if name in self._evaluating:
            cycle = " -> ".join([*self._evaluating[self._evaluating.index(name) :], name])
            raise problem(where(section, name), f"Conditions.{name}", f"circular condition {cycle}")
        self._evaluating.append(name)
        try:
            value = self._condition_value(section[name], f"Conditions.{name}", where(section, name))
        finally:
            self._evaluating.pop()
        self._conditions[name] = value
        return value

    def _condition_value(self, node: Any, path: str, at: str) -> bool:
        fn = intrinsic_name(node)
        if fn not in CONDITION_FUNCTIONS:
            raise problem(
                at, path, "a condition is Fn::Equals, Fn::And, Fn::Or, Fn::Not or {Condition: Name}"
            )
        assert fn is not None
        args, at = node[fn], where(node, fn)
        path = f"{path}.{fn}"
        if fn == "Condition":
            if not isinstance(args, str):
                raise problem(at, path, "names a condition: a string")
            return self.condition(args, at, path)
        if fn == "Fn::Equals":
            a, b = _list_args(fn, args, at, path, (2,), "[value, value]")
            left = self.resolve(a, f"{path}[0]", _at(args, 0, at))
            right = self.resolve(b, f"{path}[1]", _at(args, 1, at))
            return bool(_comparable(left) == _comparable(right))
        if fn == "Fn::Not":
            (item,) = _list_args(fn, args, at, path, (1,), "[condition]")
            return not self._condition_value(item, f"{path}[0]", _at(args, 0, at))
        items = _list_args(fn, args, at, path, tuple(range(2, 11)), "[condition, ...]")
        values = [
            self._condition_value(item, f"{path}[{i}]", _at(args, i, at))
            for i, item in enumerate(items)
        ]
        return all(values) if fn == "Fn::And" else any(values)

    # ---------------------------------------------------------------------------- values
    def resolve(self, node: Any, path: str, at: str) -> Any:
        """`node` with every intrinsic evaluated; NO_VALUE if it is `Ref: AWS::NoValue`."""
        if isinstance(node, dict):
            fn = intrinsic_name(node)
            if fn is not None and fn != "Condition":
                return self._call(
                    fn, node[fn], path, where(node, fn) if isinstance(node, Located) else at
                )
            for key in node:
                if _isintrinsic_name(key) and len(node) > 1:
                    raise problem(
                        _at(node, key, at),
                        f"{path}.{key}",
                        f"{key} must be the only key of its mapping",
                    )
            out = Located()
            if isinstance(node, Located):
                out.file, out.line = node.file, node.line
            for key, value in node.items():
                resolved = self.resolve(value, f"{path}.{key}", _at(node, key, at))
                if resolved is not NO_VALUE:
                    out[key] = resolved
                    if isinstance(node, Located) and key in node.key_lines:
                        out.key_lines[key] = node.key_lines[key]
            return out
        if isinstance(node, list):
            items = LocatedList()
            if isinstance(node, LocatedList):
                items.file, items.line = node.file, node.line
            for i, value in enumerate(node):
                resolved = self.resolve(value, f"{path}[{i}]", _at(node, i, at))
                if resolved is not NO_VALUE:
                    items.append(resolved)
                    items.item_lines.append(
                        node.item_lines[i] if isinstance(node, LocatedList) else 0
                    )
            return items
        return node

    def _string(self, node: Any, path: str, at: str, what: str) -> str:
        value = self.resolve(node, path, at)
        text = scalar_text(value)
        if text is None:
            raise problem(at, path, f"{what} must be a string, got a {_kind(value)}")
        return text

    def _strings(self, node: Any, path: str, at: str, what: str) -> list[str]:
        value = self.resolve(node, path, at)
        if not isinstance(value, list):
            raise problem(at, path, f"{what} must be a list, got a {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            text = scalar_text(item)
            if text is None:
                raise problem(at, f"{path}[{i}]", f"{what} holds a {_kind(item)}, not a string")
            out.append(text)
        return out

    def _call(self, fn: str, args: Any, path: str, at: str) -> Any:
        path = f"{path}.{fn}"
        handler = _HANDLERS.get(fn)
        if handler is not None:
            return handler(self, args, path, at)
        if fn in CONDITION_FUNCTIONS:
            raise problem(
                at,
                path,
                f"{fn} is a condition function: declare the condition in "
                "Conditions and use its name in Fn::If",
            )
        if fn in ("Fn::ImportValue", "Fn::Cidr", "Fn::Transform"):
            if self.lenient:
                return f"<{fn} of a resource pier skips>"
            what = {
                "Fn::ImportValue": "imports values exported by other stacks",
                "Fn::Cidr": "computes VPC address blocks",
                "Fn::Transform": "runs a macro on AWS",
            }[fn]
            raise problem(at, path, f"{fn} {what}; pier cannot evaluate it here")
        known = ", ".join(sorted([*_HANDLERS, *CONDITION_FUNCTIONS - {"Condition"}]))
        raise problem(at, path, f"unknown intrinsic function {fn} (known: {known})")

    def ref(self, args: Any, path: str, at: str) -> Any:
        if not isinstance(args, str):
            raise problem(
                at, path, f"Ref takes the name of a parameter or resource, not a {_kind(args)}"
            )
        if args in self.parameters:
            return self.parameters[args]
        declared = self.template.parameters.get(args)
        if declared is not None:  # an SSM parameter without a value given
            if self.lenient:
                return f"<SSM parameter {declared.default or args}>"
            raise problem(
                at,
                path,
                f"parameter {args} ({declared.type}) reads AWS Systems Manager Parameter "
                f"Store{f' ({declared.default})' if declared.default else ''}, which pier "
                f"cannot reach: pass its value with --parameter {args}=VALUE",
            )
        if args in PSEUDO_PARAMETERS:
            return self.pseudo.value(args)
        if args.startswith("AWS::"):
            raise problem(
                at,
                path,
                f"unknown pseudo parameter {args} (known: {', '.join(sorted(PSEUDO_PARAMETERS))})",
            )
        if args in self.template.resources or args in self.template.implicit:
            return self.resources.ref(args, at, path)
        raise problem(at, path, f"Ref to {args!r}: no parameter or resource of that name")

    def get_att(self, args: Any, path: str, at: str) -> Any:
        if isinstance(args, str):
            resource, dot, attribute = args.partition(".")
            if not dot:
                raise problem(at, path, f"Fn::GetAtt {args!r} must be Resource.Attribute")
        else:
            resource, attribute = _list_args(
                "Fn::GetAtt", args, at, path, (2,), "[LogicalId, Attribute]"
            )
            if not isinstance(resource, str):
                raise problem(at, path, "Fn::GetAtt's first argument is a logical ID: a string")
            attribute = self._string(attribute, f"{path}[1]", _at(args, 1, at), "the attribute")
        if resource not in self.template.resources and resource not in self.template.implicit:
            raise problem(at, path, f"Fn::GetAtt of {resource!r}: no resource of that name")
        return self.resources.get_att(resource, attribute, at, path)

    def sub(self, args: Any, path: str, at: str) -> str:
        variables: dict[str, Any] = {}
        if isinstance(args, list):
            text, mapping = _list_args("Fn::Sub", args, at, path, (2,), "[string, {variables}]")
            if not isinstance(mapping, dict):
                raise problem(at, path, "Fn::Sub's second argument maps variable names to values")
            for name, value in mapping.items():
                variables[name] = (value, _at(mapping, name, at))
        else:
            text = args
        if not isinstance(text, str):
            raise problem(
                at,
                path,
                f"Fn::Sub takes a string (or [string, {{variables}}]), not a {_kind(text)}",
            )

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            where_ = f"{path}: ${{{name}}}"
            if name in variables:
                node, node_at = variables[name]
                value = self.resolve(node, f"{path}.{name}", node_at)
            elif (
                name in self.template.parameters
                or name in PSEUDO_PARAMETERS
                or name in self.template.resources
                or name in self.template.implicit
            ):
                value = self.ref(name, where_, at)
            elif "." in name and (
                name.split(".", 1)[0] in self.template.resources
                or name.split(".", 1)[0] in self.template.implicit
            ):
                value = self.get_att(name, where_, at)
            else:
                raise problem(
                    at,
                    path,
                    f"${{{name}}}: no parameter, resource, attribute or variable of that name",
                )
            text = scalar_text(value)
            if text is None:
                raise problem(
                    at,
                    path,
                    f"${{{name}}} is a {_kind(value)}, Fn::Sub needs a "
                    "string (use Fn::Join for lists)",
                )
            return text

        return SUB_PLACEHOLDER.sub(replace, text)

    def find_in_map(self, args: Any, path: str, at: str) -> Any:
        form = "[MapName, TopLevelKey, SecondLevelKey]"
        names = _list_args("Fn::FindInMap", args, at, path, (3,), form)
        keys = [
            self._string(arg, f"{path}[{i}]", _at(args, i, at), "a key")
            for i, arg in enumerate(names)
        ]
        mapping = self.template.mappings.get(keys[0])
        if mapping is None:
            raise problem(at, path, f"no mapping named {keys[0]!r} in Mappings")
        top = mapping.get(keys[1])
        if top is None:
            raise problem(
                at, path, f"Mappings.{keys[0]} has no key {keys[1]!r} (keys: {', '.join(mapping)})"
            )
        if keys[2] not in top:
            raise problem(
                at,
                path,
                f"Mappings.{keys[0]}.{keys[1]} has no key {keys[2]!r} (keys: {', '.join(top)})",
            )
        value = top[keys[2]]
        if isinstance(value, list):
            return [scalar_text(v) for v in value]
        return scalar_text(value)

    def if_(self, args: Any, path: str, at: str) -> Any:
        name, _, _ = _list_args(
            "Fn::If", args, at, path, (3,), "[ConditionName, value if true, value if false]"
        )
        if not isinstance(name, str):
            raise problem(at, path, "Fn::If's first argument names a condition: a string")
        chosen = 1 if self.condition(name, at, f"{path}[0]") else 2
        return self.resolve(args[chosen], f"{path}[{chosen}]", _at(args, chosen, at))

    def join(self, args: Any, path: str, at: str) -> str:
        delimiter, items = _list_args("Fn::Join", args, at, path, (2,), "[delimiter, [values]]")
        if not isinstance(delimiter, str):
            raise problem(at, path, "Fn::Join's delimiter must be a string")
        return delimiter.join(
            self._strings(items, f"{path}[1]", _at(args, 1, at), "Fn::Join's list")
        )

    def split(self, args: Any, path: str, at: str) -> list[str]:
        delimiter, source = _list_args("Fn::Split", args, at, path, (2,), "[delimiter, string]")
        if not isinstance(delimiter, str) or not delimiter:
            raise problem(at, path, "Fn::Split's delimiter must be a non-empty string")
        text = self._string(source, f"{path}[1]", _at(args, 1, at), "Fn::Split's source")
        return text.split(delimiter)

    def select(self, args: Any, path: str, at: str) -> Any:
        index, items = _list_args("Fn::Select", args, at, path, (2,), "[index, [values]]")
        text = self._string(index, f"{path}[0]", _at(args, 0, at), "Fn::Select's index")
        if not text.isdigit():
            raise problem(at, path, f"Fn::Select's index must be a whole number, not {text!r}")
        values = self.resolve(items, f"{path}[1]", _at(args, 1, at))
        if not isinstance(values, list):
            raise problem(at, path, f"Fn::Select needs a list to pick from, got a {_kind(values)}")
        if int(text) >= len(values):
            raise problem(
                at,
                path,
                f"Fn::Select index {text} is out of range: the list has "
                f"{len(values)} item{'s' if len(values) != 1 else ''}",
            )
        return values[int(text)]

    def base64(self, args: Any, path: str, at: str) -> str:
        text = self._string(args, path, at, "Fn::Base64's argument")
        return base64.b64encode(text.encode()).decode()

    def get_azs(self, args: Any, path: str, at: str) -> list[str]:
        region = self._string(args, path, at, "Fn::GetAZs's region") or self.pseudo.region
        return [f"{region}{zone}" for zone in "abc"]

    def length(self, args: Any, path: str, at: str) -> int:
        values = self.resolve(args, path, at)
        if not isinstance(values, list):
            raise problem(at, path, f"Fn::Length takes a list, not a {_kind(values)}")
        return len(values)

    def to_json_string(self, args: Any, path: str, at: str) -> str:
        value = self.resolve(args, path, at)
        if not isinstance(value, dict | list):
            raise problem(at, path, "Fn::ToJsonString takes a mapping or a list")
        return json.dumps(value, separators=(",", ":"))


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return [scalar_text(v) for v in value]
    return scalar_text(value) if scalar_text(value) is not None else value


_HANDLERS: dict[str, Callable[[Evaluator, Any, str, str], Any]] = {
    "Ref": Evaluator.ref,
    "Fn::GetAtt": Evaluator.get_att,
    "Fn::Sub": Evaluator.sub,
    "Fn::FindInMap": Evaluator.find_in_map,
    "Fn::If": Evaluator.if_,
    "Fn::Join": Evaluator.join,
    "Fn::Split": Evaluator.split,
    "Fn::Select": Evaluator.select,
    "Fn::Base64": Evaluator.base64,
    "Fn::GetAZs": Evaluator.get_azs,
    "Fn::Length": Evaluator.length,
    "Fn::ToJsonString": Evaluator.to_json_string,
}
