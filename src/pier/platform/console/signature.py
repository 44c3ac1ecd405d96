"""The invoke form of a model: its signature's columns and its input example.

MLflow writes both beside the model: the signature in `MLmodel` (`signature.inputs`, a JSON
list of `{"name", "type"}` for column-based models), the example as
`serving_input_example.json` (a request body) or `input_example.json`. A column-based model
gets one field per column and example row, typed by the signature; any other model (tensors,
no signature) gets a JSON body prefilled with the example. `body` turns the submitted fields
back into MLflow's `dataframe_split` request, refusing a value its column's type cannot hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pier.errors import ValidationException

_NUMBERS = {"double": float, "float": float, "long": int, "integer": int}
_SCALARS = {*_NUMBERS, "boolean", "string"}
MAX_ROWS = 20


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # MLflow's ColSpec type: double, float, long, integer, boolean, string

    @property
    def numeric(self) -> bool:
        return self.type in _NUMBERS


@dataclass(frozen=True)
class InvokeForm:
    """What the invoke page shows: typed columns and example rows, or a raw JSON body."""

    columns: list[Column] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    raw: str = ""  # the example as a request body (always set when an example exists)

    @property
    def tabular(self) -> bool:
        return bool(self.columns)


def read_form(model_dir: Path) -> InvokeForm:
    """The invoke form of the MLflow model in `model_dir` (an empty one without MLmodel)."""
    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return InvokeForm()
    inputs: list[dict[str, Any]] = []
    try:
        inputs = json.loads(((mlmodel.get("signature") or {}).get("inputs")) or "[]")
    except (TypeError, ValueError):
        inputs = []
    example = _example(model_dir)
    raw = json.dumps(example) if example is not None else ""
    columns = [
        Column(str(c["name"]), str(c["type"]))
        for c in inputs
        if isinstance(c, dict) and c.get("name") is not None and c.get("type") in _SCALARS
    ]
    if not columns or len(columns) != len(inputs):
        return InvokeForm(raw=raw)
    rows = _example_rows(example, [c.name for c in columns]) or [[""] * len(columns)]
    return InvokeForm(columns, rows[:MAX_ROWS], raw)


def _example(model_dir: Path) -> Any:
    for name in ("serving_input_example.json", "input_example.json"):
        try:
            data = json.loads((model_dir / name).read_text())
        except (OSError, ValueError):
            continue
        if name == "input_example.json" and isinstance(data, dict) and "columns" in data:
            data = {"dataframe_split": data}  # pandas' split orient, as MLflow saved it
        return data
    return None


def _example_rows(example: Any, names: list[str]) -> list[list[str]]:
    split = example.get("dataframe_split") if isinstance(example, dict) else None
    if not isinstance(split, dict):
        return []
    columns, data = split.get("columns") or [], split.get("data") or []
    if not isinstance(columns, list) or not isinstance(data, list):
        return []
    at = {str(c): i for i, c in enumerate(columns)}
    rows = []
    for row in data:
        if not isinstance(row, list):
            return []
        rows.append([_text(row[at[n]]) if n in at and at[n] < len(row) else "" for n in names])
    return rows


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def body(form: InvokeForm, fields: dict[str, str], rows: int) -> bytes:
    """The `dataframe_split` request for `rows` rows of submitted fields (named
    `r{row}c{column}`); ValidationException naming the first field that does not fit."""
    if not 1 <= rows <= MAX_ROWS:
        raise ValidationException(f"rows must be between 1 and {MAX_ROWS}, not {rows}.")
    data = []
    for r in range(rows):
        row: list[Any] = []
        for c, column in enumerate(form.columns):
            text = fields.get(f"r{r}c{c}", "").strip()
            row.append(_value(column, text, r))
        data.append(row)
    split = {"columns": [c.name for c in form.columns], "data": data}
    return json.dumps({"dataframe_split": split}).encode()


def _value(column: Column, text: str, row: int) -> Any:
    where = f"row {row + 1}, column {column.name} ({column.type})"
    if text == "":
        return None
    if column.type in _NUMBERS:
        try:
            return _NUMBERS[column.type](text)
        except ValueError:
            raise ValidationException(f"{where}: {text!r} is not a number of that type.") from None
    if column.type == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValidationException(f"{where}: {text!r} is neither true nor false.")
        return text.lower() == "true"
    return text


__all__ = ["Column", "InvokeForm", "body", "read_form"]
