"""Differential test: pier answers every request as `mlflow models serve` does.

Both servers run as real subprocesses on the same saved models (tests/serving/
differential_models.py); every payload of the corpus below goes to both, and the answers must
match: same status, and for 200 the same JSON (floats compared exactly, NaN equal to NaN, the
same key order). For errors pier must answer JSON ``{"error_code", "message"}`` without a stack
trace, with MLflow's error_code wherever MLflow answers JSON.

Where pier differs on purpose the case is listed in DELIBERATE_DIFFERENCES (with the reason)
and PIER_SIDE says what pier answers instead; MLflow's side of those cases is checked too, so
that an entry goes stale loudly if MLflow changes. Any other mismatch is a bug in pier.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.serving.differential_models import (
    BUILDERS,
    DIABETES_COLUMNS,
    build_all,
    classifier_frame,
    diabetes_frame,
    typed_frame,
)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 60.0
MAX_MESSAGE = 2000  # pier truncates longer error messages

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


# =========================================================================== the corpus


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    body: bytes
    content_type: str | None = JSON  # None: no Content-Type header at all
    accept: str | None = None  # None: httpx's default, */*


CASES: list[Case] = []


def add(
    model: str,
    name: str,
    body: bytes | str,
    content_type: str | None = JSON,
    accept: str | None = None,
) -> None:
    if isinstance(body, str):
        body = body.encode()
    CASES.append(Case(f"{model}/{name}", model, body, content_type, accept))


def add_json(model: str, name: str, doc: Any, content_type: str | None = JSON) -> None:
    add(model, name, json.dumps(doc), content_type)  # json.dumps writes NaN as the NaN literal


def split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"columns": list(frame.columns), "data": frame.to_numpy(dtype=object).tolist()}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(frame.columns, row, strict=True)) for row in split(frame)["data"]]


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    return frame.to_csv(index=False, header=header)


def parquet(frame: pd.DataFrame) -> bytes:
    return frame.to_parquet()


def _with(frame: pd.DataFrame, row: int, column: str, value: Any) -> dict[str, Any]:
    """dataframe_split of ``frame`` with one cell replaced (any JSON value)."""
    doc = split(frame)
    doc["data"][row][doc["columns"].index(column)] = value
    return doc


# ------------------------------------------------------------------------------ diabetes
D = "diabetes"
X = diabetes_frame()
x1, x5 = X.head(1), X.head(5)
x1000 = pd.concat([X, X, X]).head(1000).reset_index(drop=True)

add_json(D, "split-1-row", {"dataframe_split": split(x1)})
add_json(D, "split-5-rows", {"dataframe_split": split(x5)})
add_json(D, "split-1000-rows", {"dataframe_split": split(x1000)})
add_json(D, "split-with-index", {"dataframe_split": {**split(x5), "index": [7, 3, 9, 1, 0]}})
add_json(D, "split-columns-reordered", {"dataframe_split": split(x5[DIABETES_COLUMNS[::-1]])})
add_json(D, "split-extra-column", {"dataframe_split": split(x5.assign(extra=1.5))})
add_json(D, "split-extra-string-column", {"dataframe_split": split(x5.assign(extra="é"))})
add_json(D, "split-missing-column", {"dataframe_split": split(x5.drop(columns=["bmi"]))})
add_json(D, "split-ints-in-double-columns", {"dataframe_split": split(x5.round(0).astype(int))})
add_json(D, "split-one-int-cell", {"dataframe_split": _with(x5, 2, "age", 0)})
add_json(D, "split-nan-literal", {"dataframe_split": _with(x5, 1, "bmi", float("nan"))})
add_json(D, "split-null", {"dataframe_split": _with(x5, 1, "bmi", None)})
add_json(D, "split-all-null-column", {"dataframe_split": split(x5.assign(bmi=None))})
add_json(D, "split-text-in-double", {"dataframe_split": _with(x5, 0, "s1", "abc")})
add_json(D, "split-numeric-text-in-double", {"dataframe_split": _with(x5, 0, "s1", "0.5")})
add_json(D, "split-bool-in-double", {"dataframe_split": _with(x5, 0, "s1", True)})
add_json(D, "split-list-in-double", {"dataframe_split": _with(x5, 0, "s1", [1.0])})
add_json(D, "split-huge-int", {"dataframe_split": _with(x5, 0, "s1", 2**70)})
add_json(D, "split-empty-data", {"dataframe_split": {"columns": DIABETES_COLUMNS, "data": []}})
add_json(D, "split-no-columns", {"dataframe_split": {"data": split(x5)["data"]}})
add_json(D, "split-short-row", {"dataframe_split": {**split(x1), "data": [[0.1] * 9]}})
add_json(D, "split-not-an-object", {"dataframe_split": [1, 2, 3]})
add_json(D, "split-null-value", {"dataframe_split": None})
add_json(D, "records-1-row", {"dataframe_records": records(x1)})
add_json(D, "records-5-rows", {"dataframe_records": records(x5)})
add_json(D, "records-1000-rows", {"dataframe_records": records(x1000)})
add_json(D, "records-keys-reordered", {"dataframe_records": records(x5[DIABETES_COLUMNS[::-1]])})
add_json(D, "records-extra-key", {"dataframe_records": records(x5.assign(extra=0.0))})
add_json(D, "records-missing-key", {"dataframe_records": records(x5.drop(columns=["s6"]))})
add_json(
    D,
    "records-key-missing-in-one-record",
    {"dataframe_records": [*records(x1), {k: 0.01 for k in DIABETES_COLUMNS[:-1]}]},
)
add_json(D, "records-ints", {"dataframe_records": records(x5.round(0).astype(int))})
add_json(D, "records-nan-literal", {"dataframe_records": [{**records(x1)[0], "bp": math.nan}]})
add_json(D, "records-null", {"dataframe_records": [{**records(x1)[0], "bp": None}]})
add_json(D, "records-text-in-double", {"dataframe_records": [{**records(x1)[0], "bp": "x"}]})
add_json(D, "records-empty", {"dataframe_records": []})
add_json(D, "records-not-objects", {"dataframe_records": [[1, 2], [3, 4]]})
add_json(D, "instances-records", {"instances": records(x5)})
add_json(D, "instances-lists", {"instances": split(x5)["data"]})
add_json(D, "instances-empty", {"instances": []})
add_json(D, "inputs-columns", {"inputs": {c: X[c].head(5).tolist() for c in DIABETES_COLUMNS}})
add_json(D, "inputs-records", {"inputs": records(x5)})
add_json(D, "inputs-single-record", {"inputs": records(x1)[0]})
add_json(D, "inputs-scalar", {"inputs": 3})
add_json(D, "params-on-model-without-params", {"dataframe_split": split(x1), "params": {"a": 1}})
add_json(D, "params-not-an-object", {"dataframe_split": split(x1), "params": [1, 2]})
add_json(D, "params-null", {"dataframe_split": split(x1), "params": None})
add_json(D, "top-level-list", [records(x1)[0]])
add_json(D, "top-level-string", "dataframe_split")
add_json(D, "top-level-number", 1)
add_json(D, "top-level-null", None)
add_json(D, "empty-object", {})
add_json(D, "params-only", {"params": {"a": 1}})
add_json(D, "two-format-keys", {"dataframe_split": split(x1), "dataframe_records": records(x1)})
add_json(D, "unknown-key", {"data": split(x1)})
add_json(D, "format-key-plus-unknown-key", {"dataframe_split": split(x1), "extra": 1})
add_json(D, "unicode-column-name", {"dataframe_split": split(x1.assign(ünï="ç"))})
add(D, "malformed-json", '{"dataframe_split": {"columns": ["age"], "data": [[1.0]]')
add(D, "malformed-json-1000-rows", json.dumps({"dataframe_split": split(x1000)})[:-3])
add(D, "trailing-comma", '{"dataframe_records": [{"age": 1.0},]}')
add(D, "empty-body", b"")
add(D, "whitespace-body", b"  \n")
add(D, "not-utf8-json", b'{"dataframe_records": [{"age": "\xff\xfe"}]}')
add(D, "utf8-bom-json", b"\xef\xbb\xbf" + json.dumps({"dataframe_split": split(x1)}).encode())
add(D, "utf16-json", json.dumps({"dataframe_split": split(x1)}).encode("utf-16"))
add(D, "infinity-literal", json.dumps({"dataframe_split": _with(x1, 0, "age", math.inf)}))
add(
    D,
    "number-overflowing-double",
    json.dumps({"dataframe_split": split(x1)}).replace("0.03", "1e400", 1),
)
add_json(D, "int-above-2**53", {"dataframe_split": _with(x1, 0, "age", 2**53 + 1)})
add_json(D, "negative-zero", {"dataframe_split": _with(x1, 0, "age", -0.0)})
add(
    D,
    "duplicate-format-key",
    '{"dataframe_split": 1, "dataframe_split": ' + json.dumps(split(x1)) + "}",
)
add(
    D,
    "duplicate-record-key",
    json.dumps({"dataframe_records": records(x1)})[:-2] + ', "age": 0.5}]}',
)
add(D, "deeply-nested-json", '{"dataframe_split": ' + "[" * 100_000 + "]" * 100_000 + "}")
add_json(D, "llm-prompt-key", {"prompt": "hello"})
add_json(D, "llm-input-key-next-to-format-key", {"dataframe_split": split(x1), "input": 1})
# Content-Type headers
body_x5 = json.dumps({"dataframe_split": split(x5)})
add(D, "charset-utf-8", body_x5, "application/json; charset=utf-8")
add(D, "charset-UTF-8-no-space", body_x5, "application/json;charset=UTF-8")
add(D, "content-type-spaces", body_x5, "application/json ;  charset=utf-8")
add(D, "content-type-uppercase", body_x5, "Application/JSON")
add(D, "charset-latin-1", body_x5, "application/json; charset=latin-1")
add(D, "unknown-content-type-parameter", body_x5, "application/json; version=2")
add(D, "content-type-text-plain", body_x5, "text/plain")
add(D, "content-type-form", "a=1", "application/x-www-form-urlencoded")
add(D, "charset-quoted", body_x5, 'application/json; charset="utf-8"')
add(D, "csv-header-parameter", csv_text(x5), "text/csv; header=present")
add(D, "content-type-empty", body_x5, "")
add(D, "no-content-type", body_x5, None)
# Accept headers: MLflow ignores them and always answers JSON
add(D, "accept-json", body_x5, accept=JSON)
add(D, "accept-browser-like", body_x5, accept="text/html,application/xhtml+xml,*/*;q=0.8")
add(D, "accept-json-and-text", body_x5, accept="application/json, text/plain, */*")
add(D, "accept-text-plain", body_x5, accept="text/plain")
# CSV
add(D, "csv-1-row", csv_text(x1), CSV)
add(D, "csv-5-rows", csv_text(x5), CSV)
add(D, "csv-1000-rows", csv_text(x1000), CSV)
add(D, "csv-charset-utf-8", csv_text(x5), "text/csv; charset=utf-8")
add(D, "csv-columns-reordered", csv_text(x5[DIABETES_COLUMNS[::-1]]), CSV)
add(D, "csv-extra-column", csv_text(x5.assign(extra=2.5)), CSV)
add(D, "csv-missing-column", csv_text(x5.drop(columns=["age"])), CSV)
add(D, "csv-ints", csv_text(x5.round(0).astype(int)), CSV)
add(D, "csv-empty-cell", csv_text(x5.assign(bmi=[0.1, None, 0.2, None, 0.3])), CSV)
add(D, "csv-text-in-double", csv_text(x5.assign(bmi=["a", "b", "c", "d", "e"])), CSV)
add(D, "csv-header-only", ",".join(DIABETES_COLUMNS) + "\n", CSV)
add(D, "csv-crlf", csv_text(x5).replace("\n", "\r\n"), CSV)
add(D, "csv-quoted-header", csv_text(x5).replace("age", '"age"', 1), CSV)
add(D, "csv-headerless", csv_text(x5, header=False), CSV)
add(D, "csv-headerless-1-row", csv_text(x1, header=False), CSV)
add(D, "csv-headerless-wrong-width", csv_text(x5.iloc[:, :9], header=False), CSV)
add(D, "csv-empty-body", b"", CSV)
add(D, "csv-not-utf8", csv_text(x1).encode() + b"\xff\n", CSV)
add(D, "csv-ragged", csv_text(x5) + "1,2\n", CSV)
add(D, "csv-misspelled-header", csv_text(x5).replace("age", "AGE", 1), CSV)
add(D, "csv-with-index-column", x5.to_csv(), CSV)
add(D, "csv-semicolons", x5.to_csv(index=False, sep=";"), CSV)
# Parquet
add(D, "parquet-5-rows", parquet(x5), PARQUET)
add(D, "parquet-1000-rows", parquet(x1000), PARQUET)
add(D, "parquet-ints", parquet(x5.round(0).astype("int64")), PARQUET)
add(D, "parquet-float32", parquet(x5.astype("float32")), PARQUET)
add(D, "parquet-columns-reordered", parquet(x5[DIABETES_COLUMNS[::-1]]), PARQUET)
add(D, "parquet-missing-column", parquet(x5.drop(columns=["s3"])), PARQUET)
add(D, "parquet-nan", parquet(x5.assign(s3=np.nan)), PARQUET)
add(D, "parquet-text-column", parquet(x5.assign(s3="text")), PARQUET)
add(D, "parquet-empty-frame", parquet(x5.head(0)), PARQUET)
add(D, "parquet-garbage", b"PAR1 this is not parquet", PARQUET)
add(D, "parquet-json-body", body_x5, PARQUET)
add(D, "parquet-custom-index", parquet(x5.set_axis([10, 20, 30, 40, 50])), PARQUET)
add(D, "parquet-extra-column", parquet(x5.assign(extra="e")), PARQUET)

# ---------------------------------------------------------------------------- classifier
C = "classifier"
F = classifier_frame(8)
add_json(C, "split", {"dataframe_split": split(F)})
add_json(C, "records", {"dataframe_records": records(F)})
add_json(C, "instances", {"instances": records(F)})
add_json(C, "inputs-columns", {"inputs": {c: F[c].tolist() for c in F.columns}})
add_json(C, "unicode-strings", {"dataframe_split": _with(F, 0, "color", "紫 – 🎨")})
add_json(C, "unseen-category", {"dataframe_split": _with(F, 0, "color", "purple")})
add_json(C, "empty-string", {"dataframe_split": _with(F, 0, "color", "")})
add_json(C, "null-in-string-column", {"dataframe_split": _with(F, 0, "color", None)})
add_json(C, "int-in-string-column", {"dataframe_split": _with(F, 0, "color", 5)})
add_json(C, "float-in-string-column", {"dataframe_split": _with(F, 0, "color", 1.5)})
add_json(C, "bool-in-string-column", {"dataframe_split": _with(F, 0, "color", True)})
add_json(C, "all-ints-in-string-column", {"dataframe_split": split(F.assign(color=1))})
add_json(C, "string-in-double-column", {"dataframe_split": _with(F, 0, "size", "big")})
add_json(C, "nan-in-double-column", {"dataframe_split": _with(F, 0, "size", math.nan)})
add_json(C, "columns-reordered", {"dataframe_split": split(F[["weight", "color", "size"]])})
add_json(C, "records-unicode", {"dataframe_records": [{**records(F)[0], "color": "grün"}]})
add_json(C, "records-string-missing", {"dataframe_records": [{"size": 1.0, "weight": 2.0}]})
add_json(C, "200-rows", {"dataframe_split": split(classifier_frame(200))})
add(
    C,
    "ascii-escaped-unicode",
    '{"dataframe_records": [{"color": "gr\\u00fcn", "size": 1, "weight": 2}]}',
)
add(C, "csv", csv_text(F), CSV)
add(C, "csv-unicode", csv_text(F.assign(color="grün")), CSV)
add(C, "csv-quoted-comma", csv_text(F.assign(color='a, "b"')), CSV)
add(C, "csv-empty-string-cell", csv_text(F.assign(color=["", *F["color"][1:]])), CSV)
add(C, "csv-numeric-string-column", csv_text(F.assign(color=7)), CSV)
add(C, "csv-headerless", csv_text(F, header=False), CSV)
add(C, "parquet", parquet(F), PARQUET)
add(C, "parquet-categorical", parquet(F.astype({"color": "category"})), PARQUET)
add(C, "parquet-int-in-string-column", parquet(F.assign(color=3)), PARQUET)

# --------------------------------------------------------------------------------- params
P = "params"
p_split = {"columns": ["x"], "data": [[1.0], [2.5], [-3.0]]}
add_json(P, "no-params", {"dataframe_split": p_split})
add_json(
    P, "params-valid", {"dataframe_split": p_split, "params": {"multiplier": 3.0, "label": "z"}}
)
add_json(P, "params-partial", {"dataframe_split": p_split, "params": {"multiplier": 0.5}})
add_json(P, "params-empty", {"dataframe_split": p_split, "params": {}})
add_json(P, "params-null", {"dataframe_split": p_split, "params": None})
add_json(P, "params-int-for-double", {"dataframe_split": p_split, "params": {"multiplier": 2}})
add_json(P, "params-string-for-double", {"dataframe_split": p_split, "params": {"multiplier": "a"}})
add_json(
    P,
    "params-numeric-string-for-double",
    {"dataframe_split": p_split, "params": {"multiplier": "2"}},
)
add_json(P, "params-number-for-string", {"dataframe_split": p_split, "params": {"label": 5}})
add_json(P, "params-list-for-double", {"dataframe_split": p_split, "params": {"multiplier": [1]}})
add_json(P, "params-bool-for-double", {"dataframe_split": p_split, "params": {"multiplier": True}})
add_json(P, "params-nan", {"dataframe_split": p_split, "params": {"multiplier": math.nan}})
add_json(P, "params-unknown", {"dataframe_split": p_split, "params": {"temperature": 0.1}})
add_json(
    P, "params-unknown-and-valid", {"dataframe_split": p_split, "params": {"foo": 1, "label": "q"}}
)
add_json(P, "params-not-an-object", {"dataframe_split": p_split, "params": "multiplier"})
add_json(P, "params-unicode", {"dataframe_split": p_split, "params": {"label": "日本語 ✓"}})
add_json(
    P,
    "records-with-params",
    {"dataframe_records": [{"x": 1.0}, {"x": 2.0}], "params": {"multiplier": 2.0}},
)
add_json(P, "instances-with-params", {"instances": [{"x": 1.0}], "params": {"multiplier": 4.0}})
add_json(P, "inputs-with-params", {"inputs": {"x": [1.0, 2.0]}, "params": {"label": "in"}})
add_json(P, "params-before-data", {"params": {"multiplier": 5.0}, "dataframe_split": p_split})
add_json(
    P,
    "two-format-keys-with-params",
    {"dataframe_split": p_split, "inputs": {"x": [1.0]}, "params": {"multiplier": 2.0}},
)
add(
    P,
    "params-charset-utf-8",
    json.dumps({"dataframe_split": p_split, "params": {"label": "ü"}}),
    "application/json; charset=utf-8",
)
add(P, "csv", "x\n1.0\n2.0\n", CSV)
add(P, "parquet", parquet(pd.DataFrame({"x": [1.0, 2.0]})), PARQUET)
add_json(
    P, "1000-rows", {"dataframe_split": {"columns": ["x"], "data": [[i / 7] for i in range(1000)]}}
)

# ----------------------------------------------------------------------------------- boom
B = "boom"
add_json(B, "ok", {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}})
add_json(B, "nan-output", {"dataframe_split": {"columns": ["x"], "data": [[math.nan], [2.0]]}})
add_json(B, "null-output", {"dataframe_records": [{"x": None}, {"x": 2.0}]})
add_json(B, "raises-split", {"dataframe_split": {"columns": ["x"], "data": [[1.0], [-2.0]]}})
add_json(B, "raises-records", {"dataframe_records": [{"x": -1.0}]})
add_json(B, "raises-inputs", {"inputs": {"x": [-1.0]}})
add(B, "raises-csv", "x\n-1.0\n", CSV)
add(B, "raises-parquet", parquet(pd.DataFrame({"x": [-1.0]})), PARQUET)

# ---------------------------------------------------------------------------------- typed
T = "typed"
T_COLUMNS = ["n", "flag", "x", "s"]


def typed_split(*rows: list[Any]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": T_COLUMNS, "data": [list(r) for r in rows]}}


add_json(T, "split", typed_split([1, True, 0.5, "a"], [-2, False, 1, "b"]))
add_json(T, "records", {"dataframe_records": [{"n": 3, "flag": False, "x": 2.0, "s": "q"}]})
add_json(T, "instances", {"instances": [{"n": 3, "flag": False, "x": 2.0, "s": "q"}]})
add_json(
    T,
    "inputs-columns",
    {"inputs": {"n": [1, 2], "flag": [True, True], "x": [0.0, 1.0], "s": ["", "z"]}},
)
add_json(T, "big-long", typed_split([2**62, True, 0.5, "a"]))
add_json(T, "int64-max", typed_split([2**63 - 1, True, 0.5, "a"]))
add_json(T, "int64-min", typed_split([-(2**63), True, 0.5, "a"]))
add_json(T, "beyond-int64", typed_split([2**63, True, 0.5, "a"]))
add_json(T, "float-in-long", typed_split([1.0, True, 0.5, "a"]))
add_json(T, "fraction-in-long", typed_split([1.5, True, 0.5, "a"]))
add_json(T, "bool-in-long", typed_split([True, True, 0.5, "a"]))
add_json(T, "string-in-long", typed_split(["7", True, 0.5, "a"]))
add_json(T, "null-in-long", typed_split([None, True, 0.5, "a"]))
add_json(T, "ints-in-bool", typed_split([1, 1, 0.5, "a"], [2, 0, 1.0, "b"]))
add_json(T, "string-in-bool", typed_split([1, "true", 0.5, "a"]))
add_json(T, "null-in-bool", typed_split([1, None, 0.5, "a"]))
add_json(T, "int-in-double", typed_split([1, True, 3, "a"]))
add_json(T, "bool-in-double", typed_split([1, True, False, "a"]))
add_json(T, "nan-in-double", typed_split([1, True, math.nan, "a"]))
add_json(T, "null-in-string", typed_split([1, True, 0.5, None]))
add_json(T, "int-in-string", typed_split([1, True, 0.5, 12]))
add_json(T, "unicode-string", typed_split([1, True, 0.5, "日本語 \u0000 \U0001f600"]))
add_json(
    T, "records-null-string", {"dataframe_records": [{"n": 1, "flag": True, "x": 1.0, "s": None}]}
)
add(T, "csv", "n,flag,x,s\n1,True,0.5,a\n2,False,1.5,b\n", CSV)
add(T, "csv-lowercase-bools", "n,flag,x,s\n1,true,0.5,a\n2,false,1.5,b\n", CSV)
add(T, "csv-int-bools", "n,flag,x,s\n1,1,0.5,a\n2,0,1.5,b\n", CSV)
add(T, "csv-float-in-long", "n,flag,x,s\n1.5,True,0.5,a\n", CSV)
add(T, "csv-empty-long", "n,flag,x,s\n,True,0.5,a\n", CSV)
add(T, "csv-empty-string", "n,flag,x,s\n1,True,0.5,\n", CSV)
add(T, "csv-numeric-string", "n,flag,x,s\n1,True,0.5,007\n", CSV)
add(T, "csv-headerless", "1,True,0.5,a\n2,False,1.5,b\n", CSV)
T_FRAME = typed_frame()
add(T, "parquet", parquet(T_FRAME), PARQUET)
add(T, "parquet-int32-long", parquet(T_FRAME.astype({"n": "int32"})), PARQUET)
add(T, "parquet-float-long", parquet(T_FRAME.astype({"n": "float64"})), PARQUET)
add(T, "parquet-int-bool", parquet(T_FRAME.astype({"flag": "int64"})), PARQUET)
add(T, "parquet-nullable-int", parquet(T_FRAME.astype({"n": "Int64"})), PARQUET)
add(T, "parquet-arrow-string", parquet(T_FRAME.astype({"s": "string[pyarrow]"})), PARQUET)

# A string-only signature: a header and a data row look alike. pier must never score a header
# as data (issue 13: `Text,Review` was answered 200 with a prediction for the header).
X = "text"
add(X, "csv", "text,review\ngood,yes\nbad,no\n", CSV)
add(X, "csv-header-other-case", "Text,Review\ngood,yes\n", CSV)
add(X, "csv-header-misspelled", "txt,review\ngood,yes\n", CSV)
add(X, "csv-headerless", "good,yes\nbad,no\n", CSV)
add(X, "csv-headerless-1-row", "good,yes\n", CSV)

CASES_BY_ID = {c.id: c for c in CASES}


# ================================================================ deliberate differences

_A = "no Content-Type: MLflow crashes (500 text/plain); pier answers 415 in JSON"
_B = "unsupported content type or charset: MLflow answers 415 text/plain; pier 415 JSON"
_C = (
    "predict raised: MLflow answers 400 BAD_REQUEST with a stack trace; pier 500 INTERNAL_ERROR"
    " with the model's message and no trace"
)
_D = (
    "headerless CSV: MLflow takes the first row as the header (400); pier reads the rows in"
    " signature order (SageMaker's convention), as the same CSV with a header"
)
_E = "MLflow echoes the whole payload in the message; pier truncates messages to 2000 chars"
_F = (
    "media types are case-insensitive (RFC 9110): MLflow refuses 'Application/JSON' with 415;"
    " pier reads it as application/json"
)
_G = (
    "JSON nested past Python's recursion limit: MLflow crashes (500 text/plain); pier answers"
    " 400 BAD_REQUEST in JSON (docs/serving.md)"
)

DELIBERATE_DIFFERENCES: dict[str, str] = {
    "diabetes/no-content-type": _A,
    "diabetes/content-type-empty": _B,
    "diabetes/charset-latin-1": _B,
    "diabetes/unknown-content-type-parameter": _B,
    "diabetes/content-type-text-plain": _B,
    "diabetes/content-type-form": _B,
    "diabetes/charset-quoted": _B,
    "diabetes/csv-header-parameter": _B,
    "boom/raises-split": _C,
    "boom/raises-records": _C,
    "boom/raises-inputs": _C,
    "boom/raises-csv": _C,
    "boom/raises-parquet": _C,
    "diabetes/split-empty-data": _C,
    "diabetes/csv-header-only": _C,
    "diabetes/parquet-empty-frame": _C,
    "diabetes/infinity-literal": _C,
    "diabetes/number-overflowing-double": _C,
    "classifier/nan-in-double-column": _C,
    "diabetes/csv-headerless": _D,
    "diabetes/csv-headerless-1-row": _D,
    "classifier/csv-headerless": _D,
    "typed/csv-headerless": _D,
    "diabetes/malformed-json-1000-rows": _E,
    "diabetes/content-type-uppercase": _F,
    "diabetes/deeply-nested-json": _G,
}


@dataclass(frozen=True)
class PierSide:
    """What pier answers where it differs on purpose, and what MLflow answers there."""

    status: int
    error_code: str | None = None
    message_contains: str | None = None
    same_as: str | None = None  # pier's 200 equals MLflow's answer to this case
    truncated: bool = False  # MLflow's message is over the limit, pier's is cut
    mlflow_status: int = 400
    mlflow_plain_text: bool = False
    mlflow_stack_trace: bool = False


_UNSUPPORTED = PierSide(415, "UNSUPPORTED_MEDIA_TYPE", mlflow_status=415, mlflow_plain_text=True)


def _raised(message: str) -> PierSide:
    """The model's predict raised: pier shows its message (and no trace)."""
    return PierSide(500, "INTERNAL_ERROR", message, mlflow_stack_trace=True)


