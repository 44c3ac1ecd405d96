"""The shadow mirror (pier.router.mirror): copies are fire-and-forget and bounded. Beyond the
bound a copy is dropped and counted, never queued; the copies in flight are awaited by
`aclose`; a copy that fails is counted and recorded with its pair's event id.

The upstream is a socket server that holds every request until told to answer: the one way to
keep copies in flight for as long as a test needs (a real model answers too fast)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from pier.contract.capture_config import CaptureSettings
from pier.router.metrics import EndpointMetrics
from pier.router.mirror import Mirror, Recorded
from pier.router.table import RoutingTable, ShadowRoute, Target
from pier.router.upstream import UpstreamPool
from tests.e2e.test_serve_process import free_port

JSON = [("content-type", "application/json")]


def _mirror(max_in_flight: int) -> tuple[Mirror, CollectorRegistry, UpstreamPool]:
    registry = CollectorRegistry()
    metrics = EndpointMetrics(registry, RoutingTable(), lambda: [])
    pool = UpstreamPool()
    return Mirror(pool, metrics, registry, max_in_flight=max_in_flight), registry, pool


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def _held_server(release: asyncio.Event) -> tuple[asyncio.Server, int, list[int]]:
    """A server that answers 200 [] to each POST once `release` is set; counts what it got."""
    got: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            got.append(length)
            await release.wait()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]"
            )
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], got


def test_copies_beyond_the_bound_are_dropped_and_counted_and_sending_never_waits() -> None:
    async def run() -> None:
        release = asyncio.Event()
        server, port, got = await _held_server(release)
        mirror, registry, pool = _mirror(max_in_flight=2)
        shadow = ShadowRoute("shadow", 1.0, [Target("i-1", f"http://127.0.0.1:{port}")])
        for _ in range(5):  # send() is synchronous: it cannot wait for the shadow
            mirror.send("ep", shadow, b"{}", JSON, None, None, None)
        assert mirror.in_flight() == 2
        dropped = _value(
            registry, "pier_shadow_dropped_requests_total",
            endpoint="ep", variant="shadow", reason="overload",
        )  # fmt: skip
        assert dropped == 3
        await asyncio.sleep(0.2)
        assert len(got) == 2  # both copies reached the shadow, whose answers are held
        assert _value(registry, "pier_shadow_requests_in_flight") == 2
        release.set()
        await mirror.aclose()  # a clean stop waits for the copies in flight
        assert mirror.in_flight() == 0
        invocations = _value(
            registry, "pier_endpoint_invocations_total", endpoint="ep", variant="shadow"
        )
        assert invocations == 2
        pool.close()  # the server's handlers see the connections close and end
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.1)

    asyncio.run(run())


def test_a_failed_copy_is_counted_and_recorded_with_its_event_id() -> None:
    async def run() -> None:
        mirror, registry, pool = _mirror(max_in_flight=8)
        recorded: list[Recorded] = []
        mirror.record = recorded.append
        settings = CaptureSettings.from_config(
            {"EnableCapture": True, "InitialSamplingPercentage": 100,
             "DestinationS3Uri": "file:x", "CaptureOptions": [{"CaptureMode": "Input"}]}
        )  # fmt: skip
        assert settings is not None
        nobody = ShadowRoute("shadow", 1.0, [Target("i-1", f"http://127.0.0.1:{free_port()}")])
        mirror.send("ep", nobody, b"{}", JSON, settings, "event-1", "inference-1")
        await mirror.aclose()
        (r,) = recorded
        assert (r.variant, r.event_id, r.inference_id, r.status) == (
            "shadow", "event-1", "inference-1", 502,
        )  # fmt: skip
        errors = _value(
            registry, "pier_endpoint_invocation_5xx_errors_total", endpoint="ep", variant="shadow"
        )
        assert errors == 1
        empty = ShadowRoute("shadow", 1.0, [])
        mirror.send("ep", empty, b"{}", JSON, settings, "event-2", None)
        no_instance = _value(
            registry, "pier_shadow_dropped_requests_total",
            endpoint="ep", variant="shadow", reason="no_instance",
        )  # fmt: skip
        assert no_instance == 1
        pool.close()

    asyncio.run(run())
