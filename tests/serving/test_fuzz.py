"""Fuzz the decoders: whatever the body and Content-Type, the answer is 200 or a 4xx JSON error.

The model (gradient boosting, which takes NaN) never raises on valid input, so a 5xx
is a decoder bug.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pier.serving.app import ServerState, create_app
from pier.settings import ServeSettings
from tests.serving.models import save_nan_tolerant


@pytest.fixture(scope="module")
def client_and_loop(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.AsyncClient, asyncio.AbstractEventLoop]]:
    from pier.serving.mlflow_runtime import MlflowRuntime

    runtime = MlflowRuntime.load(str(save_nan_tolerant(tmp_path_factory.mktemp("m") / "model")))
    loop = asyncio.new_event_loop()
    state = ServerState(ServeSettings(max_body_bytes=64 * 1024))
    loop.run_until_complete(state.attach(runtime))
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(state)), base_url="http://t"
    )
    yield client, loop
    loop.run_until_complete(client.aclose())
    loop.run_until_complete(state.detach())
    loop.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs",
        "params",
        "columns",
        "data",
        "a",
        "b",
    ]
)
shaped_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats()
    | st.sampled_from(["a", "b", "x", ""]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


def _json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(_json_body),
    shaped_json.map(_json_body),
    st.text(alphabet='ab,0123456789.\n-e"x ', max_size=80).map(str.encode),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
        "application/json; charset=utf-8",
        "text/csv; charset=UTF-8",
        "application/json; charset=utf-16",
        "text/plain",
        "",
    ]
)
accepts = st.sampled_from(
    [None, "application/json", "text/csv", "application/jsonlines", "*/*", "image/png"]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, content_type=content_types, accept=accepts)
def test_decoders_answer_200_or_4xx(
    client_and_loop: tuple[httpx.AsyncClient, asyncio.AbstractEventLoop],
    body: bytes,
    content_type: str,
    accept: str | None,
) -> None:
    client, loop = client_and_loop
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    r = loop.run_until_complete(client.post("/invocations", content=body, headers=headers))
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)
    if r.status_code != 200:
        err = r.json()
        assert (
            {"error_code", "message"}
            <= set(err)
            <= {  # MLflow's shape, with its classification
                "error_code",
                "message",
                "sqlstate",
                "error_class",
            }
        )
        assert "Traceback" not in err["message"]


_DEEP = "[" * 2000 + "]" * 2000
_LONG_INT = "1" + "0" * 4400  # Python's json refuses integers of more than 4,300 digits


@pytest.mark.parametrize(
    "body",
    [
        _DEEP,
        '{"a": ' * 2000 + "1" + "}" * 2000,
        '{"dataframe_split": {"columns": ["a"], "data": ' + _DEEP + "}}",
        '{"dataframe_records": [{"a": 1}], "params": {"p": ' + _DEEP + "}}",
        '{"dataframe_split": {"columns": ["a"], "data": [[' + _LONG_INT + "]]}}",
        '{"dataframe_records": [{"a": 1}], "params": {"p": ' + _LONG_INT + "}}",
    ],
    ids=["array", "object", "data", "params", "integer", "params-integer"],
)
def test_json_beyond_the_parsers_limits_is_a_400(
    client_and_loop: tuple[httpx.AsyncClient, asyncio.AbstractEventLoop],
    caplog: pytest.LogCaptureFixture,
    body: str,
) -> None:
    """Nesting past the recursion limit and over-long integers are bad input, not a 500."""
    client, loop = client_and_loop
    headers = {"Content-Type": "application/json"}
    r = loop.run_until_complete(client.post("/invocations", content=body, headers=headers))
    assert (r.status_code, r.json()["error_code"]) == (400, "BAD_REQUEST"), r.text
    assert "unexpected error" not in caplog.text  # no logged traceback