_RAISED = _raised("boom")


PIER_SIDE: dict[str, PierSide] = {
    "diabetes/no-content-type": PierSide(
        415, "UNSUPPORTED_MEDIA_TYPE", mlflow_status=500, mlflow_plain_text=True
    ),
    "diabetes/content-type-empty": _UNSUPPORTED,
    "diabetes/charset-latin-1": _UNSUPPORTED,
    "diabetes/unknown-content-type-parameter": _UNSUPPORTED,
    "diabetes/content-type-text-plain": _UNSUPPORTED,
    "diabetes/content-type-form": _UNSUPPORTED,
    "diabetes/charset-quoted": _UNSUPPORTED,
    "diabetes/csv-header-parameter": _UNSUPPORTED,
    "boom/raises-split": _RAISED,
    "boom/raises-records": _RAISED,
    "boom/raises-inputs": _RAISED,
    "boom/raises-csv": _RAISED,
    "boom/raises-parquet": _RAISED,
    "diabetes/split-empty-data": _raised("0 sample(s)"),
    "diabetes/csv-header-only": _raised("0 sample(s)"),
    "diabetes/parquet-empty-frame": _raised("0 sample(s)"),
    "diabetes/infinity-literal": _raised("infinity"),
    "diabetes/number-overflowing-double": _raised("infinity"),
    "classifier/nan-in-double-column": _raised("Input X contains NaN"),
    "diabetes/csv-headerless": PierSide(200, same_as="diabetes/csv-5-rows"),
    "diabetes/csv-headerless-1-row": PierSide(200, same_as="diabetes/csv-1-row"),
    "classifier/csv-headerless": PierSide(200, same_as="classifier/csv"),
    "typed/csv-headerless": PierSide(200, same_as="typed/csv"),
    "diabetes/malformed-json-1000-rows": PierSide(400, "BAD_REQUEST", truncated=True),
    "diabetes/content-type-uppercase": PierSide(
        200, same_as="diabetes/charset-utf-8", mlflow_status=415, mlflow_plain_text=True
    ),
    "diabetes/deeply-nested-json": PierSide(
        400, "BAD_REQUEST", "valid JSON", mlflow_status=500, mlflow_plain_text=True
    ),
}


