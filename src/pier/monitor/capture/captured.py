"""Captured requests as rows: SageMaker's capture files of a time window, read into batches.

Data capture (:mod:`pier.monitor.capture.capture`, or SageMaker itself) writes JSON Lines under
``{destination}/{endpoint}/{variant}/yyyy/mm/dd/hh/*.jsonl``, a local directory or S3. This
module lists the hour directories a window ``[start, end)`` touches (every variant, through
:mod:`pier.storage`), keeps the
records whose ``eventMetadata.inferenceTime`` falls in it, and turns each record's
``captureData.endpointInput`` into rows:

- ``encoding`` ``CSV`` or ``JSON``: ``data`` is the body's text; ``BASE64``: the body's bytes,
  read as CSV or JSON when ``observedContentType`` says so (``text/csv``, ``*json*``).
- JSON bodies in MLflow's scoring formats: ``{"dataframe_split": {"columns", "data"}}``,
  ``{"dataframe_records": [...]}``, ``{"instances": [...]}``, ``{"inputs": [...] | {col: [...]}}``;
  also a bare list of records or rows, a single record, and JSON Lines.
- CSV bodies are headerless, as SageMaker's are: column i is the baseline's i-th feature
  (``_c{i}`` past the last one). A first line equal to the leading feature names is a header.
  Cells are typed as Deequ reads text: ``3`` Integral, ``3.5`` Fractional, empty missing.

Rows without a name for a position (a JSON list row, a CSV row) take the features' names in
order, so the window profiles with the baseline's columns. Batches are DataFrames of up to
``batch_rows`` rows whose columns keep their kind: only integers become a nullable ``Int64``
column, numbers ``float64``, anything else ``object``; they feed
:func:`pier.monitor.stats.profile.profile_frame` directly. What could not be read is counted by
reason in :class:`ReadStats`, never raised: one bad record does not fail a window.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any

import numpy as np
import orjson
import pandas as pd

from pier.storage import (
    Line,
    Location,
    S3ClientFactory,
    child,
    read_lines,
    s3_client,
    subdirectories,
)

DEFAULT_BATCH_ROWS = 10_000
_INTEGRAL = re.compile(r"^\s*[+-]?\d+\s*$")
_FRACTIONAL = re.compile(r"^\s*[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?\s*$")
_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class Unreadable(ValueError):
    """A record whose input cannot be read as rows; the message is the reason counted."""


@dataclass
class ReadStats:
    """What a window held: files, records in the window, rows, and what could not be read."""

    files: int = 0
    records: int = 0
    rows: int = 0
    unreadable: Counter[str] = field(default_factory=Counter)

    @property
    def unreadable_records(self) -> int:
        return sum(self.unreadable.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "rows": self.rows,
            "unreadable_records": self.unreadable_records,
            "unreadable": dict(self.unreadable.most_common(10)),
        }


# ------------------------------------------------------------------------------ files


def window_lines(
    destination: Location,
    endpoint: str,
    start: datetime,
    end: datetime,
    s3: S3ClientFactory = s3_client,
) -> Iterator[Line]:
    """Every line of ``endpoint``'s capture files (all variants) in the window's hours."""
    root = child(destination, endpoint)
    for variant in subdirectories(root, s3):
        yield from read_lines(child(root, variant), start.timestamp(), end.timestamp(), s3)


# ------------------------------------------------------------------------------ records


def _second(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def records_in_window(
    lines: Iterable[Line], start: datetime, end: datetime, stats: ReadStats
) -> Iterator[dict[str, Any]]:
    """Parsed records whose inferenceTime is in ``[start, end)`` (to the second)."""
    low, high = _second(start), _second(end)
    sources: set[str] = set()
    for line in lines:
        if line.source not in sources:
            sources.add(line.source)
            stats.files += 1
        try:
            record = orjson.loads(line.text)
        except orjson.JSONDecodeError:
            # A file being written (or cut by a crash) may end in half a line.
            stats.unreadable["a line that is not JSON"] += 1
            continue
        if not isinstance(record, dict):
            stats.unreadable["a line that is not a JSON object"] += 1
            continue
        when = str((record.get("eventMetadata") or {}).get("inferenceTime", ""))[:19]
        if when and not (low <= when < high):
            continue
        stats.records += 1
        yield record


def input_body(record: dict[str, Any]) -> tuple[str, str]:
    """(kind, text) of a record's endpointInput: kind is ``csv`` or ``json``."""
    payload = (record.get("captureData") or {}).get("endpointInput")
    if not isinstance(payload, dict):
        raise Unreadable("no endpointInput (the endpoint does not capture its input)")
    encoding = str(payload.get("encoding", "")).upper()
    content_type = str(payload.get("observedContentType", "")).split(";")[0].strip().lower()
    data = payload.get("data", "")
    if not isinstance(data, str):
        raise Unreadable("endpointInput.data is not a string")
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Unreadable(
                f"a BASE64 body of {content_type or 'no content type'} that is not UTF-8 text"
            ) from None
        if "csv" in content_type:
            return "csv", data
        if "json" in content_type:
            return "json", data
        raise Unreadable(f"content type {content_type or '(none)'} is not CSV or JSON")
    if encoding == "CSV":
        return "csv", data
    if encoding == "JSON":
        return "json", data
    raise Unreadable(f"unknown encoding {encoding or '(none)'}")


