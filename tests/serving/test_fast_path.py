"""Differential property test: the fast path builds exactly the model input MLflow builds.

For any signature of scalar columns and any JSON dataframe_split / dataframe_records payload,
if the fast decoder accepts the payload then MLflow's own parser + schema enforcement must accept
it too and produce an equal DataFrame (same columns, order, dtypes and values). Payloads the fast
path declines go to MLflow's plain path, so they need no check here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.models.utils import _enforce_schema
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from mlflow.types import Schema

from pier.serving.codecs import decode_json_fast
from pier.serving.schema import FastSchema

TYPES = ["double", "long", "boolean", "string"]
names = st.text(alphabet="abcxyz_", min_size=1, max_size=4)

values_by_type: dict[str, st.SearchStrategy[Any]] = {
    "double": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**60), 2**60),
    ),
    "long": st.integers(-(2**63), 2**63 - 1),
    "boolean": st.booleans(),
    "string": st.text(max_size=5),
}
# Anything at all in a cell, to probe what the fast path must decline.
any_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def schema_and_payload(draw: st.DrawFn) -> tuple[list[dict[str, Any]], bytes]:
    cols = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    spec = [{"name": c, "type": draw(st.sampled_from(TYPES)), "required": True} for c in cols]
    n_rows = draw(st.integers(1, 4))
    payload_cols = list(cols)
    if draw(st.booleans()):
        payload_cols.append(draw(names.filter(lambda n: n not in cols)))  # an extra column
    if draw(st.booleans()):
        payload_cols = draw(st.permutations(payload_cols))
    typed = draw(st.booleans())  # mostly well-typed values, sometimes anything

    def cell(col: str) -> Any:
        kind = next((s["type"] for s in spec if s["name"] == col), "double")
        return draw(values_by_type[kind] if typed else st.one_of(values_by_type[kind], any_value))

    rows = [[cell(c) for c in payload_cols] for _ in range(n_rows)]
    if draw(st.booleans()):
        doc: dict[str, Any] = {"dataframe_split": {"columns": payload_cols, "data": rows}}
    else:
        doc = {"dataframe_records": [dict(zip(payload_cols, r, strict=True)) for r in rows]}
    return spec, json.dumps(doc).encode()


def mlflow_frame(spec: list[dict[str, Any]], body: bytes) -> pd.DataFrame:
    schema = Schema.from_json(json.dumps(spec))
    parsed = infer_and_parse_data(json.loads(body), schema)
    return _enforce_schema(parsed, schema)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_payload())
def test_fast_frame_equals_mlflow_enforced_frame(case: tuple[list[dict[str, Any]], bytes]) -> None:
    spec, body = case
    fast = FastSchema.from_signature(spec)
    assert fast is not None
    prepared = decode_json_fast(body, fast)
    if prepared is None:
        return  # declined: MLflow's plain path decides
    assert prepared.columns is not None
    ours = fast.frame(prepared.columns)
    theirs = mlflow_frame(spec, body)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


def test_fast_path_accepts_the_common_payloads() -> None:
    """Guards against a fast path that silently declines everything (the property holds then)."""
    spec = [{"name": "a", "type": "double"}, {"name": "b", "type": "string"}]
    fast = FastSchema.from_signature(spec)
    assert fast is not None
    split = b'{"dataframe_split": {"columns": ["b", "a", "z"], "data": [["x", 1], ["y", 2.5]]}}'
    split = (
        b'{"dataframe_split": {"columns": ["b", "a", "z"], "data": [["x", 1, 0], ["y", 2.5, 0]]}}'
    )
    records = b'{"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2.5, "b": "y", "z": 3}]}'
    for body in (split, records):
        prepared = decode_json_fast(body, fast)
        assert prepared is not None
        assert prepared.columns is not None
        frame = fast.frame(prepared.columns)
        assert list(frame.columns) == ["a", "b"]
        assert frame["a"].dtype == np.float64
        pd.testing.assert_frame_equal(frame, mlflow_frame(spec, body), check_exact=True)


@pytest.mark.parametrize(
    "body",
    [
        b'{"dataframe_split": {"columns": ["a"], "data": [[null]]}}',  # null: MLflow decides
        b'{"dataframe_split": {"columns": ["a"], "data": [["1"]]}}',  # text in a double column
        b'{"dataframe_split": {"columns": ["a"], "data": [[NaN]]}}',  # not JSON for orjson
        b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [7]}}',
        b'{"dataframe_split": {"columns": ["a"], "data": []}}',
        b'{"dataframe_records": [{"b": 1}]}',  # missing column
        b'{"dataframe_records": [{"a": 1}], "params": {"k": 1}}',
        b'{"inputs": [[1]]}',
        b'{"dataframe_split": {"columns": ["a"], "data": [[true]]}}',  # bool in a double column
        b"[1, 2]",
    ],
)
def test_fast_path_declines_what_mlflow_must_decide(body: bytes) -> None:
    fast = FastSchema.from_signature([{"name": "a", "type": "double"}])
    assert decode_json_fast(body, fast) is None


@pytest.mark.parametrize(
    "spec",
    [
        [{"name": "a", "type": "double", "required": False}],
        [{"name": "a", "type": "datetime"}],
        [{"type": "double"}],
        [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}],
        [],
    ],
)
def test_signatures_the_fast_path_leaves_to_mlflow(spec: list[dict[str, Any]]) -> None:
    assert FastSchema.from_signature(spec) is None
