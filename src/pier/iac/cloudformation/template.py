"""A CloudFormation template's sections, and its Parameters with CloudFormation's constraints.

`parse` checks the structure (known sections and resource attributes, every parameter, mapping
and resource well formed) and `parameter_values` turns `--parameter K=V` plus the Defaults into
the values `Ref` gives: strings for String and Number (CloudFormation hands a Number parameter
to the template as a string too), lists of strings for CommaDelimitedList and `List<...>`.
Every problem is a `TemplateError` whose message starts with `file:line: Section.Name:`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pier.errors import PierError
from pier.iac.cloudformation.serverless import (
    SAM_ATTRIBUTES,
    SERVERLESS_TRANSFORM,
    Implicit,
    implicit_resources,
    is_serverless,
)
from pier.iac.source import Duplicate, Located, LocatedList, where

SECTIONS = frozenset(
    {
        *("AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Rules"),
        *("Mappings", "Conditions", "Transform", "Resources", "Outputs"),
        "Globals",  # SAM's, with its transform only
    }
)
RESOURCE_ATTRIBUTES = frozenset(
    {
        *("Type", "Properties", "DependsOn", "Condition", "Metadata", "DeletionPolicy"),
        *("UpdateReplacePolicy", "CreationPolicy", "UpdatePolicy"),
    }
)
PARAMETER_KEYS = frozenset(
    {
        *("Type", "Default", "AllowedValues", "AllowedPattern", "MinLength", "MaxLength"),
        *("MinValue", "MaxValue", "NoEcho", "Description", "ConstraintDescription"),
    }
)
SERVERLESS = SERVERLESS_TRANSFORM
#: Fn::Length, Fn::ToJsonString (evaluated here) and Fn::ForEach (refused, named).
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
LOGICAL_ID = re.compile(r"[A-Za-z0-9]+")
# AWS's types, registry types of any publisher (`Org::Service::Resource`, modules with
# `::MODULE`) and custom resources (`Custom::Name`, letters, digits, _ @ -).
RESOURCE_TYPE = re.compile(
    r"[A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+(::MODULE)?|Custom::[A-Za-z0-9_@-]{1,60}"
    r"|AWS::CloudFormation::CustomResource"
)
_LIST_TYPE = re.compile(r"List<(.+)>")
MASK = "****"


class TemplateError(PierError):
    """The template (or a value given for it) cannot be applied: `file:line: path: problem`."""

    status = 400
    code = "ValidationError"


def problem(at: str, path: str, text: str) -> TemplateError:
    return TemplateError(f"{at}: {path}: {text}")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    node: Located
    at: str  # file:line of its name
    default: str | None = None
    allowed_values: tuple[str, ...] = ()
    allowed_pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    no_echo: bool = False
    constraint_description: str | None = None

    @property
    def is_list(self) -> bool:
        return self.type == "CommaDelimitedList" or self.type.startswith("List<")

    @property
    def is_number(self) -> bool:
        return self.type in ("Number", "List<Number>")

    @property
    def is_ssm(self) -> bool:
        """Its value is read from AWS Systems Manager Parameter Store (the Default names the
        SSM parameter): pier has it only when given with --parameter."""
        return self.type.startswith("AWS::SSM::")


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    node: Located
    properties: Located
    at: str  # file:line of its logical ID
    depends_on: tuple[str, ...] = ()
    condition: str | None = None


@dataclass
class Template:
    file: str
    parameters: dict[str, Parameter]
    mappings: Located
    conditions: Located
    resources: dict[str, Resource]
    outputs: Located
    notes: list[str] = field(default_factory=list)
    description: str | None = None
    implicit: dict[str, Implicit] = field(default_factory=dict)  # what SAM would add
    duplicates: list[Duplicate] = field(default_factory=list)  # inside resources: decided later


def scalar_text(value: Any) -> str | None:
    """A YAML scalar as CloudFormation reads it: `true` is "true", `1` is "1"; None if not a
    scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _empty(file: str) -> Located:
    out = Located()
    out.file = file
    return out


def _section(doc: Located, name: str) -> Located:
    value = doc.get(name)
    if value is None:
        return _empty(doc.file)
    if not isinstance(value, Located):
        raise problem(where(doc, name), name, "must be a mapping")
    return value