Rows = tuple[list[str], list[list[Any]]]  # column names, rows


def _positional(features: Sequence[str], width: int) -> list[str]:
    return [features[i] if i < len(features) else f"_c{i}" for i in range(width)]


def _from_records(records: list[Any], what: str) -> Rows:
    if not all(isinstance(r, dict) for r in records):
        raise Unreadable(f"{what} mixes records and other values")
    names = list(dict.fromkeys(k for r in records for k in r))
    return names, [[r.get(k) for k in names] for r in records]


def _from_list(items: list[Any], features: Sequence[str], what: str) -> Rows:
    """A list of records, of rows, or of scalars (one column)."""
    if not items:
        return [], []
    if isinstance(items[0], dict):
        return _from_records(items, what)
    if all(isinstance(i, list) for i in items):
        width = max(len(i) for i in items)
        if any(isinstance(v, list | dict) for i in items for v in i):
            raise Unreadable(f"{what} holds nested lists (tensors), not table rows")
        return _positional(features, width), items
    if any(isinstance(i, list | dict) for i in items):
        raise Unreadable(f"{what} mixes rows and other values")
    return _positional(features, 1), [[i] for i in items]


def json_rows(text: str, features: Sequence[str]) -> Rows:
    """Rows of a JSON body in one of MLflow's formats (or a bare list, a record, JSON Lines)."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise Unreadable("a JSON body that does not parse") from None
        try:
            items = [orjson.loads(line) for line in lines]
        except orjson.JSONDecodeError:
            raise Unreadable("a JSON body that does not parse") from None
        return _from_list(items, features, "a JSON Lines body")
    if isinstance(doc, list):
        return _from_list(doc, features, "a JSON list")
    if not isinstance(doc, dict):
        raise Unreadable("a JSON body that is neither an object nor a list")
    key = next((k for k in _MLFLOW_KEYS if k in doc), None)
    if key is None:
        if any(isinstance(v, list | dict) for v in doc.values()):
            raise Unreadable(
                "a JSON object without dataframe_split, dataframe_records, instances or inputs"
            )
        return _from_records([doc], "a JSON record")
    value = doc[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise Unreadable("dataframe_split without a data list")
        rows = value["data"]
        if not all(isinstance(r, list) for r in rows):
            rows = [[r] for r in rows]  # one column, written as a flat list
        width = max((len(r) for r in rows), default=0)
        names = value.get("columns")
        if not isinstance(names, list):
            names = _positional(features, width)
        names = [str(n) for n in names]
        if width > len(names):
            names += [f"_c{i}" for i in range(len(names), width)]
        return names, rows
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise Unreadable("dataframe_records that is not a list")
        return _from_records(value, "dataframe_records") if value else ([], [])
    if key == "inputs" and isinstance(value, dict):
        columns = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        if any(isinstance(x, list | dict) for v in columns.values() for x in v):
            raise Unreadable("inputs holds nested lists (tensors), not table columns")
        names = list(columns)
        height = max((len(v) for v in columns.values()), default=0)
        rows = [list(r) for r in zip_longest(*columns.values())][:height]
        return names, rows
    if not isinstance(value, list):
        raise Unreadable(f"{key} that is not a list")
    return _from_list(value, features, key)


def _cell(text: str) -> Any:
    if not text.strip():
        return None
    if _INTEGRAL.match(text):
        return int(text)
    if _FRACTIONAL.match(text):
        return float(text)
    return text


def csv_rows(text: str, features: Sequence[str]) -> Rows:
    """Rows of a headerless CSV body (a first line of the feature names is a header)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        return [], []
    first = [c.strip() for c in rows[0]]
    if features and first == list(features[: len(first)]):
        names, rows = first, rows[1:]
    else:
        names = _positional(features, max(len(r) for r in rows))
    width = max((len(r) for r in rows), default=0)
    if width > len(names):
        names = names + [f"_c{i}" for i in range(len(names), width)]
    return names, [[_cell(c) for c in r] for r in rows]


