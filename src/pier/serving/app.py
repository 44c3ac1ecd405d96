"""The HTTP layer: a plain ASGI app speaking the SageMaker container contract.

No web framework on purpose: the routes are five and fixed, and every microsecond here is paid
on every request (a framework's routing and request objects cost more than our whole handler).

GET /ping                  200 once the model is loaded and warmed up, 503 before
POST /invocations          predictions (JSON, CSV, Parquet in; JSON, CSV, JSON Lines out)
POST /pier/invocations-bundle  several /invocations requests at once, from pier's router
                           (pier.contract.bundle)
GET /execution-parameters  SageMaker batch transform's question
GET /metrics               Prometheus text
GET /health, GET /version  as `mlflow models serve` has them
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import orjson

from pier import __version__
from pier.contract import bundle
from pier.contract import content_types as ct
from pier.contract.asgi import Receive, Scope, Send, read_body, respond
from pier.errors import (
    BadRequest,
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    PierError,
    RequestTimeout,
    UnsupportedMediaType,
)
from pier.serving import codecs
from pier.serving.batching import Batcher
from pier.serving.inputs import Prepared
from pier.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pier.serving.metrics import ServerMetrics
from pier.serving.runtime import Runtime
from pier.settings import ServeSettings

log = logging.getLogger("pier.serving")


_JSON_HEADERS = [(b"content-type", b"application/json")]
_BUNDLE_HEADERS = [(b"content-type", bundle.CONTENT_TYPE.encode())]
#: A bundle's size limit: the router's bundles hold about pier.router.bundler.MAX_BYTES (4 MiB,
#: plus the request that crosses it), and every request in one keeps its own limit.
BUNDLE_LIMIT = 64 * 1024 * 1024


class ServerState:
    """What the app serves: filled in by the server once the model is loaded and warm."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.runtime: Runtime | None = None
        self.batcher: Batcher | None = None
        self.ready = False
        self.stuck = False
        #: What the server does with a worker whose predict call is stuck (server.py: exit).
        self.give_up: Callable[[], None] = lambda: None

    @property
    def stuck_after_s(self) -> float:
        """How long one predict call may run before the worker is given up (default: the
        request timeout plus the larger of the timeout and 60 s, so that a slow call just past
        a short timeout is never taken for a stuck one)."""
        s = self.settings
        if s.stuck_seconds is not None:
            return s.stuck_seconds
        return s.timeout_seconds + max(s.timeout_seconds, 60.0)

    def _stuck(self, running_s: float) -> None:
        """Policy for a predict call that does not end: it cannot be interrupted and holds the
        worker's only predict thread, so every later request would time out behind it. /ping
        answers 503 from now on and the worker is given up (the server exits non-zero; the
        platform, or SageMaker, replaces the instance; a supervisor restarts `pier serve`)."""
        self.stuck = True
        self.ready = False
        log.error(
            "a predict call has run for %.0f s (request timeout %g s, stuck after %g s): it "
            "cannot be interrupted and holds this worker; giving the worker up",
            running_s,
            self.settings.timeout_seconds,
            self.stuck_after_s,
        )
        self.give_up()

    async def attach(self, runtime: Runtime) -> None:
        """Start serving `runtime`: batcher up, warm-up requests through the whole path."""
        s = self.settings
        self.batcher = Batcher(
            runtime.predict,
            enabled=s.batching,
            max_rows=s.max_batch_rows,
            max_wait_s=s.max_batch_wait_ms / 1000,
            gather=s.batch_gather,
            observe=self.metrics.observe_batch,
            stuck_after_s=self.stuck_after_s,
            on_stuck=self._stuck,
        )
        await self.batcher.start()
        self.runtime = runtime
        for body, media in runtime.warmup_bodies():
            prepared = await _prepare(runtime, body, media)
            await self.batcher.submit(prepared)
        self.ready = True

    async def detach(self) -> None:
        self.ready = False
        if self.batcher is not None:
            await self.batcher.stop()


async def _prepare(runtime: Runtime, body: bytes, media: ct.MediaType) -> Prepared:
    if media.mime == ct.JSON:
        prepared = codecs.decode_json_fast(body, runtime.fast_schema)
        if prepared is not None:
            return prepared
    # MLflow's parsers build DataFrames: keep that off the event loop.
    return await asyncio.to_thread(runtime.decode, body, media)