def parse(doc: Any, file: str, duplicates: list[Duplicate] | None = None) -> Template:
    """The template's sections, checked for shape (not yet evaluated). `duplicates` (keys
    given twice, read leniently) are refused, except inside a resource: whether that one
    runs decides (pier.iac.cloudformation.stack)."""
    if not isinstance(doc, Located):
        raise TemplateError(f"{file}: a template is a mapping of sections (Resources, ...)")
    inside_resources = []
    for duplicate in duplicates or []:
        if len(duplicate.path) < 2 or duplicate.path[0] != "Resources":
            raise TemplateError(duplicate.message)
        inside_resources.append(duplicate)
    for key in doc:
        if key not in SECTIONS:
            raise problem(
                where(doc, key),
                key,
                f"unknown template section (known: {', '.join(sorted(SECTIONS))})",
            )
    template = Template(
        file=file,
        parameters={},
        mappings=_section(doc, "Mappings"),
        conditions=_section(doc, "Conditions"),
        resources={},
        outputs=_section(doc, "Outputs"),
        description=doc.get("Description") if isinstance(doc.get("Description"), str) else None,
        duplicates=inside_resources,
    )
    _check_transform(doc, template)
    for name, node in _section(doc, "Parameters").items():
        template.parameters[name] = _parameter(doc["Parameters"], name, node)
    _check_mappings(template.mappings)
    for name in template.conditions:
        if not LOGICAL_ID.fullmatch(name):
            raise problem(
                where(template.conditions, name),
                f"Conditions.{name}",
                "a condition name must be alphanumeric",
            )
    resources = doc.get("Resources")
    if not isinstance(resources, Located) or not resources:
        raise TemplateError(
            f"{where(doc, 'Resources')}: Resources: the template must declare at least one resource"
        )
    for logical_id, node in resources.items():
        if logical_id in template.parameters:
            raise problem(
                where(resources, logical_id),
                f"Resources.{logical_id}",
                "a resource and a parameter share this name",
            )
        template.resources[logical_id] = _resource(resources, logical_id, node, template)
    if is_serverless(doc.get("Transform")):
        globals_ = doc.get("Globals")
        template.implicit = implicit_resources(
            resources, globals_ if isinstance(globals_, Located) else None
        )
    for name, output in template.outputs.items():
        path = f"Outputs.{name}"
        if not isinstance(output, Located) or "Value" not in output:
            raise problem(where(template.outputs, name), path, "an output needs a Value")
        condition = output.get("Condition")
        if condition is not None and condition not in template.conditions:
            raise problem(
                where(output, "Condition"),
                f"{path}.Condition",
                f"no condition named {condition!r} in Conditions",
            )
    return template


def _check_transform(doc: Located, template: Template) -> None:
    transform = doc.get("Transform")
    if transform is None:
        if "Globals" in doc:
            raise problem(
                where(doc, "Globals"),
                "Globals",
                f"Globals is a section of SAM templates: it needs Transform: {SERVERLESS}",
            )
        return
    names = transform if isinstance(transform, list) else [transform]
    for name in names:
        if name not in (SERVERLESS, LANGUAGE_EXTENSIONS):
            raise problem(
                where(doc, "Transform"),
                "Transform",
                f"pier cannot run the transform {name!r} (it rewrites the template "
                f"on AWS's side); {SERVERLESS} and {LANGUAGE_EXTENSIONS} are accepted",
            )
    if SERVERLESS in names:
        template.notes.append(
            f"Transform {SERVERLESS}: its AWS::Serverless::* resources, and those SAM would "
            "add for them, are skipped"
        )
    for section in ("Resources", "Outputs", "Conditions"):
        node = doc.get(section)
        for key in node if isinstance(node, Located) else ():
            if key.startswith("Fn::ForEach::"):
                raise problem(
                    where(node, key),
                    f"{section}.{key}",
                    f"pier cannot run Fn::ForEach ({LANGUAGE_EXTENSIONS}) yet: write the "
                    "resources it would make out",
                )


