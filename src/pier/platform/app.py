"""The platform's HTTP surface: SageMaker's control API and runtime API on one port.

POST /                                  control API (JSON 1.1, X-Amz-Target: SageMaker.<Op>)
POST /service/GraniteServiceVersion20100801/operation/<Op>
                                        CloudWatch API (RPC v2 CBOR; also JSON 1.0 on POST /
                                        with X-Amz-Target: GraniteServiceVersion20100801.<Op>)
POST /endpoints/{name}/invocations      runtime API (InvokeEndpoint)
POST /endpoints/{name}/ground-truth     labels for captured inferences (pier's own, SigV4;
                                        platform.ground_truth_api)
POST /pier/monitoring-schedules/{name}/executions, GET .../{name}/report
                                        run a monitoring schedule now, its latest results
                                        (pier's own, SigV4; platform.monitoring_api)
GET  /ping                              the platform is up
GET  /metrics                           Prometheus: SageMaker's endpoint metrics (router.metrics)
                                        and data capture's (monitor.capture)

Both APIs verify AWS Signature Version 4. A plain ASGI app, like the model server's: the
invoke path is hot, and these are three fixed routes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pier.contract import cloudwatch as cw_wire
from pier.contract import sagemaker as api_shapes
from pier.contract.asgi import (
    Receive,
    Scope,
    Send,
    json_headers,
    read_body,
    request_headers,
    respond,
)
from pier.contract.sigv4 import Credentials, verify
from pier.control.cloudwatch_api import CloudWatchApi
from pier.control.monitoring_service import MonitoringService
from pier.control.service import HostingService
from pier.errors import (
    AwsError,
    InternalFailure,
    ModelError,
    PierError,
    RuntimeValidationError,
    SerializationException,
    UnknownOperationException,
)
from pier.monitor.capture.capture import Capturer
from pier.platform.ground_truth_api import GroundTruthApi, is_ground_truth
from pier.platform.monitoring_api import is_monitoring, monitoring_route
from pier.router.invoke import Router

log = logging.getLogger("pier.platform")


MAX_INVOKE_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
MAX_CONTROL_BYTES = 1024 * 1024
_AMZ_JSON = b"application/x-amz-json-1.1"
_INVOCATIONS_SUFFIX = "/invocations"


def _operation_method(operation: str) -> str:
    """CreateEndpointConfig -> create_endpoint_config."""
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class PlatformApp:
    def __init__(
        self,
        service: HostingService,
        router: Router,
        lookup: Callable[[str], Credentials | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        registry: CollectorRegistry | None = None,
        capturer: Capturer | None = None,
        ground_truth: GroundTruthApi | None = None,
        cloudwatch: CloudWatchApi | None = None,
        monitoring: MonitoringService | None = None,
    ) -> None:
        self.cloudwatch = cloudwatch
        self.registry = registry
        self.capturer = capturer
        self.ground_truth = ground_truth
        self.service = service
        self.router = router
        self.lookup = lookup
        self.clock = clock
        # SageMaker's monitoring-schedule operations, and pier's monitoring routes.
        self.monitoring = monitoring

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
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if method == "POST" and path.startswith(cw_wire.RPC_PATH_PREFIX):
                await self._cloudwatch(scope, receive, send, cw_wire.Protocol.CBOR)
            elif method == "POST" and path == "/" and _is_cloudwatch_json(scope):
                await self._cloudwatch(scope, receive, send, cw_wire.Protocol.JSON)
            elif method == "POST" and path == "/":
                await self._control(scope, receive, send)
            elif (
                method == "POST"
                and path.startswith("/endpoints/")
                and path.endswith(_INVOCATIONS_SUFFIX)
            ):
                await self._invoke(scope, receive, send)
            elif self.ground_truth is not None and is_ground_truth(method, path):
                await self.ground_truth(scope, receive, send, self._authenticate)
            elif self.monitoring is not None and is_monitoring(path):
                await monitoring_route(self.monitoring, scope, receive, send, self._authenticate)
            elif method == "GET" and path == "/ping":
                await respond(send, 200, b"{}", [(b"content-type", b"application/json")])
            elif method == "GET" and path == "/metrics" and self.registry is not None:
                text = await asyncio.to_thread(generate_latest, self.registry)
                await respond(send, 200, text, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
            else:
                err = UnknownOperationException(f"No such route: {method} {path}")
                err.status = 404
                await self._control_error(send, err)
        except ConnectionAbortedError:
            return

    # ----------------------------------------------------------------------------- control
    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        try:
            body = await read_body(receive, MAX_CONTROL_BYTES)
            if body is None:
                raise SerializationException("The request body is too large.")
            self._authenticate(scope, headers, body)
            operation = api_shapes.operation_from_target(headers.get("x-amz-target"))
            params = api_shapes.validate_input(operation, api_shapes.parse_body(body))
            handler = self._handler(operation)
            result = await asyncio.to_thread(handler, params)
            body_out = orjson.dumps(api_shapes.serialize_output(operation, result))
        except AwsError as err:
            await self._control_error(send, err)
            return
        except PierError as err:
            await self._control_error(send, _as_aws(err))
            return
        except Exception:
            log.exception("control API failure")
            await self._control_error(
                send, InternalFailure("Internal error; see the platform log.")
            )
            return
        await respond(send, 200, body_out, [(b"content-type", _AMZ_JSON)])

    def _handler(self, operation: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The method serving a SageMaker operation, looked up on each service in turn."""
        name = _operation_method(operation)
        for service in (self.service, self.monitoring):
            found = getattr(service, name, None) if service is not None else None
            if callable(found):
                handler: Callable[[dict[str, Any]], dict[str, Any]] = found
                return handler
        raise UnknownOperationException(f"pier's SageMaker API does not serve {operation} here.")

    async def _control_error(self, send: Send, err: AwsError) -> None:
        body = orjson.dumps({"__type": err.code, "message": err.message})
        headers = [
            (b"content-type", _AMZ_JSON),
            (b"x-amzn-errortype", err.code.encode()),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        ]
        await respond(send, err.status, body, headers)

    # -------------------------------------------------------------------------- cloudwatch
    async def _cloudwatch(
        self, scope: Scope, receive: Receive, send: Send, protocol: cw_wire.Protocol
    ) -> None:
        headers = request_headers(scope)
        try:
            body = await read_body(receive, MAX_CONTROL_BYTES)
            if body is None:
                raise SerializationException("The request body is too large.")
            self._authenticate(scope, headers, body, _CLOUDWATCH_SIGNING)
            if protocol is cw_wire.Protocol.CBOR:
                operation = cw_wire.operation_from_path(scope["path"])
            else:
                operation = cw_wire.operation_from_target(headers.get("x-amz-target"))
            if self.cloudwatch is None:
                raise UnknownOperationException("pier's CloudWatch API is not enabled here.")
            handler = self.cloudwatch.handler(operation)
            params = cw_wire.validate_input(operation, cw_wire.decode_body(body, protocol))
            result = await asyncio.to_thread(handler, params)
            body_out = cw_wire.encode_output(operation, result, protocol)
        except AwsError as err:
            await self._cloudwatch_error(send, err, protocol)
            return
        except PierError as err:
            await self._cloudwatch_error(send, _as_aws(err), protocol)
            return
        except Exception:
            log.exception("CloudWatch API failure")
            failure = cw_wire.InternalServiceError("Internal error; see the platform log.")
            await self._cloudwatch_error(send, failure, protocol)
            return
        out = [(b"content-type", protocol.content_type), *_cloudwatch_headers(protocol)]
        await respond(send, 200, body_out, out)

    async def _cloudwatch_error(
        self, send: Send, err: AwsError, protocol: cw_wire.Protocol
    ) -> None:
        body, extra = cw_wire.encode_error(err, protocol)
        headers = [(b"content-type", protocol.content_type), *_cloudwatch_headers(protocol)]
        await respond(send, err.status, body, headers + extra)

    # ----------------------------------------------------------------------------- runtime
    async def _invoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_ns = time.perf_counter_ns()
        headers = request_headers(scope)
        raw_path: str = scope["path"]
        name = unquote(raw_path[len("/endpoints/") : -len(_INVOCATIONS_SUFFIX)])
        try:
            body = await read_body(receive, MAX_INVOKE_BYTES)
            if body is None:
                raise RuntimeValidationError(
                    f"Request payload exceeds the limit of {MAX_INVOKE_BYTES} bytes."
                )
            self._authenticate(scope, headers, body)
            result = await self.router.invoke(
                name, body, headers, headers.get("x-amzn-sagemaker-target-variant")
            )
        except ModelError as err:
            payload = {
                "ErrorCode": err.code,
                "message": err.message,
                "OriginalStatusCode": err.original_status,
                "OriginalMessage": err.original_message,
            }
            await respond(send, err.status, orjson.dumps(payload), json_headers(err.code))
            return
        except AwsError as err:
            await respond(send, err.status, _runtime_error_body(err), json_headers(err.code))
            return
        except Exception:
            log.exception("runtime API failure")
            failure = InternalFailure("Internal error; see the platform log.")
            body = _runtime_error_body(failure)
            await respond(send, failure.status, body, json_headers(failure.code))
            return
        out = [
            (b"content-type", result.content_type.encode()),
            (b"x-amzn-invoked-production-variant", result.variant.encode()),
        ]
        if result.custom_attributes is not None:
            out.append((b"x-amzn-sagemaker-custom-attributes", result.custom_attributes.encode()))
        await respond(send, 200, result.body, out)
        self.router.answered(name, result, received_ns)
        route = self.router.table.get(name)
        if route is not None and route.capture is not None and self.capturer is not None:
            # Queued only (a random draw and an append): encoding and I/O happen elsewhere.
            self.capturer.offer(
                route.capture,
                name,
                result.variant,
                headers.get("x-amzn-sagemaker-inference-id"),
                body,
                headers.get("content-type"),
                result.body,
                result.content_type,
            )

    # -------------------------------------------------------------------------------- auth
    def _authenticate(
        self,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        services: frozenset[str] = frozenset({"sagemaker"}),
    ) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        verify(
            scope["method"],
            raw_path.decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            self.lookup,
            self.clock(),
            services=services,
        )


_CLOUDWATCH_SIGNING = frozenset({"monitoring"})  # CloudWatch's SigV4 signing name
_CLOUDWATCH_TARGET = (cw_wire.TARGET_PREFIX + ".").encode()


def _is_cloudwatch_json(scope: Scope) -> bool:
    """POST / carrying X-Amz-Target: GraniteServiceVersion20100801.<Op> (CloudWatch, JSON 1.0)."""
    return any(
        k.lower() == b"x-amz-target" and v.startswith(_CLOUDWATCH_TARGET)
        for k, v in scope["headers"]
    )


def _cloudwatch_headers(protocol: cw_wire.Protocol) -> list[tuple[bytes, bytes]]:
    out = [(b"x-amzn-requestid", str(uuid.uuid4()).encode())]
    if protocol is cw_wire.Protocol.CBOR:
        out.append((b"smithy-protocol", b"rpc-v2-cbor"))
    return out


def _as_aws(err: PierError) -> AwsError:
    aws = AwsError(err.message)
    aws.status, aws.code = err.status, err.code
    return aws


def _runtime_error_body(err: AwsError) -> bytes:
    return orjson.dumps({"ErrorCode": err.code, "message": err.message})