def _check_content_type(header: str | None) -> ct.MediaType:
    """MLflow's rules, answered as JSON errors (MLflow answers 415 as text, or 500 if absent)."""
    if not header:
        raise UnsupportedMediaType(
            "Missing Content-Type header. This predictor only supports the following content "
            f"types: {list(ct.REQUEST_TYPES)}."
        )
    media = ct.parse_media_type(header)
    charset = media.params.get("charset", "utf-8").lower()
    if charset != "utf-8":
        raise UnsupportedMediaType("The scoring server only supports UTF-8")
    unexpected = set(media.params) - {"charset"}
    if unexpected:
        raise UnsupportedMediaType(
            f"Unrecognized content type parameters: {', '.join(sorted(unexpected))}."
        )
    if media.mime not in ct.REQUEST_TYPES:
        raise UnsupportedMediaType(
            "This predictor only supports the following content types: "
            f"{list(ct.REQUEST_TYPES)}. Got '{header}'."
        )
    return media


#: How MLflow 3.17 classifies the error codes pier's model server answers with
#: (mlflow.error_classification: ErrorClass.from_client_error_code, then SqlState); its scoring
#: server adds both to every JSON error. A table rather than a call, because MLflow may not be
#: imported yet when an error is written (quickload) and importing it then could deadlock with
#: the background loader; tests/serving/test_error_body.py checks it against MLflow's functions.
MLFLOW_CLASSIFICATION: dict[str, tuple[str, str]] = {
    "BAD_REQUEST": ("INVALID_PARAMETER_VALUE", "KAM00"),
    "INVALID_PARAMETER_VALUE": ("INVALID_PARAMETER_VALUE", "KAM00"),
    "ENDPOINT_NOT_FOUND": ("RESOURCE_NOT_FOUND", "KAM00"),
    "RESOURCE_DOES_NOT_EXIST": ("RESOURCE_NOT_FOUND", "KAM00"),
    "TEMPORARILY_UNAVAILABLE": ("CLIENT_INTERNAL_ERROR", "XXM00"),
    "INTERNAL_ERROR": ("CLIENT_INTERNAL_ERROR", "XXM00"),
}


def error_body(
    code: str, message: str, error_class: str | None = None, sqlstate: str | None = None
) -> bytes:
    """The model server's JSON error, as MLflow's scoring server writes it: `error_code`,
    `message`, then `sqlstate` and `error_class` (MLflow's own when MLflow raised the error,
    else its classification of `code`; absent for codes MLflow does not classify)."""
    if error_class is None and sqlstate is None:
        error_class, sqlstate = MLFLOW_CLASSIFICATION.get(code, (None, None))
    doc = {"error_code": code, "message": message}
    if sqlstate is not None:
        doc["sqlstate"] = sqlstate
    if error_class is not None:
        doc["error_class"] = error_class
    return orjson.dumps(doc)


def _error_body(err: PierError) -> bytes:
    return error_body(err.code, err.message, err.error_class, err.sqlstate)


