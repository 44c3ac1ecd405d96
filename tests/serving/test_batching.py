"""Batching gives the same answers as one request at a time (hypothesis property test).

Both servers are the real ASGI app over a real MLflow model, called in-process through httpx;
one with batching on, one with it off. Random mixes of concurrent requests (formats, row
counts, params, invalid and model-error requests) must get identical status and body.
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

from pier.contract import bundle
from pier.serving.app import ServerState, create_app
from pier.serving.mlflow_runtime import MlflowRuntime
from pier.settings import ServeSettings
from tests.serving.models import save_scaler


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> MlflowRuntime:
    path = save_scaler(tmp_path_factory.mktemp("models") / "scaler")
    return MlflowRuntime(str(path))


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _client(runtime: MlflowRuntime, batching: bool) -> tuple[httpx.AsyncClient, ServerState]:
    state = ServerState(ServeSettings(batching=batching, max_batch_rows=16))
    await state.attach(runtime)
    transport = httpx.ASGITransport(app=create_app(state))
    return httpx.AsyncClient(transport=transport, base_url="http://pier"), state


rows = st.lists(
    st.tuples(st.floats(-150, 150, allow_nan=False), st.integers(-5, 5)), min_size=1, max_size=6
)


@st.composite
def request(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    data = draw(rows)
    kind = draw(st.sampled_from(["split", "records", "csv", "params", "missing", "text", "inputs"]))
    json_h = {"Content-Type": "application/json"}
    if kind == "split":
        body: Any = {"dataframe_split": {"columns": ["x", "n"], "data": [list(r) for r in data]}}
    elif kind == "records":
        body = {"dataframe_records": [{"n": n, "x": x} for x, n in data]}
    elif kind == "inputs":
        body = {"inputs": {"x": [x for x, _ in data], "n": [n for _, n in data]}}
    elif kind == "params":
        multiplier = draw(st.sampled_from([0.5, 2.0, 3.0]))
        body = {
            "dataframe_split": {"columns": ["x", "n"], "data": [list(r) for r in data]},
            "params": {"multiplier": multiplier},
        }
    elif kind == "missing":
        body = {"dataframe_records": [{"x": x} for x, _ in data]}
    elif kind == "text":
        body = {"dataframe_records": [{"x": "abc", "n": n} for _, n in data]}
    else:
        csv = "x,n\n" + "".join(f"{x!r},{n}\n" for x, n in data)
        return {"Content-Type": "text/csv"}, csv.encode()
    return json_h, json.dumps(body).encode()


async def _send_all(
    client: httpx.AsyncClient, reqs: list[tuple[dict[str, str], bytes]]
) -> list[Any]:
    responses = await asyncio.gather(
        *(client.post("/invocations", headers=h, content=b) for h, b in reqs)
    )
    return [(r.status_code, r.json()) for r in responses]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reqs=st.lists(request(), min_size=1, max_size=24))
def test_batched_equals_one_by_one(
    runtime: MlflowRuntime,
    loop: asyncio.AbstractEventLoop,
    reqs: list[tuple[dict[str, str], bytes]],
) -> None:
    async def run() -> tuple[list[Any], list[Any], int]:
        batched, s1 = await _client(runtime, batching=True)
        single, s2 = await _client(runtime, batching=False)
        try:
            got = await _send_all(batched, reqs)
            want = [await _send_all(single, [r]) for r in reqs]
            merged_calls = s1.metrics.batch_requests.collect()[0].samples
            return got, [w[0] for w in want], len(merged_calls)
        finally:
            await s1.detach()
            await s2.detach()

    got, want, _ = loop.run_until_complete(run())
    assert got == want


def test_concurrent_requests_are_really_merged(
    runtime: MlflowRuntime, loop: asyncio.AbstractEventLoop
) -> None:
    """Without this, the property above would hold for a batcher that never batches."""
    body = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.0, 1]]}}).encode()

    async def run() -> float:
        client, state = await _client(runtime, batching=True)
        try:
            results = await _send_all(client, [({"Content-Type": "application/json"}, body)] * 40)
            assert all(r == (200, {"predictions": [2.0]}) for r in results)
            hist = state.metrics.batch_requests
            count = next(s.value for s in hist.collect()[0].samples if s.name.endswith("_count"))
            total = next(s.value for s in hist.collect()[0].samples if s.name.endswith("_sum"))
            return total / count
        finally:
            await state.detach()

    # 40 requests plus the warm-up; merged calls mean fewer predict calls than requests.
    assert loop.run_until_complete(run()) > 1.5


def test_a_failing_request_fails_only_itself(
    runtime: MlflowRuntime, loop: asyncio.AbstractEventLoop
) -> None:
    good = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.0, 1]]}}).encode()
    bad = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[-120.0, 1]]}}).encode()
    reqs = [({"Content-Type": "application/json"}, bad if i % 5 == 2 else good) for i in range(20)]

    async def run() -> list[Any]:
        client, state = await _client(runtime, batching=True)
        try:
            return await _send_all(client, reqs)
        finally:
            await state.detach()

    results = loop.run_until_complete(run())
    for i, (status, body) in enumerate(results):
        if i % 5 == 2:
            assert status == 500
            assert body["error_code"] == "INTERNAL_ERROR"
            assert "boom" in body["message"]
            assert "Traceback" not in body["message"]
        else:
            assert (status, body) == (200, {"predictions": [2.0]})


@pytest.mark.parametrize("batching", [True, False])
def test_a_predict_call_past_the_stuck_limit_is_reported_once(batching: bool) -> None:
    """The stuck check (pier.serving.batching): a call that runs past `stuck_after_s` is
    reported once, with how long it has run, even after its caller has timed out and gone;
    calls that end in time are never reported."""
    import threading
    import time

    from pier.errors import RequestTimeout
    from pier.serving.batching import Batcher
    from pier.serving.inputs import Prepared

    release = threading.Event()
    reports: list[float] = []

    def predict(prepared: Prepared) -> list[int]:
        if prepared.params == {"hang": True}:
            release.wait(30)
        return [0] * prepared.n_rows

    async def scenario() -> None:
        batcher = Batcher(predict, enabled=batching, stuck_after_s=0.5, on_stuck=reports.append)
        await batcher.start()
        try:
            assert await batcher.submit(Prepared(1, None)) == [0]
            await asyncio.sleep(1.0)
            assert reports == []  # a quick call is never reported
            loop = asyncio.get_running_loop()
            with pytest.raises(RequestTimeout):
                await batcher.submit(Prepared(1, None, params={"hang": True}), loop.time() + 0.1)
            deadline = time.monotonic() + 10
            while not reports and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # time for a second report, which must not come
        finally:
            release.set()
            await batcher.stop()

    asyncio.run(scenario())
    assert len(reports) == 1
    assert reports[0] > 0.5


async def _send_bundle(
    client: httpx.AsyncClient, reqs: list[tuple[dict[str, str], bytes]]
) -> list[Any]:
    """`reqs` in one bundle (pier.contract.bundle), as the router sends them."""
    items = [
        bundle.BundledRequest(
            h["Content-Type"].encode() if "Content-Type" in h else None,
            h["Accept"].encode() if "Accept" in h else None,
            b,
        )
        for h, b in reqs
    ]
    r = await client.post(
        bundle.BUNDLE_PATH,
        headers={"Content-Type": bundle.CONTENT_TYPE},
        content=bundle.encode_requests(items),
    )
    assert r.status_code == 200, r.text
    return [(a.status, a.content_type, a.body) for a in bundle.decode_answers(r.content)]


async def _one_by_one(
    client: httpx.AsyncClient, reqs: list[tuple[dict[str, str], bytes]]
) -> list[Any]:
    out = []
    for h, b in reqs:
        r = await client.post("/invocations", headers=h, content=b)
        out.append((r.status_code, r.headers["content-type"].encode(), r.content))
    return out


@st.composite
def bundled_request(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """request() plus what only the headers decide: Accept, a missing or foreign type."""
    headers, body = draw(request())
    extra = draw(st.sampled_from(["none", "csv-out", "no-type", "xml", "bad-accept", "big"]))
    if extra == "csv-out":
        headers = {**headers, "Accept": "text/csv"}
    elif extra == "no-type":
        headers = {}
    elif extra == "xml":
        headers = {"Content-Type": "application/xml"}
    elif extra == "bad-accept":
        headers = {**headers, "Accept": "image/png"}
    elif extra == "big":
        body = b" " * (BUNDLE_TEST_LIMIT + 1)
    return headers, body


BUNDLE_TEST_LIMIT = 4096


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reqs=st.lists(bundled_request(), min_size=1, max_size=24))
def test_a_bundle_answers_each_request_as_if_alone(
    runtime: MlflowRuntime,
    loop: asyncio.AbstractEventLoop,
    reqs: list[tuple[dict[str, str], bytes]],
) -> None:
    """The router's bundles (pier.router.bundler) are a fast path: each answer (status,
    content type, body bytes) is the one /invocations gives the request alone."""

    async def run() -> tuple[list[Any], list[Any]]:
        state = ServerState(ServeSettings(max_batch_rows=16, max_body_bytes=BUNDLE_TEST_LIMIT))
        await state.attach(runtime)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(state)), base_url="http://pier"
        )
        try:
            return await _send_bundle(client, reqs), await _one_by_one(client, reqs)
        finally:
            await state.detach()

    got, want = loop.run_until_complete(run())
    assert got == want


def test_a_bundle_goes_to_the_model_in_one_call(
    runtime: MlflowRuntime, loop: asyncio.AbstractEventLoop
) -> None:
    """All of a bundle's requests are queued before the batcher takes its next batch."""
    body = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.0, 1]]}}).encode()

    async def run() -> tuple[list[Any], float, float]:
        client, state = await _client(runtime, batching=True)
        hist = state.metrics.batch_requests
        try:
            before = {s.name: s.value for s in hist.collect()[0].samples}
            reqs = [({"Content-Type": "application/json"}, body)] * 12
            answers = await _send_bundle(client, reqs)
            after = {s.name: s.value for s in hist.collect()[0].samples}
            calls = after["pier_batch_requests_count"] - before["pier_batch_requests_count"]
            merged = after["pier_batch_requests_sum"] - before["pier_batch_requests_sum"]
            return answers, calls, merged
        finally:
            await state.detach()

    answers, calls, merged = loop.run_until_complete(run())
    assert answers == [(200, b"application/json", b'{"predictions":[2.0]}')] * 12
    assert (calls, merged) == (1, 12)


