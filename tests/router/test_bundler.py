"""The router's bundles (pier.router.bundler) against a real `pier serve`: the same answers as
plain requests, bursts merged into one predict call, and the hop's failure rules per bundle
(not delivered -> another instance; lost after sending -> each request fails, none resent)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import httpx
import pytest

from pier.errors import ModelError
from pier.router.bundler import Bundler
from pier.router.invoke import Router
from pier.router.table import EndpointRoute, RoutingTable, Target, VariantRoute
from pier.router.upstream import (
    UpstreamConnectError,
    UpstreamLost,
    UpstreamPool,
    UpstreamResponse,
)
from tests.e2e.test_serve_process import Server, free_port
from tests.router.test_upstream import CASES, _one_shot_server
from tests.router.test_upstream import server as server  # the same real pier serve fixture

pytestmark = pytest.mark.slow

ONE_ROW = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1]]}}).encode()


async def _through_bundler(
    port: int, requests: Sequence[tuple[bytes, str, str | None]]
) -> list[UpstreamResponse | BaseException]:
    """(body, content type, accept) submitted at once to a Bundler for 127.0.0.1:port."""
    pool = UpstreamPool()
    bundler = Bundler(pool, "127.0.0.1", port, timeout_s=10)
    try:
        return await asyncio.gather(
            *(bundler.submit(body, ctype, accept) for body, ctype, accept in requests),
            return_exceptions=True,
        )
    finally:
        await bundler.aclose()
        pool.close()


def _answered(outcomes: list[UpstreamResponse | BaseException]) -> list[UpstreamResponse]:
    assert all(isinstance(o, UpstreamResponse) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, UpstreamResponse)]


def _batch_counters(server: Server) -> tuple[float, float]:
    text = httpx.get(server.url + "/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith(("pier_batch_requests_sum", "pier_batch_requests_count")):
            name, value = line.split()
            values[name] = float(value)
    return values["pier_batch_requests_sum"], values["pier_batch_requests_count"]


def test_bundled_answers_are_the_plain_answers(server: Server) -> None:
    """Every case of the upstream client's test, sent at once (one bundle), against each
    sent alone as a plain POST /invocations."""

    requests = [(body.encode(), ctype, "application/json") for ctype, body in CASES]
    answers = _answered(asyncio.run(_through_bundler(server.port, requests)))
    bundled = [(a.status, a.body, a.headers.get(b"content-type")) for a in answers]
    for (ctype, body), got in zip(CASES, bundled, strict=True):
        plain = httpx.post(
            server.url + "/invocations", content=body.encode(),
            headers={"content-type": ctype, "accept": "application/json"},
        )  # fmt: skip
        assert got == (plain.status_code, plain.content, plain.headers["content-type"].encode())


def test_a_burst_goes_in_few_bundles_and_merged_predict_calls(server: Server) -> None:
    before = _batch_counters(server)

    requests: list[tuple[bytes, str, str | None]] = [(ONE_ROW, "application/json", None)] * 40
    answers = _answered(asyncio.run(_through_bundler(server.port, requests)))
    assert [(a.status, a.body) for a in answers] == [(200, b'{"predictions":[2.5]}')] * 40
    after = _batch_counters(server)
    served, calls = after[0] - before[0], after[1] - before[1]
    assert served == 40
    assert calls <= 2  # 40 requests, at most two bundles in flight: two predict calls at most


def test_a_bundle_that_cannot_be_delivered_goes_to_another_instance(server: Server) -> None:
    """Through the Router: one target refuses connections, the other serves; every request is
    answered by the live one and the dead one leaves the route."""
    dead = Target("i-dead", f"http://127.0.0.1:{free_port()}", bundles=True)
    live = Target("i-live", server.url, bundles=True)
    table = RoutingTable()
    table.set(EndpointRoute("ep", {"main": VariantRoute("main", 1.0, [dead, live])}))
    unreachable: list[str] = []

    async def run() -> list[int]:
        router = Router(table, "000000000000", on_unreachable=unreachable.append)
        headers = {"content-type": "application/json"}
        try:
            results = await asyncio.gather(
                *(router.invoke("ep", ONE_ROW, headers, None) for _ in range(20))
            )
        finally:
            await router.aclose()
        return [r.status for r in results]

    assert asyncio.run(run()) == [200] * 20
    assert set(unreachable) == {"i-dead"}  # once per request that had tried it
    route = table.get("ep")
    assert route is not None
    assert route.variants["main"].targets == [live]


def test_a_refused_connection_is_a_connect_error_for_each_request() -> None:
    requests: list[tuple[bytes, str, str | None]] = [(b"{}", "application/json", None)] * 3
    outcomes = asyncio.run(_through_bundler(free_port(), requests))
    assert all(isinstance(o, UpstreamConnectError) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 3  # each caller raises its own


@pytest.mark.parametrize(
    "reply", [None, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"], ids=["closed", "garbage"]
)
def test_a_bundle_lost_after_sending_fails_each_request(reply: bytes | None) -> None:
    """Closed after reading, or an answer that is not a bundle of the right size: every
    request of the bundle is lost (a 502 through the router), none is sent again."""

    async def run() -> list[UpstreamResponse | BaseException]:
        srv, port = await _one_shot_server(reply)
        try:
            return await _through_bundler(port, [(b"{}", "application/json", None)] * 3)
        finally:
            srv.close()
            await srv.wait_closed()

    assert all(isinstance(o, UpstreamLost) for o in asyncio.run(run()))


def test_through_the_router_a_lost_bundle_is_a_502_model_error() -> None:
    async def run() -> BaseException | None:
        srv, port = await _one_shot_server(None)
        table = RoutingTable()
        target = Target("i-1", f"http://127.0.0.1:{port}", bundles=True)
        table.set(EndpointRoute("ep", {"main": VariantRoute("main", 1.0, [target])}))
        router = Router(table, "000000000000")
        try:
            await router.invoke("ep", b"{}", {"content-type": "application/json"}, None)
        except ModelError as exc:
            return exc
        finally:
            await router.aclose()
            srv.close()
            await srv.wait_closed()
        return None

    error = asyncio.run(run())
    assert isinstance(error, ModelError)
    assert error.original_status == 502