# ================================================================================ servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@dataclass
class Pair:
    mlflow: httpx.Client
    pier: httpx.Client


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(kind: str, model: Path, port: int, run_dir: Path) -> list[str]:
    if kind == "mlflow":
        return [
            *(str(BIN / "mlflow"), "models", "serve", "-m", str(model)),
            *("--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)),
        ]
    return [
        *(str(BIN / "pier"), "serve", "--model-uri", str(model), "--port", str(port)),
        *("--log-file", str(run_dir / "pier-serve.log")),
        # One process, as `mlflow models serve` runs: MLflow's messages list sets, whose order
        # differs between processes (hash randomisation), and the concurrent test compares a
        # request's answer alone with its answer in a batch.
        *("--workers", "1"),
    ]


def _start(name: str, cmd: list[str], port: int, log: Path, env: dict[str, str]) -> Server:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log.parent,
            start_new_session=True,  # its own process group: mlflow's uvicorn child goes too
        )
    return Server(name, proc, port, log)


def _stop_all(servers: list[Server]) -> None:
    """SIGTERM to every server's process group, then SIGKILL to those still running."""
    running = [s for s in servers if s.proc.poll() is None]
    for server in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15.0
    for server in running:
        try:
            server.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=15.0)


def _wait_ready(servers: list[Server]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            if server.proc.poll() is not None:
                pytest.fail(
                    f"{server.name} exited with {server.proc.returncode} before /ping answered"
                    f" 200:\n{server.log_tail()}"
                )
            try:
                if httpx.get(f"{server.url}/ping", timeout=1.0).status_code == 200:
                    waiting.remove(server)
            except httpx.TransportError:
                pass
        if waiting and time.monotonic() > deadline:
            tails = "\n\n".join(f"--- {s.name}\n{s.log_tail()}" for s in waiting)
            pytest.fail(f"not ready after {STARTUP_TIMEOUT_S:.0f} s: {tails}")
        if waiting:
            time.sleep(0.2)


@pytest.fixture(scope="session")
def differential_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Pair]]:
    """Both servers for every model of BUILDERS, started at once (start-up dominates)."""
    root = tmp_path_factory.mktemp("differential")
    models = build_all(root / "models")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs a bare `uvicorn`
    env["PIER_HOME"] = str(root / "pier-home")
    env.pop("PYTHONPATH", None)
    servers: list[Server] = []
    try:
        for name, path in models.items():
            run_dir = root / name
            run_dir.mkdir()
            for kind in ("mlflow", "pier"):
                port = _free_port()
                cmd = _command(kind, path, port, run_dir)
                log = run_dir / f"{kind}.log"
                servers.append(_start(f"{kind}:{name}", cmd, port, log, env))
        _wait_ready(servers)
        by_name = {s.name: s for s in servers}
        clients: list[httpx.Client] = []
        pairs: dict[str, Pair] = {}
        for name in models:
            # No keep-alive towards MLflow: after its 500s uvicorn drops the connection.
            mlflow_client = httpx.Client(
                base_url=by_name[f"mlflow:{name}"].url,
                timeout=60.0,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            pier_client = httpx.Client(base_url=by_name[f"pier:{name}"].url, timeout=60.0)
            clients += [mlflow_client, pier_client]
            pairs[name] = Pair(mlflow_client, pier_client)
        yield pairs
        for client in clients:
            client.close()
    finally:
        _stop_all(servers)


# ============================================================================= comparing


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str

    def json(self) -> Any:
        return json.loads(self.text)  # Python's json reads NaN, as MLflow writes it

    def short(self, limit: int = 600) -> str:
        text = self.text if len(self.text) <= limit else self.text[:limit] + "..."
        return f"{self.status} [{self.content_type}] {text}"


def _send(client: httpx.Client, case: Case) -> Answer:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    if case.accept is not None:
        headers["Accept"] = case.accept
    r = client.post("/invocations", content=case.body, headers=headers)
    return Answer(r.status_code, r.headers.get("content-type", ""), r.text)


def _difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where two parsed JSON values differ (types, float bits, NaN, key order), or None."""
    if type(a) is not type(b):
        return f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"
    if isinstance(a, float):
        if a == b or (math.isnan(a) and math.isnan(b)):
            return None
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if (d := _difference(x, y, f"{path}[{i}]")) is not None:
                return d
        return None
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            if (d := _difference(a[k], b[k], f"{path}.{k}")) is not None:
                return d
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _mlflow_error_code(answer: Answer) -> str | None:
    if not answer.content_type.startswith(JSON):
        return None
    try:
        doc = answer.json()
    except ValueError:
        return None
    return doc.get("error_code") if isinstance(doc, dict) else None


def _check_pier_error_shape(case: Case, ours: Answer) -> dict[str, Any]:
    """pier's error body: JSON {error_code, message}, no trace, message within the limit."""
    where = f"{case.id}: pier answered {ours.short()}"
    assert ours.content_type.startswith(JSON), where
    doc = ours.json()
    assert isinstance(doc, dict), where
    assert isinstance(doc.get("error_code"), str), where
    assert isinstance(doc.get("message"), str), where
    assert doc["message"], where
    assert "stack_trace" not in doc, where
    assert "Traceback" not in ours.text, where
    limit = MAX_MESSAGE + len("... (123456789012 more characters)")
    assert len(doc["message"]) <= limit, where
    return doc


def _check_deliberate(case: Case, side: PierSide, ours: Answer, theirs: Answer, pair: Pair) -> None:
    report = f"{case.id}:\n  MLflow: {theirs.short()}\n  pier:   {ours.short()}"
    # MLflow still behaves as the entry says (else the entry is stale and must be re-examined).
    assert theirs.status == side.mlflow_status, f"MLflow changed? {report}"
    if side.mlflow_plain_text:
        assert theirs.content_type.startswith("text/plain"), f"MLflow changed? {report}"
    if side.mlflow_stack_trace:
        assert "stack_trace" in theirs.json(), f"MLflow changed? {report}"
    assert ours.status == side.status, report
    if side.status == 200:
        assert side.same_as is not None
        reference = _send(pair.mlflow, CASES_BY_ID[side.same_as])
        assert reference.status == 200, f"{side.same_as}: MLflow answered {reference.short()}"
        diff = _difference(reference.json(), ours.json())
        assert diff is None, f"{report}\n  MLflow on {side.same_as}: {reference.short()}\n  {diff}"
        return
    doc = _check_pier_error_shape(case, ours)
    assert doc["error_code"] == side.error_code, report
    if side.message_contains is not None:
        assert side.message_contains in doc["message"], report
    if side.truncated:
        assert len(theirs.json()["message"]) > MAX_MESSAGE, f"MLflow changed? {report}"
        assert len(doc["message"]) < len(theirs.json()["message"]), report
        assert doc["message"][MAX_MESSAGE:].startswith("... ("), report


# ================================================================================= tests


def test_deliberate_differences_are_cases() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert set(DELIBERATE_DIFFERENCES) == set(PIER_SIDE)
    assert set(DELIBERATE_DIFFERENCES) <= set(ids)
    assert {c.model for c in CASES} == set(BUILDERS)
    for side in PIER_SIDE.values():
        assert side.same_as is None or side.same_as in CASES_BY_ID


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pier_answers_as_mlflow(case: Case, differential_servers: dict[str, Pair]) -> None:
    pair = differential_servers[case.model]
    _check(case, _send(pair.pier, case), _send(pair.mlflow, case), pair)


def test_concurrent_answers_match_mlflow(differential_servers: dict[str, Pair]) -> None:
    """The whole corpus at once, twice, shuffled: pier merges concurrent requests into one
    predict call, and every request must still get exactly the answer it gets alone (errors
    included: no other request's data in a message). test_pier_answers_as_mlflow compares
    those answers with MLflow's."""
    alone = {c.id: _send(differential_servers[c.model].pier, c) for c in CASES}
    work = CASES * 2
    random.Random(0).shuffle(work)
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda c: _send(differential_servers[c.model].pier, c), work))
    mismatches = []
    for case, ours in zip(work, answers, strict=True):
        single = alone[case.id]
        if (ours.status, ours.content_type) != (single.status, single.content_type) or (
            _difference(single.json(), ours.json()) is not None
        ):
            mismatches.append(
                f"{case.id}:\n  alone:      {single.short()}\n  concurrent: {ours.short()}"
            )
    assert not mismatches, "\n".join(sorted(set(mismatches)))


def _check(case: Case, ours: Answer, theirs: Answer, pair: Pair) -> None:
    side = PIER_SIDE.get(case.id)
    if side is not None:
        _check_deliberate(case, side, ours, theirs, pair)
        return
    report = f"{case.id}:\n  MLflow: {theirs.short()}\n  pier:   {ours.short()}"
    assert ours.status == theirs.status, report
    if theirs.status == 200:
        assert ours.content_type == theirs.content_type, report
        diff = _difference(theirs.json(), ours.json())
        assert diff is None, f"{report}\n  first difference: {diff}"
        return
    doc = _check_pier_error_shape(case, ours)
    code = _mlflow_error_code(theirs)
    if code is not None:
        assert doc["error_code"] == code, report
        mlflow_doc = theirs.json()
        for key in ("sqlstate", "error_class"):  # MLflow 3.17's classification, matched
            assert doc.get(key) == mlflow_doc.get(key), f"{key}: {report}"
