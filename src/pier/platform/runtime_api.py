"""SageMaker's runtime API: POST /endpoints/{name}/invocations (InvokeEndpoint).

The hot path: the body is forwarded untouched (pier.router), never parsed here. After the
answer is written, the router counts OverheadLatency and data capture queues the pair (a
random draw and an append; encoding and I/O happen in capture's writer). With durable capture
(PIER_CAPTURE_DURABLE), the pair is written before the answer goes out instead.

Errors are sagemaker-runtime's: ``{"ErrorCode": code, "message": ...}`` with
``x-amzn-ErrorType``; a ModelError (the container answered 4xx/5xx) adds
``OriginalStatusCode`` and ``OriginalMessage``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from urllib.parse import unquote

import orjson

from pier.contract.asgi import Scope, json_headers
from pier.errors import EndpointNotRouted, ModelError, PierError, RuntimeValidationError
from pier.monitor.capture.capture import Capturer
from pier.platform.api import Request, Response
from pier.router.invoke import Invocation, Router
from pier.router.mirror import Record, Recorded
from pier.store.db import Sessions
from pier.store.hosting import HostingStore

#: An endpoint's stored status and FailureReason, None when it does not exist (blocking).
StatusOf = Callable[[str], tuple[str, str | None] | None]

MAX_INVOKE_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
_PREFIX = "/endpoints/"
_SUFFIX = "/invocations"


class RuntimeApi:
    max_body = MAX_INVOKE_BYTES
    signing_service = "sagemaker"

    def __init__(
        self, router: Router, capturer: Capturer | None, status_of: StatusOf | None = None
    ) -> None:
        self._router = router
        self._capturer = capturer
        self._durable = capturer is not None and capturer.durable
        self._status_of = status_of

    def matches(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return scope["method"] == "POST" and path.startswith(_PREFIX) and path.endswith(_SUFFIX)

    def operation(self, request: Request) -> str | None:
        return "InvokeEndpoint"

    def too_large(self) -> PierError:
        return RuntimeValidationError(
            f"Request payload exceeds the limit of {MAX_INVOKE_BYTES} bytes."
        )

    async def handle(self, request: Request) -> Response:
        name = unquote(request.scope["path"][len(_PREFIX) : -len(_SUFFIX)])
        return await self.invoke(
            name, request, request.headers.get("x-amzn-sagemaker-target-variant")
        )

    async def invoke(self, name: str, request: Request, target_variant: str | None) -> Response:
        """InvokeEndpoint of endpoint `name` with the request's body and headers: the
        model's answer, whose `after` records metrics and offers data capture. Raises the
        runtime's errors (RuntimeValidationError, ModelError, ModelNotReadyException). The
        gateway (pier.platform.gateway_api) calls this too: one invoke path."""
        try:
            result = await self._router.invoke(name, request.body, request.headers, target_variant)
        except EndpointNotRouted as exc:
            raise await self._not_routed(name, exc) from None
        out = [
            (b"content-type", result.content_type.encode()),
            (b"x-amzn-invoked-production-variant", result.variant.encode()),
        ]
        if result.custom_attributes is not None:
            out.append((b"x-amzn-sagemaker-custom-attributes", result.custom_attributes.encode()))
        if self._durable and result.capture is not None:
            assert self._capturer is not None
            headers = request.headers
            await self._capturer.capture(
                result.capture,
                name,
                result.variant,
                headers.get("x-amzn-sagemaker-inference-id"),
                request.body,
                headers.get("content-type"),
                result.body,
                result.content_type,
            )
        return Response(200, result.body, out, partial(self._answered, request, name, result))

    async def _not_routed(self, name: str, exc: EndpointNotRouted) -> PierError:
        """Why an endpoint has no route, when it exists: Failed (and why), or not yet (or no
        longer) InService. Off the hot path: only requests that fail anyway get here."""
        if self._status_of is None:
            return exc
        stored = await asyncio.to_thread(self._status_of, name)
        if stored is None:
            return exc  # it does not exist: SageMaker's words
        status, reason = stored
        if status == "Failed":
            return RuntimeValidationError(
                f"Endpoint {name} is Failed and serves no request: {reason or 'no reason given'}"
                " (fix the cause, then UpdateEndpoint or delete it)."
            )
        return RuntimeValidationError(
            f"Endpoint {name} is {status}: it serves requests once it is InService."
        )

    def _answered(self, request: Request, name: str, result: Invocation) -> None:
        self._router.answered(name, result, request.received_ns)
        if result.capture is not None and self._capturer is not None and not self._durable:
            # Queued only (a random draw and an append): encoding and I/O happen elsewhere.
            headers = request.headers
            self._capturer.offer(
                result.capture,
                name,
                result.variant,
                headers.get("x-amzn-sagemaker-inference-id"),
                request.body,
                headers.get("content-type"),
                result.body,
                result.content_type,
            )

    def error(self, err: PierError) -> Response:
        payload: dict[str, object] = {"ErrorCode": err.code, "message": err.message}
        if isinstance(err, ModelError):
            payload["OriginalStatusCode"] = err.original_status
            payload["OriginalMessage"] = err.original_message
        return Response(err.status, orjson.dumps(payload), json_headers(err.code))


def stored_status(sessions: Sessions) -> StatusOf:
    """The state store's answer to `RuntimeApi`'s question: an endpoint's status and reason."""
    store = HostingStore(sessions)

    def status_of(name: str) -> tuple[str, str | None] | None:
        with store.read() as tx:
            row = tx.endpoint(name)
            return None if row is None else (str(row.status), row.failure_reason)

    return status_of


def capture_pairs(capturer: Capturer) -> Record:
    """The router's recorder of mirrored requests (pier.router.mirror): into data capture."""

    def record(r: Recorded) -> None:
        capturer.offer_paired(
            r.capture, r.endpoint, r.variant, r.event_id, r.inference_id, r.request,
            r.request_type, r.response, r.response_type, r.status, r.model_latency_us,
        )  # fmt: skip

    return record


__all__ = ["MAX_INVOKE_BYTES", "RuntimeApi", "capture_pairs", "stored_status"]
