"""InvokeEndpoint: pick a variant and an instance, forward, map the container's answer.

Kept thin on purpose: every microsecond here is paid on every request. A connection refused
by a dying instance is retried on another instance (the request never reached a model); a
request whose bytes were sent is never sent twice.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pier.contract.capture_config import CaptureSettings
from pier.errors import (
    EndpointNotRouted,
    ModelError,
    ModelNotReadyException,
    RuntimeValidationError,
    ServiceUnavailable,
)
from pier.router.bundler import Bundler
from pier.router.metrics import EndpointMetrics
from pier.router.mirror import Mirror, Recorded
from pier.router.table import EndpointRoute, RoutingTable, Target, VariantRoute, least_outstanding
from pier.router.upstream import (
    UpstreamConnectError,
    UpstreamLost,
    UpstreamPool,
    UpstreamResponse,
)

# Headers the container sees, as SageMaker forwards them.
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")
_CUSTOM_ATTRIBUTES = FORWARDED[2]
_BUNDLED_HEADER_MAX = 1024  # longer Content-Type or Accept values go plain (a bundle has room
# for 65,534 bytes; no real media type comes near either)
_BUNDLERS_KEPT = 64  # idle bundlers of instances that may be gone are pruned past this
_MAX_ORIGINAL_MESSAGE = 4096


@dataclass(slots=True)  # one per request: slots make it cheaper to build
class Invocation:
    status: int
    body: bytes
    content_type: str
    variant: str
    custom_attributes: str | None
    model_latency_us: int
    # The route's data capture when it was invoked (None: not captured), so the caller needs
    # no second look-up in the routing table, which may have changed since.
    capture: CaptureSettings | None


def _restoring(endpoint: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Endpoint {endpoint} is starting again after a platform restart: its instances are "
        "not serving yet. Retry the request."
    )


class Router:
    def __init__(
        self,
        table: RoutingTable,
        account: str,
        timeout_s: float = 60.0,
        on_unreachable: Callable[[str], None] | None = None,
        metrics: EndpointMetrics | None = None,
        mirror: Mirror | None = None,
        bundles: bool = True,
    ) -> None:
        self.table = table
        # Requests to pier's own model servers go in bundles (pier.router.bundler) unless off.
        self._bundles = bundles
        self._bundlers: dict[tuple[str, int], Bundler] = {}
        self.metrics = metrics
        self.account = account
        # Told the instance id of an instance that refused a connection (the reconciler then
        # checks it at once instead of at its next health round).
        self._on_unreachable = on_unreachable or (lambda instance_id: None)
        self._rng = random.Random()
        self._timeout_s = timeout_s
        self._pool = UpstreamPool()
        # Copies to shadow variants share the pool (pier.router.mirror).
        self.mirror = mirror or Mirror(
            self._pool, metrics, metrics.registry if metrics else None, timeout_s=timeout_s
        )

    def answered(self, endpoint: str, result: Invocation, received_ns: int) -> None:
        """The answer went out: OverheadLatency is the time since `received_ns`
        (perf_counter_ns when the request arrived) less the model's time."""
        if self.metrics:
            total_us = (time.perf_counter_ns() - received_ns) // 1000
            overhead_us = max(0, total_us - result.model_latency_us)
            measured = self.metrics.existing(endpoint, result.variant)
            if measured is not None:
                measured.overhead(overhead_us)

    async def aclose(self) -> None:
        await self.mirror.aclose()
        for bundler in self._bundlers.values():
            await bundler.aclose()
        self._pool.close()

    def _bundler(self, target: Target) -> Bundler:
        key = (target.host, target.port)
        bundler = self._bundlers.get(key)
        if bundler is None:
            if len(self._bundlers) >= _BUNDLERS_KEPT:
                self._bundlers = {k: b for k, b in self._bundlers.items() if not b.idle}
            bundler = Bundler(self._pool, target.host, target.port, self._timeout_s)
            self._bundlers[key] = bundler
        return bundler

    async def _send(
        self, target: Target, body: bytes, forward: list[tuple[str, str]]
    ) -> UpstreamResponse:
        """One request to one instance: in a bundle when the instance is pier's model server
        and the request carries nothing a bundle does not (custom attributes, or an outsized
        header, go plain)."""
        if (
            self._bundles
            and target.bundles
            and all(k != _CUSTOM_ATTRIBUTES and len(v) <= _BUNDLED_HEADER_MAX for k, v in forward)
        ):
            headers = dict(forward)
            return await self._bundler(target).submit(
                body, headers.get("content-type"), headers.get("accept")
            )
        return await self._pool.post(
            target.host, target.port, "/invocations", body, forward, self._timeout_s
        )

    async def invoke(
        self,
        endpoint: str,
        body: bytes,
        headers: Mapping[str, str],
        target_variant: str | None,
    ) -> Invocation:
        route = self.table.get(endpoint)
        if route is None:
            raise EndpointNotRouted(f"Endpoint {endpoint} of account {self.account} not found.")
        if target_variant is not None:
            variant = route.variants.get(target_variant)
            if variant is None:
                raise RuntimeValidationError(
                    f"Variant {target_variant} not found for endpoint {endpoint}."
                )
            if not variant.targets:
                if route.restoring:
                    raise _restoring(endpoint)
                raise ModelNotReadyException(
                    f"Variant {target_variant} of endpoint {endpoint} has no healthy instance."
                )
        else:
            picked = route.pick_variant(self._rng)
            if picked is None:
                if route.restoring:
                    raise _restoring(endpoint)
                raise ModelNotReadyException(f"Endpoint {endpoint} has no healthy instance.")
            variant = picked
        forward = [(k, headers[k]) for k in FORWARDED if k in headers]
        if route.shadows:  # one attribute read when the endpoint has no shadow
            return await self._shadowed(route, variant, body, headers, forward)
        return await self._forward(route, variant, body, forward)

    async def _shadowed(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        body: bytes,
        headers: Mapping[str, str],
        forward: list[tuple[str, str]],
    ) -> Invocation:
        """The production call, then copies to the shadows drawn for this request (sent
        whatever the production's outcome; never awaited). When the endpoint captures data
        and this request is sampled, both halves are recorded with one event id."""
        rng = self._rng
        drawn = [s for s in route.shadows if s.share >= 1.0 or rng.random() < s.share]
        if not drawn:
            return await self._forward(route, variant, body, forward)
        capture, record = route.capture, self.mirror.record
        event_id = None
        if (
            capture is not None
            and record is not None
            and (capture.percentage >= 100 or rng.random() * 100.0 < capture.percentage)
        ):
            event_id = str(uuid.uuid4())
        inference_id = headers.get("x-amzn-sagemaker-inference-id")
        request_type = headers.get("content-type")
        started = time.perf_counter_ns()
        try:
            result = await self._forward(route, variant, body, forward)
        except ModelError as exc:
            if event_id is not None and capture is not None and record is not None:
                latency_us = (time.perf_counter_ns() - started) // 1000
                record(
                    Recorded(
                        capture, route.name, variant.name, event_id, inference_id, body,
                        request_type, exc.original_message.encode(), "text/plain",
                        exc.original_status, latency_us,
                    )
                )  # fmt: skip
            raise
        finally:
            for shadow in drawn:
                self.mirror.send(route.name, shadow, body, forward, capture, event_id, inference_id)
        if event_id is not None and capture is not None and record is not None:
            record(
                Recorded(
                    capture, route.name, variant.name, event_id, inference_id, body,
                    request_type, result.body, result.content_type, result.status,
                    result.model_latency_us,
                )
            )  # fmt: skip
        if record is not None:
            result.capture = None  # sampled here (both halves or neither): not again after
        return result

    async def _forward(
        self,
        route: EndpointRoute,
        variant: VariantRoute,
        body: bytes,
        forward: list[tuple[str, str]],
    ) -> Invocation:
        """Send the request to one of the variant's instances; its answer or a ModelError."""
        endpoint = route.name
        measured = self.metrics.variant(endpoint, variant.name) if self.metrics else None
        tried: set[str] = set()  # instance ids: a route published anew has new Target objects
        while True:
            candidates = [t for t in variant.targets if t.instance_id not in tried]
            if not candidates:
                # Every instance refused the connection. If the route changed meanwhile (an
                # update or a rollback stopped the instances this request was routed to while
                # it waited), the request goes to the variant's instances now.
                current = self.table.get(endpoint)
                replaced = current.variants.get(variant.name) if current is not None else None
                if current is not route and replaced is not None:
                    assert current is not None
                    route, variant = current, replaced
                    continue
                raise ModelNotReadyException(
                    f"No instance of variant {variant.name} accepted the request."
                )
            target = least_outstanding(candidates, self._rng)
            tried.add(target.instance_id)
            target.outstanding += 1
            started = time.perf_counter_ns()
            try:
                response = await self._send(target, body, forward)
            except UpstreamConnectError:
                # Nothing was sent: another instance may take it. Stop routing to this one.
                variant.targets = [t for t in variant.targets if t is not target]
                self._on_unreachable(target.instance_id)
                continue
            except TimeoutError:
                if measured:
                    measured.lost()
                raise ModelError(
                    "Received server error (504) from primary with message "
                    '"The model did not answer within the invocation timeout.".',
                    504,
                    "timeout",
                ) from None
            except UpstreamLost as exc:
                if measured:
                    measured.lost()
                # It may be dead (a port proxy, like Docker's, accepts for a container that is
                # gone): have it checked now rather than at the next periodic health check.
                self._on_unreachable(target.instance_id)
                raise ModelError(
                    "Received server error (502) from primary with message "
                    f'"The connection to the model container was lost: {exc}".',
                    502,
                    "connection lost",
                ) from None
            finally:
                target.outstanding -= 1
            latency_us = (time.perf_counter_ns() - started) // 1000
            if measured:
                measured.answered(response.status, latency_us)
            if response.status >= 400:
                text = response.body[:_MAX_ORIGINAL_MESSAGE].decode("utf-8", "replace")
                kind = "client" if response.status < 500 else "server"
                raise ModelError(
                    f"Received {kind} error ({response.status}) from primary with message "
                    f'"{text}".',
                    response.status,
                    text,
                )
            attributes = response.headers.get(b"x-amzn-sagemaker-custom-attributes")
            return Invocation(
                status=response.status,
                body=response.body,
                content_type=response.headers.get(b"content-type", b"application/json").decode(
                    "latin-1"
                ),
                variant=variant.name,
                custom_attributes=attributes.decode("latin-1") if attributes else None,
                model_latency_us=latency_us,
                capture=route.capture,
            )