def record_rows(record: dict[str, Any], features: Sequence[str]) -> Rows:
    """The rows of one capture record's input."""
    kind, text = input_body(record)
    return csv_rows(text, features) if kind == "csv" else json_rows(text, features)


# ------------------------------------------------------------------------------ batches


class _Batch:
    """Columns being filled: names in order of appearance, values padded with None."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.rows = 0

    def add(self, names: list[str], rows: list[list[Any]]) -> None:
        if not rows:
            return
        seen: set[str] = set()
        for name, values in zip(names, zip_longest(*rows), strict=False):
            if name in seen:
                continue  # a repeated column name: the first one counts
            seen.add(name)
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = [None] * self.rows
            column.extend(values)
        self.rows += len(rows)
        for column in self.columns.values():
            if len(column) < self.rows:
                column.extend([None] * (self.rows - len(column)))

    def frame(self, features: Sequence[str]) -> pd.DataFrame:
        order = [f for f in features if f in self.columns]
        order += [c for c in self.columns if c not in set(order)]
        return pd.DataFrame({name: _column(self.columns[name]) for name in order})


def _column(values: list[Any]) -> Any:
    """Values as a column of their kind: Int64 for integers, float64 for numbers, else object."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(type(v) is int for v in present):
        return pd.array([None if v is None or v != v else v for v in values], dtype="Int64")
    if present and all(type(v) in (int, float) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return pd.Series(values, dtype=object).to_numpy()


def read_batches(
    records: Iterable[dict[str, Any]],
    features: Sequence[str],
    stats: ReadStats,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pd.DataFrame]:
    """DataFrames of the records' input rows, ``batch_rows`` rows at most (one record's rows
    are never split)."""
    batch = _Batch()
    for record in records:
        try:
            names, rows = record_rows(record, features)
        except Unreadable as exc:
            stats.unreadable[str(exc)] += 1
            continue
        batch.add(names, rows)
        stats.rows += len(rows)
        if batch.rows >= batch_rows:
            yield batch.frame(features)
            batch = _Batch()
    if batch.rows:
        yield batch.frame(features)


def read_window(
    target: Location,
    endpoint: str,
    start: datetime,
    end: datetime,
    features: Sequence[str],
    stats: ReadStats,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    s3: S3ClientFactory = s3_client,
) -> Iterator[pd.DataFrame]:
    """Batches of the rows ``endpoint`` received in ``[start, end)``, read from its captures."""
    lines = window_lines(target, endpoint, start, end, s3)
    records = records_in_window(lines, start, end, stats)
    yield from read_batches(records, features, stats, batch_rows)


__all__ = [
    "DEFAULT_BATCH_ROWS",
    "ReadStats",
    "Unreadable",
    "csv_rows",
    "input_body",
    "json_rows",
    "read_batches",
    "read_window",
    "record_rows",
    "records_in_window",
    "window_lines",
]
