"""The router's bundles (pier.router.bundler) against a real `pier serve`: the same answers as
plain requests, bursts merged into one predict call, and the hop's failure rules per bundle
(not delivered -> another instance; lost after sending -> each request fails, none resent)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from pier.errors import ModelError
from pier.router.bundler import Bundler
from pier.router.invoke import Router
from pier.router.table import EndpointRoute, RoutingTable, Target, VariantRoute
from pier.router.upstream import UpstreamConnectError, UpstreamLost, UpstreamPool
from tests.e2e.test_serve_process import Server, free_port, pier_serve
from tests.router.test_upstream import CASES, _one_shot_server
from tests.serving.models import save_scaler

pytestmark = pytest.mark.slow

ONE_ROW = json.dumps({"dataframe_split": {"columns": ["x", "n"], "data": [[1.5, 1]]}}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    model = save_scaler(tmp_path_factory.mktemp("m") / "scaler")
    srv = pier_serve(model, tmp_path_factory.mktemp("logs"))
    srv.first_ping_statuses()
    yield srv
    srv.stop()


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

    async def run() -> tuple[list[tuple[int, bytes, bytes | None]], list[tuple[int, bytes]]]:
        pool = UpstreamPool()
        bundler = Bundler(pool, "127.0.0.1", server.port, timeout_s=10)
        try:
            answers = await asyncio.gather(
                *(bundler.submit(body.encode(), ctype, "application/json") for ctype, body in CASES)
            )
        finally:
            await bundler.aclose()
            pool.close()
        return [(a.status, a.body, a.headers.get(b"content-type")) for a in answers], []

    bundled, _ = asyncio.run(run())
    for (ctype, body), got in zip(CASES, bundled, strict=True):
        plain = httpx.post(
            server.url + "/invocations", content=body.encode(),
            headers={"content-type": ctype, "accept": "application/json"},
        )  # fmt: skip
        assert got == (plain.status_code, plain.content, plain.headers["content-type"].encode())


def test_a_burst_goes_in_few_bundles_and_merged_predict_calls(server: Server) -> None:
    before = _batch_counters(server)

    async def run() -> list[tuple[int, bytes]]:
        pool = UpstreamPool()
        bundler = Bundler(pool, "127.0.0.1", server.port, timeout_s=10)
        try:
            answers = await asyncio.gather(
                *(bundler.submit(ONE_ROW, "application/json", None) for _ in range(40))
            )
        finally:
            await bundler.aclose()
            pool.close()
        return [(a.status, a.body) for a in answers]

    assert asyncio.run(run()) == [(200, b'{"predictions":[2.5]}')] * 40
    after = _batch_counters(server)
    requests, calls = after[0] - before[0], after[1] - before[1]
    assert requests == 40
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
    async def run() -> list[BaseException | None]:
        pool = UpstreamPool()
        bundler = Bundler(pool, "127.0.0.1", free_port(), timeout_s=5)
        try:
            outcomes = await asyncio.gather(
                *(bundler.submit(b"{}", "application/json", None) for _ in range(3)),
                return_exceptions=True,
            )
        finally:
            await bundler.aclose()
            pool.close()
        return [o if isinstance(o, BaseException) else None for o in outcomes]

    outcomes = asyncio.run(run())
    assert all(isinstance(o, UpstreamConnectError) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 3  # each caller raises its own


@pytest.mark.parametrize(
    "reply", [None, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"], ids=["closed", "garbage"]
)
def test_a_bundle_lost_after_sending_fails_each_request(reply: bytes | None) -> None:
    """Closed after reading, or an answer that is not a bundle of the right size: every
    request of the bundle is lost (a 502 through the router), none is sent again."""

    async def run() -> list[BaseException | None]:
        srv, port = await _one_shot_server(reply)
        pool = UpstreamPool()
        bundler = Bundler(pool, "127.0.0.1", port, timeout_s=5)
        try:
            outcomes = await asyncio.gather(
                *(bundler.submit(b"{}", "application/json", None) for _ in range(3)),
                return_exceptions=True,
            )
        finally:
            await bundler.aclose()
            pool.close()
            srv.close()
            await srv.wait_closed()
        return [o if isinstance(o, BaseException) else None for o in outcomes]

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
