"""Reading deploy files: YAML or JSON with line numbers, duplicate keys refused.

Both the pier spec and CloudFormation templates are read here so that every error can name
the file, the line and the field. PyYAML's own loaders silently keep the last of two equal
keys and forget where a value came from, so the composed node tree is turned into values by
hand (a small walk; the scalars themselves are still built by PyYAML's SafeConstructor).

- Mappings become `Located` (a dict) and sequences `LocatedList` (a list); both know the line
  of the node and of each key / item, so `where(container, key)` gives "file:line".
- Timestamps stay strings (`AWSTemplateFormatVersion: 2010-09-09` is a string to CloudFormation).
- With `cfn_tags=True`, CloudFormation's short forms (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) become
  their long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, ...); otherwise any tag is an
  error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pier.errors import PierError


class SourceError(PierError):
    """A deploy file cannot be used: the message starts with `file:line:`."""

    status = 400
    code = "ValidationError"


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one mapping (read leniently: the later value is kept, as YAML
    parsers do); `path` is the keys leading to the mapping."""

    path: tuple[str | int, ...]
    message: str  # `file:line: duplicate key 'K' (first at line N); YAML keeps only one of them`


class Located(dict[str, Any]):
    """A mapping that remembers its source: `file`, `line` and each key's line."""

    file: str = "?"
    line: int = 0
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}


class LocatedList(list[Any]):
    """A sequence that remembers its source: `file`, `line` and each item's line."""

    file: str = "?"
    line: int = 0
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []


# CloudFormation's YAML short forms: tag → long form key.
CFN_TAGS = {
    "!Ref": "Ref",
    "!Condition": "Condition",
    **{
        f"!{name}": f"Fn::{name}"
        for name in [
            "Base64",
            "Cidr",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "ImportValue",
            "Join",
            "Select",
            "Split",
            "Sub",
            "Transform",
            "And",
            "Equals",
            "If",
            "Not",
            "Or",
            "Length",
            "ToJsonString",
        ]
    },
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def where(container: Any, key: str | int | None = None) -> str:
    """`file:line` of `container[key]` (or of the container itself), as well as it is known."""
    file = getattr(container, "file", "?")
    line = getattr(container, "line", 0)
    if isinstance(container, Located) and isinstance(key, str):
        line = container.key_lines.get(key, line)
    elif isinstance(container, LocatedList) and isinstance(key, int) and key < len(container):
        line = container.item_lines[key]
    return f"{file}:{line}" if line else file


def read(path: Path, *, cfn_tags: bool = False, duplicates: list[Duplicate] | None = None) -> Any:
    """Load a YAML or JSON file; SourceError names the file if it cannot be read. With a
    `duplicates` list, a key given twice is recorded there instead of refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read it ({exc})") from None
    return load(text, str(path), cfn_tags=cfn_tags, duplicates=duplicates)


def load(
    text: str, file: str, *, cfn_tags: bool = False, duplicates: list[Duplicate] | None = None
) -> Any:
    """Parse one YAML (or JSON) document into Located / LocatedList / scalars."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"{mark.line + 1}:" if mark is not None else ""
        raise SourceError(f"{file}:{line} not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SourceError(f"{file}: not valid YAML: {exc}") from None
    if not nodes or nodes[0] is None:
        raise SourceError(f"{file}: the file is empty")
    if len(nodes) > 1:
        raise SourceError(f"{file}: holds {len(nodes)} YAML documents; put one per file")
    return _Builder(file, cfn_tags, duplicates).value(nodes[0])


class _Builder:
    def __init__(self, file: str, cfn_tags: bool, duplicates: list[Duplicate] | None) -> None:
        self.file = file
        self.cfn_tags = cfn_tags
        self.duplicates = duplicates
        self.scalars = yaml.SafeLoader("")  # builds scalars the way yaml.safe_load does

    def value(self, node: yaml.Node, path: tuple[str | int, ...] = ()) -> Any:
        tag = node.tag
        if tag.startswith("!"):
            return self._tagged(node, path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            out = LocatedList()
            out.file, out.line = self.file, node.start_mark.line + 1
            for i, item in enumerate(node.value):
                out.append(self.value(item, (*path, i)))
                out.item_lines.append(item.start_mark.line + 1)
            return out
        if tag == _TIMESTAMP:
            return str(node.value)
        return self.scalars.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...]) -> Located:
        out = Located()
        out.file, out.line = self.file, node.start_mark.line + 1
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SourceError(f"{self.file}:{line}: YAML merge keys (<<) are not supported")
            if not isinstance(key_node, yaml.ScalarNode):
                raise SourceError(f"{self.file}:{line}: a key must be a plain string")
            key = str(key_node.value)
            if key in out:
                message = (
                    f"{self.file}:{line}: duplicate key {key!r} "
                    f"(first at line {out.key_lines[key]}); YAML keeps only one of them"
                )
                if self.duplicates is None:
                    raise SourceError(message)
                self.duplicates.append(Duplicate(path, message))
            out[key] = self.value(value_node, (*path, key))
            out.key_lines[key] = line
        return out

    def _tagged(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        line = node.start_mark.line + 1
        long_form = CFN_TAGS.get(node.tag) if self.cfn_tags else None
        if long_form is None:
            hint = "" if self.cfn_tags else " (CloudFormation tags belong in templates)"
            raise SourceError(f"{self.file}:{line}: unknown tag {node.tag}{hint}")
        if isinstance(node, yaml.ScalarNode):
            arg: Any = str(node.value)
            if long_form == "Fn::GetAtt":
                resource, dot, attribute = arg.partition(".")
                if not dot:
                    raise SourceError(
                        f"{self.file}:{line}: !GetAtt {arg!r} must be Resource.Attribute"
                    )
                arg = LocatedList([resource, attribute])
                arg.file, arg.line, arg.item_lines = self.file, line, [line, line]
        elif isinstance(node, yaml.SequenceNode):
            arg = self.value(yaml.SequenceNode("tag:yaml.org,2002:seq", node.value,
                                               node.start_mark, node.end_mark),
                             (*path, long_form))  # fmt: skip
        else:
            arg = self.value(yaml.MappingNode("tag:yaml.org,2002:map", node.value,
                                              node.start_mark, node.end_mark),
                             (*path, long_form))  # fmt: skip
        out = Located({long_form: arg})
        out.file, out.line, out.key_lines = self.file, line, {long_form: line}
        return out
