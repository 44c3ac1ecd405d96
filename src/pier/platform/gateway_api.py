"""The public gateway: endpoints behind API keys, usage plans, CORS and OpenAPI docs.

    POST    /api/v1/{endpoint}/predict      the endpoint's answer (MLflow /invocations bodies
                                            and content types), for a key in `x-api-key`
    OPTIONS /api/v1/{endpoint}/predict      CORS preflight (origins set per endpoint)
    GET     /api/v1/{endpoint}/openapi.json one endpoint's OpenAPI 3.1 document
    GET     /api/openapi.json               every public endpoint's
    GET     /api/docs                       Swagger UI, served from the swagger-ui-py package
                                            (no CDN)
    POST    /pier/gateway/sync              (SigV4, pier's own) write usage now and reload
                                            keys and CORS from the store: `pier keys` calls
                                            it after a change, so a revoked key stops at once

Errors are API Gateway's: ``{"message": ...}``: 403 without a valid key (or for an endpoint
the key may not call), 404 for an endpoint that has no published route, 429 with Retry-After
over the key's rate or quota. The model's own 4xx answers keep their status (the model's
message); a model that failed is a 424 with its message (SageMaker's ModelError: the model's
failure, not the gateway's), one without a healthy instance a 503, a timeout 504.

The predict route calls the runtime API's invoke path (RuntimeApi.invoke: the router, then
its metrics and data capture), so a gateway call is an invocation like any other. Per
request it adds a dict look-up and an HMAC for the key (pier.control.api_keys), the usage
plan's bucket and counts (pier.control.usage_plans), and a log line written after the answer:
key id, endpoint, status, latency; never the key.

Keys and CORS settings are read from the store into memory when the gateway starts, on
`/pier/gateway/sync`, and every `flush_s` seconds, when the usage counts are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

import orjson

from pier.contract.asgi import Headers, Scope, json_headers
from pier.control.api_keys import KeyRing
from pier.control.usage_plans import Limiter, retry_after
from pier.errors import (
    ModelError,
    ModelNotReadyException,
    PierError,
    RuntimeValidationError,
    ValidationException,
)
from pier.platform.api import Request, Response
from pier.platform.gateway_openapi import ModelSchema, document, model_schema
from pier.platform.runtime_api import MAX_INVOKE_BYTES, RuntimeApi
from pier.router.table import RoutingTable
from pier.store.api_keys import ApiKeyStore, StoredKey

__all__ = ["GatewayApi", "GatewayError", "GatewaySyncApi"]

log = logging.getLogger("pier.gateway")
_V1 = "/api/v1/"
_PREDICT = "/predict"
_OPENAPI = "/openapi.json"
_DOCS = "/api/docs"
_JSON = (b"content-type", b"application/json")
_ALLOWED_HEADERS = b"content-type, accept, x-api-key"
# Swagger UI's files as the swagger-ui-py package ships them (read once, kept in memory).
_ASSETS = {
    "swagger-ui.css": b"text/css",
    "swagger-ui-bundle.js": b"text/javascript",
    "swagger-ui-standalone-preset.js": b"text/javascript",
    "favicon-32x32.png": b"image/png",
}


class GatewayError(PierError):
    """An error the gateway answers as ``{"message": ...}`` with its status (and headers)."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = str(status)
        self.headers = headers or []


def _forbidden() -> GatewayError:
    return GatewayError(403, "Forbidden")


def _public(err: PierError) -> GatewayError:
    """Any error on the predict path, as the gateway words it."""
    if isinstance(err, GatewayError):
        return err
    if isinstance(err, ModelError):
        if 400 <= err.original_status < 500:
            return GatewayError(err.original_status, _model_message(err.original_message))
        if err.original_status == 504:
            return GatewayError(504, "The model did not answer in time.")
        # The model's own failure (its predict raised), not the gateway's: SageMaker's runtime
        # answers it as 424 ModelError, and so does the gateway, with the model's message.
        return GatewayError(424, "The model failed: " + _model_message(err.original_message))
    if isinstance(err, ModelNotReadyException):
        return GatewayError(503, "The endpoint has no healthy instance.", [(b"retry-after", b"1")])
    if isinstance(err, RuntimeValidationError):  # its route left between the check and here
        return GatewayError(404, "No such endpoint.")
    if err.status < 500:
        return GatewayError(err.status, err.message)
    return GatewayError(500, "Internal server error; see the platform log.")


def _model_message(original: str) -> str:
    """The message of the model server's JSON error (MLflow's shape), else its text."""
    with contextlib.suppress(ValueError):
        data = orjson.loads(original)
        message = data.get("message") if isinstance(data, dict) else None
        if isinstance(message, str):
            return message
    return original or "The model refused the input."


def _asset_dir() -> Path:
    return Path(str(resources.files("swagger_ui"))) / "static"


