"""The platform's HTTP surface: SageMaker's control API and runtime API on one port.

POST /                                  control API (JSON 1.1, X-Amz-Target: SageMaker.<Op>;
                                        platform.sagemaker_api)
POST /service/GraniteServiceVersion20100801/operation/<Op>
                                        CloudWatch API (RPC v2 CBOR; also JSON 1.0 on POST /
                                        with X-Amz-Target: GraniteServiceVersion20100801.<Op>;
                                        platform.cloudwatch_api)
POST /endpoints/{name}/invocations      runtime API (InvokeEndpoint; platform.runtime_api)
POST /endpoints/{name}/ground-truth     labels for captured inferences (pier's own, SigV4;
                                        platform.ground_truth_api)
POST /pier/monitoring-schedules/{name}/executions, GET .../{name}/report
                                        run a monitoring schedule now, its latest results
                                        (pier's own, SigV4; platform.monitoring_api)
POST /api/v1/{name}/predict, GET /api/openapi.json, GET /api/docs, ...
                                        the public gateway: API keys in x-api-key, usage
                                        plans, CORS, OpenAPI (platform.gateway_api)
POST /pier/gateway/sync                 reload API keys, write usage now (SigV4)
GET  /ping                              the platform is up
GET  /metrics                           Prometheus: SageMaker's endpoint metrics (router.metrics)
                                        and data capture's (monitor.capture); open, or a bearer
                                        token (PIER_METRICS_TOKEN)

The APIs verify AWS Signature Version 4 (the gateway: its API keys). A plain ASGI app, like
the model server's: the invoke path is hot, and these are a few fixed routes. `PlatformApp`
tries its APIs in order and serves a request with the first that matches, through the one
request path (pier.platform.api.serve); pier.platform.server builds the list.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import SecretStr

from pier.contract.asgi import Receive, Scope, Send, respond
from pier.errors import AwsError, PierError, SerializationException
from pier.platform.api import Api, Authenticate, Request, Response, Trail, serve
from pier.platform.sagemaker_api import error_response

_PROBE_BYTES = 64 * 1024


class NoSuchRoute(AwsError):
    status = 404
    code = "UnknownOperationException"


class PlatformApp:
    def __init__(
        self, apis: Sequence[Api], authenticate: Authenticate, trail: Trail | None = None
    ) -> None:
        self.apis = tuple(apis)
        self.authenticate = authenticate
        self.trail = trail  # the audit trail (pier.platform.audit_trail); None: none kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        for api in self.apis:
            if api.matches(scope):
                await serve(api, scope, receive, send, self.authenticate, self.trail)
                return
        answer = error_response(NoSuchRoute(f"No such route: {scope['method']} {scope['path']}"))
        await respond(send, answer.status, answer.body, answer.headers)


class Ping:
    """GET /ping: the platform is up (unsigned, as a load balancer probes it)."""

    max_body = _PROBE_BYTES
    signing_service = None

    def matches(self, scope: Scope) -> bool:
        return bool(scope["method"] == "GET" and scope["path"] == "/ping")

    def operation(self, request: Request) -> str | None:
        return None  # unsigned: no operation to authorize

    def too_large(self) -> PierError:
        return SerializationException("The request body is too large.")

    async def handle(self, request: Request) -> Response:
        return Response(200, b"{}", [(b"content-type", b"application/json")])

    def error(self, err: PierError) -> Response:
        return error_response(err)


class MetricsUnauthorized(AwsError):
    status = 401
    code = "UnauthorizedException"


class Metrics(Ping):
    """GET /metrics: Prometheus' text format. Not SigV4-signed, as Prometheus scrapes it: open
    when `token` is None, else it asks for ``Authorization: Bearer <token>`` (PIER_METRICS_TOKEN),
    compared in constant time."""

    def __init__(self, registry: CollectorRegistry, token: SecretStr | None = None) -> None:
        self.registry = registry
        self._expected = None if token is None else f"Bearer {token.get_secret_value()}".encode()

    def matches(self, scope: Scope) -> bool:
        return bool(scope["method"] == "GET" and scope["path"] == "/metrics")

    async def handle(self, request: Request) -> Response:
        if self._expected is not None:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self._expected):
                raise MetricsUnauthorized(
                    "GET /metrics needs 'Authorization: Bearer <token>' with the platform's "
                    "PIER_METRICS_TOKEN (docs/security.md)."
                )
        text = await asyncio.to_thread(generate_latest, self.registry)
        return Response(200, text, [(b"content-type", CONTENT_TYPE_LATEST.encode())])


__all__ = ["Metrics", "MetricsUnauthorized", "NoSuchRoute", "Ping", "PlatformApp"]
