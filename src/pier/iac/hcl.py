r"""A small HCL writer for the Terraform that `pier export` produces.

HCL is written here by hand rather than with a library: python-hcl2 (the one Python HCL
library) is a parser first, its writer's output and string escaping have changed between major
versions, and it would become a runtime dependency for some hundred lines. What needs care is
small and specified: strings are quoted with `\\ \" \n \r \t \uXXXX` escapes, and `${` / `%{`
(template interpolation and directives) are doubled to `$${` / `%%{`, so a value such as
"${var.x}" stays literal text. The layout is `terraform fmt`'s (two-space indents, the `=` of
consecutive one-line attributes aligned), so `terraform fmt -check` passes on the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Block", "Body", "Expr", "quote", "render"]


@dataclass(frozen=True)
class Expr:
    """An HCL expression written as is (`var.image`, `aws_sagemaker_model.a.name`)."""

    text: str


Body = list["tuple[str, Any] | Block"]


@dataclass(frozen=True)
class Block:
    """`kind "label" ... { body }`: the body is attributes (name, value) and nested blocks."""

    kind: str
    labels: tuple[str, ...]
    body: Body


def quote(value: str) -> str:
    """A quoted HCL string literal whose value is exactly `value`."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{text}"'


def _value(value: Any, indent: int) -> str:
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, indent) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = "  " * (indent + 1)
        keys = {k: _key(k) for k in value}
        width = max(len(k) for k in keys.values())
        lines = [f"{pad}{keys[k].ljust(width)} = {_value(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + "\n".join(lines) + "\n" + "  " * indent + "}"
    raise TypeError(f"no HCL form for {value!r}")


_IDENTIFIER = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _key(key: str) -> str:
    """An object key: bare when it is an identifier (`LOG_LEVEL`), else quoted (`"cost:center"`)."""
    bare = _IDENTIFIER.fullmatch(key) and key not in {"true", "false", "null"}
    return key if bare else quote(key)


def _lines(block: Block, indent: int = 0) -> list[str]:
    pad = "  " * indent
    labels = "".join(f" {quote(label)}" for label in block.labels)
    lines = [f"{pad}{block.kind}{labels} {{"]
    # `terraform fmt` aligns the `=` of attributes on consecutive lines; blocks and
    # multi-line values end a run
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(name) for name, _ in run), default=0)
        lines.extend(f"{pad}  {name.ljust(width)} = {text}" for name, text in run)
        run.clear()

    for item in block.body:
        if isinstance(item, Block):
            flush()
            lines.extend(_lines(item, indent + 1))
            continue
        name, value = item
        text = _value(value, indent + 1)
        if "\n" in text:  # stands alone, not aligned with its neighbours
            flush()
            run.append((name, text))
            flush()
        else:
            run.append((name, text))
    flush()
    lines.append(f"{pad}}}")
    return lines


def render(blocks: list[Block]) -> str:
    """Top-level blocks separated by blank lines, ending with a newline."""
    return "\n\n".join("\n".join(_lines(block)) for block in blocks) + "\n"