def _text(node: Located, key: str, path: str) -> str | None:
    value = node.get(key)
    if value is None:
        return None
    text = scalar_text(value)
    if text is None:
        raise problem(where(node, key), f"{path}.{key}", "must be a single value")
    return text


def _number(node: Located, key: str, path: str, integer: bool = False) -> Any:
    text = _text(node, key, path)
    if text is None:
        return None
    try:
        return int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise problem(where(node, key), f"{path}.{key}", f"must be {kind}") from None


def _parameter(section: Located, name: str, node: Any) -> Parameter:
    path = f"Parameters.{name}"
    at = where(section, name)
    if not LOGICAL_ID.fullmatch(name):
        raise problem(at, path, "a parameter name must be alphanumeric")
    if not isinstance(node, Located):
        raise problem(at, path, "must be a mapping with at least a Type")
    for key in node:
        if key not in PARAMETER_KEYS:
            raise problem(where(node, key), f"{path}.{key}", "unknown parameter attribute")
    kind = _text(node, "Type", path)
    if kind is None:
        raise problem(at, path, "Type is required (String, Number, CommaDelimitedList, ...)")
    known = kind in ("String", "Number", "CommaDelimitedList") or kind.startswith("AWS::")
    if not known and not _LIST_TYPE.fullmatch(kind):
        raise problem(where(node, "Type"), f"{path}.Type", f"unknown parameter type {kind!r}")
    allowed = node.get("AllowedValues")
    if allowed is not None and not isinstance(allowed, list):
        raise problem(where(node, "AllowedValues"), f"{path}.AllowedValues", "must be a list")
    values: list[str] = []
    for i, item in enumerate(allowed or []):
        text = scalar_text(item)
        if text is None:
            raise problem(where(allowed, i), f"{path}.AllowedValues[{i}]", "must be a value")
        values.append(text)
    default = node.get("Default")
    if isinstance(default, list):  # cfn-lint accepts a list for a list parameter's Default
        default = ",".join(str(scalar_text(v)) for v in default)
    elif default is not None:
        default = _text(node, "Default", path)
    pattern = _text(node, "AllowedPattern", path)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise problem(
                where(node, "AllowedPattern"),
                f"{path}.AllowedPattern",
                f"not a valid regular expression ({exc})",
            ) from None
    no_echo = _text(node, "NoEcho", path)
    return Parameter(
        name=name,
        type=kind,
        node=node,
        at=at,
        default=default,
        allowed_values=tuple(values),
        allowed_pattern=pattern,
        min_length=_number(node, "MinLength", path, integer=True),
        max_length=_number(node, "MaxLength", path, integer=True),
        min_value=_number(node, "MinValue", path),
        max_value=_number(node, "MaxValue", path),
        no_echo=no_echo is not None and no_echo.lower() == "true",
        constraint_description=_text(node, "ConstraintDescription", path),
    )


def _check_mappings(mappings: Located) -> None:
    for name, top in mappings.items():
        path = f"Mappings.{name}"
        if not isinstance(top, Located) or not top:
            raise problem(where(mappings, name), path, "a mapping maps keys to mappings of values")
        for key, second in top.items():
            if not isinstance(second, Located) or not second:
                raise problem(
                    where(top, key), f"{path}.{key}", "must be a mapping of names to values"
                )
            for attr, value in second.items():
                if scalar_text(value) is None and not isinstance(value, LocatedList):
                    raise problem(
                        where(second, attr),
                        f"{path}.{key}.{attr}",
                        "must be a value or a list of values",
                    )


