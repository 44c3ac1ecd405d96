"""Pydantic's validation errors as `file:line: field.path: message`, for deploy files.

A document read by `pier.iac.source` knows the line of every key and list item; pydantic's
error locations (`("variants", 1, "weight")`) are walked through it to the deepest part that
exists, so an unknown key names its own line, a wrong value the line of its key, and a missing
field the first line of the mapping that lacks it. Messages are reworded for people editing
YAML (`must be a whole number, not 1.5`; `unknown field 'wieght'; did you mean 'weight'?`).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from pier.iac.source import Located, LocatedList, where

__all__ = ["MAX_REPORTED_ERRORS", "describe", "locate", "report", "shown"]

MAX_REPORTED_ERRORS = 10


def report(doc: Any, errors: list[ErrorDetails], root: type[BaseModel]) -> str:
    """One `file:line: field.path: message` line per error, in line order, at most
    MAX_REPORTED_ERRORS of them; `root` is the model `doc` was validated as."""
    found = []
    for e in errors:
        place, path = locate(doc, e["loc"])
        found.append((_line_of(place), f"{place}: {path or '(top)'}: {_message(e, root)}"))
    found.sort(key=lambda pair: pair[0])  # stable: equal lines keep pydantic's order
    lines = [text for _, text in found[:MAX_REPORTED_ERRORS]]
    if len(found) > MAX_REPORTED_ERRORS:
        lines.append(f"... and {len(found) - MAX_REPORTED_ERRORS} more")
    return "\n".join(lines)


def _line_of(place: str) -> int:
    tail = place.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def locate(doc: Any, loc: Sequence[str | int]) -> tuple[str, str]:
    """("file:line", "variants[1].weight") for a pydantic location: the line of the deepest key
    or item that exists in the document (a missing field: its mapping's first line)."""
    node, container = doc, doc
    key: str | int | None = None
    found = True
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and part.startswith("["):
            continue  # pydantic's own markers ('[key]'): not a field
        in_mapping = isinstance(node, Located) and isinstance(part, str) and part in node
        in_list = isinstance(node, LocatedList) and isinstance(part, int) and part < len(node)
        if found and (in_mapping or in_list):
            container, key, node = node, part, node[part]
        elif found:  # a missing field: the line of the mapping that lacks it
            container, key, found = node, None, False
        parts.append(part)
    return where(container, key), shown(parts)


def shown(path: Sequence[str | int]) -> str:
    """`variants[1].weight` for ("variants", 1, "weight")."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
}


def _message(e: ErrorDetails, root: type[BaseModel]) -> str:
    kind, value = e["type"], e.get("input")
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return _unknown_field(e["loc"], root)
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, not {describe(value)}"
    if kind == "value_error":
        return str(e.get("ctx", {}).get("error", e["msg"]))
    ctx = e.get("ctx", {})
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '')}, not {describe(value)}"
    if kind == "too_short":
        return f"needs at least {_items(ctx.get('min_length', 1))}"
    if kind == "too_long":
        return f"takes at most {_items(ctx.get('max_length', 0))}, not {ctx.get('actual_length')}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else e["msg"]
    if kind == "string_too_long":
        return f"takes at most {ctx.get('max_length')} characters, not {len(str(value))}"
    msg = e["msg"]  # the numeric bounds: "Input should be greater than or equal to 1"
    msg = msg.replace("Input should", "must").replace("Input", "the value")
    return f"{msg}, not {describe(value)}"


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def describe(value: Any) -> str:
    """A value as an error message shows it: `'90'`, `1.5`, `a list`."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return repr(value)


def _unknown_field(loc: tuple[str | int, ...], root: type[BaseModel]) -> str:
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, str) and model is not None and part in model.model_fields:
            model = _model_in(model.model_fields[part].annotation)
    name = str(loc[-1])
    fields = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(name, fields, n=1) or [
        f for f in fields if f.startswith(name) or name.startswith(f)
    ]
    hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(fields)}"
    return f"unknown field {name!r}{hint}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside `X`, `list[X]`, `X | None` or `Annotated[...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found: type[BaseModel] | None = _model_in(arg)
            if found is not None:
                return found
    return None
