"""The fast path's view of a model signature: named columns with simple scalar types.

MLflow's own schema enforcement costs about a millisecond per call. For the common case (a
signature of named scalar columns, JSON dataframe_split / dataframe_records payloads whose values
already have the column's type) the decision is simple enough to take in pure Python, per value,
without building a DataFrame per request. Anything this module is not sure about is *declined*
(``None``) and goes to MLflow's plain path, so MLflow keeps deciding every error and every
unusual cast. tests/serving/test_fast_path.py proves the two paths build equal model inputs.
numpy and pandas are imported where a frame is built, not at import (see pier.serving.codecs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_MAX_EXACT_INT_IN_DOUBLE = 2**53
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _is_double(v: Any) -> bool:
    t = type(v)
    return t is float or (t is int and -_MAX_EXACT_INT_IN_DOUBLE <= v <= _MAX_EXACT_INT_IN_DOUBLE)


def _is_long(v: Any) -> bool:
    return type(v) is int and _INT64_MIN <= v <= _INT64_MAX


def _is_bool(v: Any) -> bool:
    return type(v) is bool


def _is_str(v: Any) -> bool:
    return type(v) is str


# MLflow DataType name -> (value check, numpy dtype of the column MLflow hands to the model)
_TYPES: dict[str, tuple[Callable[[Any], bool], str | None]] = {
    "double": (_is_double, "float64"),
    "long": (_is_long, "int64"),
    "boolean": (_is_bool, "bool"),
    "string": (_is_str, None),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str


class FastSchema:
    """Signature columns the fast path can check on its own, or None if it cannot."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        self.names = tuple(c.name for c in columns)
        self._checks = [(c.name, _TYPES[c.type][0]) for c in columns]
        dtypes = {_TYPES[c.type][1] for c in columns}
        only = next(iter(dtypes)) if len(dtypes) == 1 else None
        self._uniform_dtype = only if only is not None and only != "bool" else None

    @classmethod
    def from_signature(cls, spec: list[dict[str, Any]] | None) -> FastSchema | None:
        """Build from the signature's input spec (MLflow's ``Schema.to_dict()`` form)."""
        if not spec:
            return None
        columns = []
        for item in spec:
            name, type_ = item.get("name"), item.get("type")
            if not isinstance(name, str) or type_ not in _TYPES:
                return None  # tensors, unnamed columns, arrays, objects, dates...
            if item.get("required", True) is not True:
                return None  # optional columns: MLflow's rules for absent ones are subtle
            columns.append(Column(name, type_))
        if len(set(c.name for c in columns)) != len(columns):
            return None
        return cls(columns)

    def check_split(self, split: Any) -> dict[str, list[Any]] | None:
        """Columns of a ``dataframe_split`` object, or None to decline."""
        if type(split) is not dict or split.keys() != {"columns", "data"}:
            return None
        names, rows = split["columns"], split["data"]
        if type(names) is not list or type(rows) is not list or not rows:
            return None
        width = len(names)
        positions: dict[str, int] = {}
        for i, name in enumerate(names):
            if type(name) is not str or name in positions:
                return None
            positions[name] = i
        for row in rows:
            if type(row) is not list or len(row) != width:
                return None
        out: dict[str, list[Any]] = {}
        for name, check in self._checks:
            position = positions.get(name)
            if position is None:
                return None
            values = [row[position] for row in rows]
            if not all(map(check, values)):
                return None
            out[name] = values
        return out

    def check_records(self, records: Any) -> dict[str, list[Any]] | None:
        """Columns of a ``dataframe_records`` list, or None to decline."""
        if type(records) is not list or not records:
            return None
        for record in records:
            if type(record) is not dict:
                return None
        out: dict[str, list[Any]] = {}
        for name, check in self._checks:
            try:
                values = [record[name] for record in records]
            except KeyError:
                return None
            if not all(map(check, values)):
                return None
            out[name] = values
        return out

    def frame(self, columns: dict[str, list[Any]]) -> pd.DataFrame:
        """The DataFrame MLflow's enforcement would hand to the model for these columns."""
        import numpy as np
        import pandas as pd

        if self._uniform_dtype is not None:
            # One 2-D block, as pandas builds from row lists: a frame of one block per column
            # makes scikit-learn's input conversion ~1.5 ms slower per call (measured).
            block = np.array([columns[n] for n in self.names], dtype=self._uniform_dtype)
            return pd.DataFrame(block.T, columns=list(self.names), copy=False)
        data: dict[str, Any] = {}
        for col in self.columns:
            dtype = _TYPES[col.type][1]
            values = columns[col.name]
            if dtype is None:
                data[col.name] = pd.array(values, dtype=object)
            else:
                data[col.name] = np.asarray(values, dtype=dtype)
        return pd.DataFrame(data, columns=list(self.names), copy=False)