class GatewayApi:
    """The public routes (this module's docstring); `start` and `aclose` run its upkeep."""

    max_body = MAX_INVOKE_BYTES
    signing_service = None  # API keys, checked in handle

    def __init__(
        self,
        runtime: RuntimeApi,
        table: RoutingTable,
        store: ApiKeyStore,
        server_secret: bytes,
        model_of: Callable[[str], Path | None],
        flush_s: float = 5.0,
        limiter: Limiter | None = None,
    ) -> None:
        self._runtime = runtime
        self._table = table
        self._store = store
        self._keys = KeyRing(server_secret)
        self._limiter = limiter or Limiter()
        self._cors: dict[str, frozenset[str]] = {}
        self._model_of = model_of
        self._schemas: dict[tuple[str, Path | None], ModelSchema] = {}  # per deployed model
        self._flush_s = flush_s
        self._task: asyncio.Task[None] | None = None
        self._assets: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------------- upkeep
    async def start(self) -> None:
        """Load keys, CORS settings and this period's usage; then keep them in step."""
        await asyncio.to_thread(self._restore)
        self._task = asyncio.create_task(self._upkeep(), name="pier-gateway")

    async def aclose(self) -> None:
        """Stop the upkeep and write the usage counted so far."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sync()

    def _restore(self) -> None:
        day, month = self._limiter.periods()
        self._limiter.restore(self._store.usage([day, month]))
        self._reload()

    def _reload(self) -> None:
        keys = self._store.list_keys(include_revoked=True)
        self._keys.replace(keys)
        for key in keys:
            if key.revoked_at is not None:
                self._limiter.forget(key.key_id)
        self._cors = {e: frozenset(o) for e, o in self._store.cors().items()}

    async def sync(self) -> None:
        """Write the usage counted since the last time, then reload keys and CORS."""
        async with self._lock:
            counts = self._limiter.dirty_counts()
            await asyncio.to_thread(self._store.save_usage, counts)
            await asyncio.to_thread(self._reload)

    async def _upkeep(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.sync()
            except Exception:  # the store may be away for a while: keep serving, say so
                log.exception("gateway: writing usage or reloading keys failed")

    # ------------------------------------------------------------------------ the Api
    def matches(self, scope: Scope) -> bool:
        """Everything under /api/ (unknown routes there get the gateway's 404)."""
        path: str = scope["path"]
        return path.startswith("/api/")

    def operation(self, request: Request) -> str | None:
        """None: not SigV4-signed; API keys are checked in `handle`."""
        return None

    def too_large(self) -> PierError:
        return GatewayError(413, f"The body is larger than {MAX_INVOKE_BYTES} bytes.")

    def error(self, err: PierError) -> Response:
        """`err` as `{"message"}` with the gateway's status for it (`_public`)."""
        public = _public(err)
        body = orjson.dumps({"message": public.message})
        return Response(public.status, body, [_JSON, *public.headers])

    async def handle(self, request: Request) -> Response:
        """Route by path and method (the module's table); raise GatewayError to refuse."""
        path, method = request.path, request.method
        if path.startswith(_V1) and path.endswith(_PREDICT):
            name = unquote(path[len(_V1) : -len(_PREDICT)])
            if method == "POST":
                return await self._predict(request, name)
            if method == "OPTIONS":
                return self._preflight(request, name)
            raise GatewayError(
                405,
                f"{method} is not allowed here; POST a body to predict.",
                [(b"allow", b"POST, OPTIONS")],
            )
        if method != "GET":
            raise GatewayError(405, f"{method} is not allowed here.", [(b"allow", b"GET")])
        if path == "/api/openapi.json":
            return await self._openapi(request, sorted(self._table.names()))
        if path.startswith(_V1) and path.endswith(_OPENAPI):
            name = unquote(path[len(_V1) : -len(_OPENAPI)])
            if self._table.get(name) is None:
                raise GatewayError(404, "No such endpoint.")
            return await self._openapi(request, [name])
        if path in (_DOCS, _DOCS + "/"):
            return Response(200, _swagger_page(), [(b"content-type", b"text/html; charset=utf-8")])
        if path.startswith(_DOCS + "/") and path[len(_DOCS) + 1 :] in _ASSETS:
            return await self._asset(path[len(_DOCS) + 1 :])
        raise GatewayError(404, "Not Found")

    # ----------------------------------------------------------------------- predict
    async def _predict(self, request: Request, name: str) -> Response:
        cors = self._cors_headers(request, name)
        key: StoredKey | None = None
        try:
            presented = request.headers.get("x-api-key")
            key = self._keys.check(presented) if presented else None
            if key is None or (key.endpoints is not None and name not in key.endpoints):
                raise _forbidden()
            route = self._table.get(name)
            if route is None:
                raise GatewayError(404, "No such endpoint.")
            if route.waiting_to_restore():  # not served, so not counted against the quota
                raise GatewayError(
                    503,
                    "The endpoint is starting again after a platform restart. Retry shortly.",
                    [(b"retry-after", b"1")],
                )
            wait = self._limiter.admit(key, name)
            if wait is not None:
                raise GatewayError(
                    429,
                    "Too Many Requests",
                    [(b"retry-after", str(retry_after(wait)).encode())],
                )
            answer = await self._runtime.invoke(name, request, None)
        except PierError as err:
            public = _public(err)
            if public.status >= 500:
                log.error("gateway %s: %s (%s)", name, err.message, type(err).__name__)
            body = orjson.dumps({"message": public.message})
            response = Response(public.status, body, [_JSON, *public.headers, *cors])
            response.after = partial(self._logged, request, name, key, public.status, None)
            return response
        answer.headers.extend(cors)
        answer.after = partial(self._logged, request, name, key, 200, answer.after)
        return answer

    def _logged(
        self,
        request: Request,
        name: str,
        key: StoredKey | None,
        status: int,
        then: Callable[[], None] | None,
    ) -> None:
        if then is not None:
            then()
        latency_ms = (time.perf_counter_ns() - request.received_ns) / 1e6
        # The key id only of a key that checked out: anything else a client sent is not ours
        # to write down (it could be a mistyped secret).
        log.info(
            "gateway key=%s endpoint=%s status=%d latency_ms=%.2f",
            key.key_id if key is not None else "-",
            name,
            status,
            latency_ms,
        )

    # -------------------------------------------------------------------------- CORS
    def _cors_headers(self, request: Request, name: str) -> Headers:
        origin = request.headers.get("origin")
        allowed = self._cors.get(name)
        if origin is None or allowed is None or not (origin in allowed or "*" in allowed):
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]

    def _preflight(self, request: Request, name: str) -> Response:
        cors = self._cors_headers(request, name)
        if not cors:
            raise GatewayError(403, "CORS: this origin may not call this endpoint.")
        return Response(
            204,
            b"",
            [
                *cors,
                (b"access-control-allow-methods", b"POST, OPTIONS"),
                (b"access-control-allow-headers", _ALLOWED_HEADERS),
                (b"access-control-max-age", b"600"),
            ],
        )

    # ----------------------------------------------------------------------- OpenAPI
    async def _openapi(self, request: Request, names: list[str]) -> Response:
        models = await asyncio.to_thread(self._model_schemas, names)
        host = request.headers.get("host")
        doc = document(models, f"http://{host}" if host else None)
        return Response(200, orjson.dumps(doc), [_JSON])

    def _model_schemas(self, names: list[str]) -> dict[str, ModelSchema]:
        out = {}
        for name in names:
            try:
                model_dir = self._model_of(name)
            except Exception as exc:  # a model that cannot be read is documented as open
                log.warning("gateway: no model signature for %s: %s", name, exc)
                model_dir = None
            cached = self._schemas.get((name, model_dir))
            if cached is None:
                cached = self._schemas[(name, model_dir)] = model_schema(model_dir)
            out[name] = cached
        return out

    async def _asset(self, name: str) -> Response:
        body = self._assets.get(name)
        if body is None:
            body = self._assets[name] = await asyncio.to_thread((_asset_dir() / name).read_bytes)
        headers = [(b"content-type", _ASSETS[name]), (b"cache-control", b"max-age=86400")]
        return Response(200, body, headers)