def create_app(state: ServerState) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app over `state` (the server fills the state in; tests can too)."""
    settings = state.settings
    metrics = state.metrics
    exec_params = orjson.dumps(
        {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": settings.max_body_bytes // (1024 * 1024) or 1,
        }
    )

    timeout_message = (
        f"Request processing time exceeded the limit of {settings.timeout_seconds:g} s."
    )

    def _preflight(ctype: bytes | None, accept: bytes | None) -> tuple[ct.MediaType, str]:
        """What is checked before the body is read: readiness, Accept, Content-Type."""
        if not state.ready or state.runtime is None or state.batcher is None:
            raise ModelNotReady("The model is still loading; retry when GET /ping answers 200.")
        response_type = ct.choose_response_type(accept.decode("latin-1") if accept else None)
        media = _check_content_type(ctype.decode("latin-1") if ctype else None)
        return media, response_type

    async def _predict(media: ct.MediaType, response_type: str, body: bytes) -> bytes:
        """Decode, predict (batched with whatever else is queued), encode."""
        assert state.runtime is not None
        assert state.batcher is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.timeout_seconds
        prepared = None
        if media.mime == ct.JSON:
            prepared = codecs.decode_json_fast(body, state.runtime.fast_schema)
        if prepared is None:
            try:  # MLflow's parsers build DataFrames: off the event loop, within the limit
                prepared = await asyncio.wait_for(
                    asyncio.to_thread(state.runtime.decode, body, media),
                    deadline - loop.time(),
                )
            except TimeoutError:
                raise RequestTimeout(timeout_message) from None
        try:
            prediction = await state.batcher.submit(prepared, deadline)
        except RequestTimeout:
            raise RequestTimeout(timeout_message) from None
        if prepared.unwrap and response_type == ct.JSON:
            return codecs.dumps_json(codecs.to_jsonable(prediction))
        return codecs.encode(prediction, response_type)

    def _too_large() -> PayloadTooLarge:
        limit = settings.max_body_bytes
        return PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")

    async def invocations(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        try:
            declared = headers.get(b"content-length")
            if (
                declared is not None
                and declared.isdigit()
                and int(declared) > settings.max_body_bytes
            ):
                raise _too_large()
            media, response_type = _preflight(headers.get(b"content-type"), headers.get(b"accept"))
            body = await read_body(receive, settings.max_body_bytes)
            if body is None:
                raise _too_large()
            payload = await _predict(media, response_type, body)
        except PierError as err:
            await respond(send, err.status, _error_body(err), _JSON_HEADERS)
            metrics.observe_request(err.status, time.perf_counter() - started, err.code)
            return
        except ConnectionAbortedError:
            return
        except Exception:  # a bug of ours: log it, never show it
            log.exception("unexpected error in /invocations")
            internal = PierError("Internal error; see the server log.")
            await respond(send, 500, _error_body(internal), _JSON_HEADERS)
            metrics.observe_request(500, time.perf_counter() - started, internal.code)
            return
        await respond(send, 200, payload, [(b"content-type", response_type.encode())])
        metrics.observe_request(200, time.perf_counter() - started)

    async def bundled(item: bundle.BundledRequest) -> bundle.BundledAnswer:
        """One request of a bundle: checked and answered as /invocations answers it alone."""
        started = time.perf_counter()
        try:
            if len(item.body) > settings.max_body_bytes:
                raise _too_large()
            media, response_type = _preflight(item.content_type, item.accept)
            payload = await _predict(media, response_type, item.body)
        except PierError as err:
            metrics.observe_request(err.status, time.perf_counter() - started, err.code)
            return bundle.BundledAnswer(err.status, b"application/json", _error_body(err))
        except Exception:  # a bug of ours: log it, never show it
            log.exception("unexpected error in a bundled invocation")
            internal = PierError("Internal error; see the server log.")
            metrics.observe_request(500, time.perf_counter() - started, internal.code)
            return bundle.BundledAnswer(500, b"application/json", _error_body(internal))
        metrics.observe_request(200, time.perf_counter() - started)
        return bundle.BundledAnswer(200, response_type.encode(), payload)

    async def invocations_bundle(receive: Receive, send: Send) -> None:
        """POST BUNDLE_PATH (pier.contract.bundle): every request answered as if alone, all
        queued before the batcher takes its next batch (gather starts them in one step)."""
        try:
            data = await read_body(receive, BUNDLE_LIMIT)
        except ConnectionAbortedError:
            return
        try:
            if data is None:
                raise PayloadTooLarge(f"A bundle exceeds the limit of {BUNDLE_LIMIT} bytes.")
            try:
                items = bundle.decode_requests(data)
            except bundle.BundleError as exc:
                raise BadRequest(f"Malformed bundle: {exc}.") from None
        except PierError as err:
            await respond(send, err.status, _error_body(err), _JSON_HEADERS)
            return
        answers = await asyncio.gather(*(bundled(item) for item in items))
        await respond(send, 200, bundle.encode_answers(answers), _BUNDLE_HEADERS)

    async def get_route(path: str, send: Send) -> None:
        if path == "/ping" or path == "/health":
            if state.ready:
                await respond(send, 200, b"\n", _JSON_HEADERS)
            elif state.stuck:
                stuck = ModelNotReady("A predict call does not end: this worker is given up.")
                await respond(send, 503, _error_body(stuck), _JSON_HEADERS)
            else:
                loading = ModelNotReady("The model is loading.")
                await respond(send, 503, _error_body(loading), _JSON_HEADERS)
        elif path == "/execution-parameters":
            await respond(send, 200, exec_params, _JSON_HEADERS)
        elif path == "/metrics":
            await respond(
                send, 200, metrics.render(), [(b"content-type", METRICS_CONTENT_TYPE.encode())]
            )
        elif path == "/version":
            await respond(send, 200, __version__.encode(), _JSON_HEADERS)
        else:
            err = NotFound(f"No route {path}.")
            await respond(send, 404, _error_body(err), _JSON_HEADERS)

    get_paths = {"/ping", "/health", "/execution-parameters", "/metrics", "/version"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/invocations" and method == "POST":
            await invocations(scope, receive, send)
        elif path == bundle.BUNDLE_PATH and method == "POST":
            await invocations_bundle(receive, send)
        elif method in ("GET", "HEAD") and path in get_paths:
            await get_route(path, send)
        elif path == "/invocations" or path in get_paths:
            err: PierError = MethodNotAllowed(f"{method} is not allowed on {path}.")
            await respond(send, 405, _error_body(err), _JSON_HEADERS)
        else:
            err = NotFound(f"No route {path}.")
            await respond(send, 404, _error_body(err), _JSON_HEADERS)

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    # The server (server.py) owns loading and shutdown; the app has nothing to set up.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