@pytest.mark.parametrize(
    "data",
    [
        b"\x05\x00",  # an item header cut short
        b"\x10\x00\x00\x00\x02\x00\x00\x00{}",  # a content type announced longer than the rest
        b"\xff\xff\xff\xff\x40\x00\x00\x00{}",  # a body announced longer than the rest
    ],
)
def test_a_malformed_bundle_is_a_400_and_the_server_serves_on(
    runtime: MlflowRuntime, loop: asyncio.AbstractEventLoop, data: bytes
) -> None:
    body = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.0, 1]]}}).encode()

    async def run() -> tuple[httpx.Response, httpx.Response]:
        client, state = await _client(runtime, batching=True)
        try:
            bad = await client.post(
                bundle.BUNDLE_PATH, headers={"Content-Type": bundle.CONTENT_TYPE}, content=data
            )
            good = await client.post(
                "/invocations", headers={"Content-Type": "application/json"}, content=body
            )
            return bad, good
        finally:
            await state.detach()

    bad, good = loop.run_until_complete(run())
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "BAD_REQUEST"
    assert bad.json()["message"].startswith("Malformed bundle: cut short")
    assert (good.status_code, good.json()) == (200, {"predictions": [2.0]})


@pytest.mark.parametrize("gather", [True, False])
def test_an_idle_model_waits_for_the_rest_of_a_burst(gather: bool) -> None:
    """The gather policy (pier.serving.batching): after a call of 4 requests, 4 requests
    arriving one event-loop step apart to an idle model go in one call, not the first alone
    and then the rest; without the policy they split. A lone request after that is served
    within the bounded wait (it completes)."""
    import time

    from pier.serving.batching import Batcher
    from pier.serving.inputs import Prepared

    calls: list[int] = []

    def predict(prepared: Prepared) -> list[int]:
        time.sleep(0.2)  # a slow model: the policy's window is long enough for any machine
        calls.append(prepared.n_rows)
        return [0] * prepared.n_rows

    def one() -> Prepared:
        return Prepared(1, merge_key=("k",), columns={"x": [1.0]})

    async def burst(batcher: Batcher) -> None:
        pending = []
        for _ in range(4):
            pending.append(asyncio.ensure_future(batcher.submit(one())))
            await asyncio.sleep(0)  # the next arrives one step later
            await asyncio.sleep(0)
        assert await asyncio.gather(*pending) == [[0]] * 4

    async def scenario() -> None:
        batcher = Batcher(predict, gather=gather, gather_max_s=1.0)
        await batcher.start()
        try:
            await asyncio.gather(*(batcher.submit(one()) for _ in range(4)))  # one call of 4
            calls.clear()
            await burst(batcher)
            burst_calls = list(calls)
            assert await batcher.submit(one()) == [0]
        finally:
            await batcher.stop()
        if gather:
            assert burst_calls == [4]
        else:
            assert burst_calls[0] == 1
            assert sum(burst_calls) == 4

    asyncio.run(scenario())