def _resource(section: Located, logical_id: str, node: Any, template: Template) -> Resource:
    path = f"Resources.{logical_id}"
    at = where(section, logical_id)
    if not LOGICAL_ID.fullmatch(logical_id):
        raise problem(at, path, "a logical ID must be alphanumeric (A-Za-z0-9)")
    if not isinstance(node, Located):
        raise problem(at, path, "a resource is a mapping with a Type")
    kind = node.get("Type")
    sam = isinstance(kind, str) and kind.startswith("AWS::Serverless::")
    for key in node:
        if key not in RESOURCE_ATTRIBUTES and not (sam and key in SAM_ATTRIBUTES):
            raise problem(where(node, key), f"{path}.{key}", "unknown resource attribute")
    if not isinstance(kind, str) or not RESOURCE_TYPE.fullmatch(kind):
        raise problem(
            where(node, "Type"),
            f"{path}.Type",
            f"{kind!r} is not a resource type (AWS::Service::Resource)"
            if kind is not None
            else "Type is required",
        )
    properties = node.get("Properties")
    if properties is None:
        properties = _empty(node.file)
        properties.line = node.line
    elif not isinstance(properties, Located):
        raise problem(where(node, "Properties"), f"{path}.Properties", "must be a mapping")
    depends = node.get("DependsOn")
    names = [depends] if isinstance(depends, str) else depends
    if depends is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) for n in names)
    ):
        raise problem(
            where(node, "DependsOn"), f"{path}.DependsOn", "must be a logical ID or a list of them"
        )
    condition = node.get("Condition")
    if condition is not None and condition not in template.conditions:
        raise problem(
            where(node, "Condition"),
            f"{path}.Condition",
            f"no condition named {condition!r} in Conditions",
        )
    return Resource(logical_id, kind, node, properties, at, tuple(names or ()), condition)


# ------------------------------------------------------------------------------ parameters


def parameter_values(template: Template, given: Mapping[str, str]) -> dict[str, str | list[str]]:
    """What `Ref` gives for each parameter: the value given, else the Default, checked
    against the parameter's constraints. A NoEcho value never appears in a message."""
    unknown = sorted(set(given) - set(template.parameters))
    if unknown:
        declared = ", ".join(template.parameters) or "none"
        raise TemplateError(
            f"{template.file}: Parameters: {', '.join(unknown)} "
            f"{'is' if len(unknown) == 1 else 'are'} not declared in the "
            f"template (declared: {declared})"
        )
    missing = [
        name for name, p in template.parameters.items() if name not in given and p.default is None
    ]
    if missing:
        first = template.parameters[missing[0]]
        raise TemplateError(
            f"{first.at}: Parameters: {', '.join(missing)} must have "
            "values (no Default; pass --parameter NAME=VALUE)"
        )
    values: dict[str, str | list[str]] = {}
    for name, p in template.parameters.items():
        if p.is_ssm:  # the value given is the SSM parameter's value; none: it stays unread
            if name in given:
                values[name] = given[name].split(",") if "List<" in p.type else given[name]
            continue
        text = given.get(name, p.default)
        assert text is not None  # missing ones were reported above
        values[name] = _checked(p, text)
    return values


def _checked(p: Parameter, text: str) -> str | list[str]:
    at, path = p.at, f"Parameters.{p.name}"
    shown = MASK if p.no_echo else repr(text)
    items = text.split(",") if p.is_list else [text]
    if p.is_list and text == "":
        items = []
    for item in items:
        value = MASK if p.no_echo else repr(item)
        if p.is_number:
            try:
                number = float(item)
            except ValueError:
                raise problem(at, path, f"{value} is not a number") from None
            if p.min_value is not None and number < p.min_value:
                raise problem(at, path, _why(p, f"{value} is less than MinValue {p.min_value:g}"))
            if p.max_value is not None and number > p.max_value:
                raise problem(
                    at, path, _why(p, f"{value} is greater than MaxValue {p.max_value:g}")
                )
        if p.allowed_values and item not in p.allowed_values:
            listed = ", ".join(p.allowed_values)
            raise problem(at, path, _why(p, f"{value} is not one of the AllowedValues ({listed})"))
    if not p.is_list:
        if p.min_length is not None and len(text) < p.min_length:
            raise problem(at, path, _why(p, f"{shown} is shorter than MinLength {p.min_length}"))
        if p.max_length is not None and len(text) > p.max_length:
            raise problem(at, path, _why(p, f"{shown} is longer than MaxLength {p.max_length}"))
        if p.allowed_pattern is not None and re.fullmatch(p.allowed_pattern, text) is None:
            raise problem(
                at, path, _why(p, f"{shown} does not match AllowedPattern {p.allowed_pattern}")
            )
    return items if p.is_list else text


def _why(p: Parameter, text: str) -> str:
    return f"{text}: {p.constraint_description}" if p.constraint_description else text
