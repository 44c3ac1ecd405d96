"""The platform's HTTP protocol: InvokeEndpoint served without the ASGI request cycle.

Every request on the platform's port is parsed by uvicorn's httptools protocol (with JSON
HTTP-level errors, pier.serving.protocol). A request that `PlatformApp` would give to one of
the *fast* APIs (the runtime API's `POST /endpoints/{name}/invocations`) skips uvicorn's
per-request machinery: no RequestResponseCycle, no asyncio.Event per request, no ASGI message
round trips through flow control, no per-header regular expressions, and the response goes out
in ONE socket write (status line, headers and body; uvicorn writes head and body in two calls
and frames a body without Content-Length as chunked). Measured why: docs/benchmarks.md,
"Hosting" — uvicorn's cycle and the second write were a quarter of the platform's CPU per
routed request.

What it does NOT skip is the request path itself: the request is served by the very same
`pier.platform.api.serve` (body limit, SigV4, access control, the API's handler, error
mapping, the `after` callback with metrics and data capture, the audit trail), called with a
`receive` that hands over the buffered body and a `send` that collects the answer. So the fast
path answers as the ASGI path does by construction; tests/platform/test_invoke_protocol.py
compares the two on the same requests (status, headers, body, errors, metrics, capture).

Anything unusual goes the ordinary way: a pipelined request while another is in progress,
`Expect: 100-continue`, an upgrade, or any other route.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pier.contract.asgi import Message, request_headers
from pier.errors import PierError
from pier.platform.api import Api, Authenticate, Request, SignedRequest, serve
from pier.platform.app import PlatformApp
from pier.serving.protocol import ErrorBody, json_errors_protocol

log = logging.getLogger("pier.platform")

_INTERNAL_BODY = b'{"message":"Internal error; see the platform log."}'
_INTERNAL = b"".join(
    (
        STATUS_LINE[500],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(_INTERNAL_BODY),
        b"connection: close\r\n\r\n",
        _INTERNAL_BODY,
    )
)


class _NoEvent:
    """uvicorn's protocol sets its cycle's message_event on disconnect: nothing waits here."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class _FastCycle:
    """One request on the fast path. Stands in for uvicorn's RequestResponseCycle as far as
    the protocol's own methods touch it (connection_lost, shutdown, pipelining checks)."""

    __slots__ = (
        "api",
        "chunks",
        "disconnected",
        "headers",
        "keep_alive",
        "limit",
        "message_event",
        "response_complete",
        "scope",
        "signed",
        "size",
        "status",
    )

    def __init__(
        self, api: Api, scope: dict[str, Any], keep_alive: bool, signed: SignedRequest | None
    ) -> None:
        self.api = api
        self.scope = scope
        self.signed = signed
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = api.max_body
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.message_event = _NO_EVENT
        self.status = 0
        self.headers: Iterable[tuple[bytes, bytes]] = ()

    def add(self, chunk: bytes) -> None:
        # Past the limit only the chunk that crossed it is kept (serve's read_body then
        # answers too_large, as on the ASGI path): memory stays bounded by limit + one read.
        if self.size <= self.limit:
            self.chunks.append(chunk)
        self.size += len(chunk)


def invoke_protocol(
    app: PlatformApp, fast: Iterable[Api], error_body: ErrorBody
) -> type[HttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`: HTTP-level 400s as `error_body`
    (pier.serving.protocol), and requests routed by `app` to an API of `fast` served
    without the ASGI cycle (this module's docstring)."""
    fast_apis = frozenset(id(api) for api in fast)
    apis = app.apis
    base = json_errors_protocol(error_body)

    class InvokeProtocol(base):  # type: ignore[valid-type,misc]
        def on_headers_complete(self) -> None:
            api = self._fast_api()
            if api is None:
                super().on_headers_complete()
                return
            version = self.parser.get_http_version()
            keep_alive = version != "1.0" and self.parser.should_keep_alive()
            if version != "1.1":
                self.scope["http_version"] = version
            signed = None
            if api.signing_service is not None:
                # Headers first, as on the ordinary path: a request its headers already refuse
                # goes that way, which answers before reading the body (docs/security.md).
                try:
                    request = Request(self.scope, request_headers(self.scope), b"", 0)
                    signed = app.authenticate(request, api.signing_service)
                except PierError:
                    super().on_headers_complete()
                    return
            self.cycle = _FastCycle(api, self.scope, keep_alive, signed)

        def _fast_api(self) -> Api | None:
            """The API that would serve this request, when it is a fast one and nothing about
            the request needs uvicorn's cycle; else None."""
            cycle = self.cycle
            if (
                (cycle is not None and not cycle.response_complete)  # pipelined
                or self.expect_100_continue
                or self.parser.should_upgrade()
                or self.limit_concurrency is not None
            ):
                return None
            scope = self.scope
            scope["method"] = self.parser.get_method().decode("ascii")
            parsed = httptools.parse_url(self.url)
            raw_path = parsed.path
            path = raw_path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
            scope["path"] = self.root_path + path
            scope["raw_path"] = self.root_path.encode("ascii") + raw_path
            scope["query_string"] = parsed.query or b""
            for api in apis:  # as PlatformApp routes: the first API that matches
                if api.matches(scope):
                    return api if id(api) in fast_apis else None
            return None

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if isinstance(cycle, _FastCycle):
                cycle.add(body)
            else:
                super().on_body(body)

        def on_message_complete(self) -> None:
            cycle = self.cycle
            if not isinstance(cycle, _FastCycle):
                super().on_message_complete()
                return
            task = self.loop.create_task(self._serve(cycle))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        async def _serve(self, cycle: _FastCycle) -> None:
            async def receive() -> Message:
                chunks = cycle.chunks
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                cycle.chunks = []
                if cycle.disconnected:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    cycle.status = message["status"]
                    cycle.headers = message.get("headers", ())
                else:
                    await self._write(cycle, message.get("body", b""))

            signed = cycle.signed
            authenticate: Authenticate = app.authenticate
            if signed is not None:  # verified in on_headers_complete: not twice

                def authenticate(_request: Request, _service: str) -> SignedRequest:
                    return signed

            try:
                await serve(cycle.api, cycle.scope, receive, send, authenticate, app.trail)
            except BaseException:
                # serve maps every error to an answer; this is a bug in the framing above.
                log.exception("the invoke fast path failed")
                if not cycle.response_complete and not cycle.disconnected:
                    self.transport.write(_INTERNAL)
                self.transport.close()
                raise

        async def _write(self, cycle: _FastCycle, body: bytes) -> None:
            if self.flow.write_paused and not cycle.disconnected:
                await self.flow.drain()
            if cycle.disconnected or cycle.response_complete:
                return
            content = [STATUS_LINE[cycle.status]]
            for name, value in self.server_state.default_headers:
                content += (name, b": ", value, b"\r\n")
            for name, value in cycle.headers:
                content += (name, b": ", value, b"\r\n")
            content += (b"content-length: ", str(len(body)).encode(), b"\r\n")
            if not cycle.keep_alive:
                content.append(b"connection: close\r\n")
            content += (b"\r\n", body)
            self.transport.write(b"".join(content))
            cycle.response_complete = True
            if not cycle.keep_alive:
                self.transport.close()
            self.on_response_complete()

    return InvokeProtocol


__all__ = ["invoke_protocol"]
