"""What a decoded request becomes before prediction, and how requests are merged.

A request is decoded once into a :class:`Prepared`. The batcher merges prepared requests that
have the same ``merge_key`` (same columns, same dtypes, same params) and splits the model's
output back by row counts. numpy and pandas are imported where used, not at import (see
pier.serving.codecs: the server binds before they load).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Prepared:
    """A request ready for predict.

    ``columns`` is set on the fast path: one Python list per signature column, already checked
    against the signature, in signature order. ``frame`` is set on the plain path: whatever
    MLflow's own parser produced, to be passed through MLflow's full schema enforcement.
    """

    n_rows: int
    merge_key: tuple[Any, ...] | None  # None: never merged with another request
    params: dict[str, Any] | None = None
    columns: dict[str, list[Any]] | None = None
    frame: Any = None
    unwrap: bool = False  # MLflow's unified LLM input: answer without the "predictions" wrapper


def merge(items: list[Prepared]) -> Prepared:
    """One Prepared holding the rows of ``items`` in order (items share a merge_key)."""
    first = items[0]
    if len(items) == 1:
        return first
    total = sum(item.n_rows for item in items)
    if first.columns is not None:
        columns: dict[str, list[Any]] = {name: [] for name in first.columns}
        for item in items:
            assert item.columns is not None
            for name, values in item.columns.items():
                columns[name].extend(values)
        return Prepared(total, first.merge_key, first.params, columns=columns)
    import pandas as pd

    frame = pd.concat([item.frame for item in items], ignore_index=True)
    return Prepared(total, first.merge_key, first.params, frame=frame)


def split(output: Any, sizes: list[int]) -> list[Any] | None:
    """Cut a merged prediction back into per-request parts, or None if it cannot be cut.

    Only outputs with one entry per input row can be cut; anything else (a scalar, a dict of
    arrays, a list of another length) makes the batcher predict each request on its own.
    """
    import numpy as np
    import pandas as pd

    total = sum(sizes)
    cut: Any = output
    if isinstance(output, np.ndarray):
        if output.ndim == 0 or output.shape[0] != total:
            return None
    elif isinstance(output, pd.DataFrame | pd.Series | list):
        if len(output) != total:
            return None
    else:
        return None
    parts: list[Any] = []
    start = 0
    for size in sizes:
        if isinstance(cut, pd.DataFrame | pd.Series):
            part: Any = cut.iloc[start : start + size]
            part.index = pd.RangeIndex(size)
        else:
            part = cut[start : start + size]
        parts.append(part)
        start += size
    return parts