def _swagger_page() -> bytes:
    title = html.escape("pier gateway")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="/api/docs/favicon-32x32.png">
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "/api/openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout", deepLinking: true}});
</script></body></html>
""".encode()


class GatewaySyncApi:
    """POST /pier/gateway/sync (SigV4): usage written, keys and CORS reloaded, now."""

    max_body = 1024
    signing_service = "sagemaker"
    PATH = "/pier/gateway/sync"

    def __init__(self, gateway: GatewayApi) -> None:
        self._gateway = gateway

    def matches(self, scope: Scope) -> bool:
        return bool(scope["path"] == self.PATH)

    def operation(self, request: Request) -> str | None:
        """SyncGateway: a write (it reloads keys and writes usage), pier.platform.access."""
        return "SyncGateway"

    def too_large(self) -> PierError:
        return ValidationException("The request body is too large.")

    async def handle(self, request: Request) -> Response:
        if request.method != "POST":
            raise ValidationException(f"No such pier route: {request.method} {self.PATH}.")
        await self._gateway.sync()
        return Response(200, b"{}", [_JSON])

    def error(self, err: PierError) -> Response:
        body = orjson.dumps({"__type": err.code, "message": err.message})
        return Response(err.status, body, json_headers(err.code))  # JSON 1.1's shape
