"""The platform's one front door: every HTTP API on its port goes through `serve`.

An API is its dialect and its handlers, nothing else (the `Api` protocol). `serve` owns what
every API shares, in one place, as Starlette's `wrap_app_handling_exceptions` does for its
routes:

    SigV4 from the request line and headers, for the API's signing service (pier.contract.
      sigv4; None: unsigned): an unsigned, malformed, stale or unknown-key request is refused
      before a byte of its body is read, and one declaring x-amz-content-sha256 entirely
    → read the body, at most api.max_body bytes        (over it: api.too_large(), in its dialect)
    → SigV4's rest: the body is what was signed
    → the caller's role may call api.operation(request)? (pier.platform.access.POLICY; else
                                                       AccessDeniedException in its dialect)
    → api.handle(request): decode, dispatch, encode   (blocking handlers run in a worker thread
                                                       through `Operations`, the one dispatcher)
    → write the response; then its `after` callback   (work that must not delay the answer)
    → the audit trail, for a state-changing or denied call (pier.platform.audit_trail: queued,
                                                       written in batches off the event loop)

Errors are mapped here and nowhere else: a PierError is answered as the API's dialect writes
it (`api.error(err)`), with the status and code its type carries; anything else is a bug,
logged with its trace and answered as an internal failure without one, so no stack trace ever
reaches a client. Every 5xx is logged; a 4xx is the client's business and only answered.

`Operations` is the one dispatcher: an explicit `{operation: bound method}` table, written
out when the platform starts, so that mypy checks every handler's signature and vulture sees
each one used. An operation missing from the table is refused in the API's own words. It
runs the handler in a worker thread (handlers block on the store); `handle` itself runs on
the event loop, so the runtime API, whose router is asynchronous, awaits it there.

`PlatformApp` (pier.platform.app) holds the APIs in order and serves a request with the first
one whose `matches(scope)` is true, like Starlette's Router over its routes;
pier.platform.server builds the list.

Adding an API (Application Auto Scaling, a gateway, the console's JSON endpoints) means
writing a class with the `Api` members below, its dialect, and its handlers (an `Operations`
table over the service methods that do the work); then adding it to the list in
pier.platform.server, before any API whose `matches` would also take its requests. It gets the
body limit, authentication, the thread hop and the error mapping without writing them.
tests/platform/test_api.py mounts such a toy API beside the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pier.contract.asgi import Headers, Receive, Scope, Send, read_body, request_headers, respond
from pier.contract.sigv4 import Signed, verify_headers
from pier.errors import InternalFailure, PierError
from pier.platform.access import STATE_CHANGING, Principal, denied

log = logging.getLogger("pier.platform")

P = TypeVar("P")
#: What every operation answers: the output members, which the API's dialect encodes.
Result = dict[str, Any]


# Request and Response are slotted dataclasses, not NamedTuples nor frozen: one of each per
# request on the runtime's hot path, and these are the cheapest to build (measured).
@dataclass(slots=True)
class Request:
    """A request whose body was read within the API's limit (and signed, for signed APIs)."""

    scope: Scope
    headers: dict[str, str]  # lower-case names (pier.contract.asgi.request_headers)
    body: bytes
    received_ns: int  # time.perf_counter_ns() when the request reached the platform
    # The decoded input, set by an API that decodes one: where the audit trail finds the
    # resource's name (it keeps the ARN, never the input). None on the runtime's hot path.
    params: Mapping[str, Any] | None = None

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: Headers
    # Called once the response is written (the runtime's metrics and data capture): work the
    # client must not wait for. Like Starlette's background task, but synchronous and short.
    after: Callable[[], None] | None = None


class Api(Protocol):
    """One HTTP API on the platform's port: where it answers, its limits, and its dialect."""

    @property
    def max_body(self) -> int:
        """The largest request body it reads, in bytes."""
        ...

    @property
    def signing_service(self) -> str | None:
        """SigV4's service name requests must be signed for (None: not signed)."""
        ...

    def matches(self, scope: Scope) -> bool:
        """Whether this API serves the request (method, path, headers; the body is unread)."""
        ...

    def operation(self, request: Request) -> str | None:
        """The operation the request calls, as pier.platform.access.POLICY names it; None when
        it names none this API serves (`handle` then refuses it in the API's words)."""
        ...

    def too_large(self) -> PierError:
        """The error for a body over `max_body`, as this API words it."""
        ...

    async def handle(self, request: Request) -> Response:
        """Decode, dispatch and encode; raise a PierError to refuse."""
        ...

    def error(self, err: PierError) -> Response:
        """`err` in this API's dialect, with its status and code."""
        ...


class SignedRequest(Protocol):
    """A request whose headers passed authentication (pier.contract.sigv4.Signed)."""

    def body(self, body: bytes) -> Principal:
        """The caller, once `body` is what was signed; else raise the AWS error."""
        ...


#: Verifies a request's SigV4 headers for a signing service, before its body is read: what
#: checks the body, or raises the AWS error.
Authenticate = Callable[[Request, str], SignedRequest]
#: Takes a call for the audit trail: (caller, operation, request, status, error code or None).
Trail = Callable[[Principal, str, Request, int, "str | None"], None]


def sigv4(
    lookup: Callable[[str], Principal | None],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Authenticate:
    """AWS Signature Version 4 against the platform's credentials (`lookup` by access key id)."""

    scopes: dict[str, frozenset[str]] = {}  # a signing service's, built once

    def authenticate(request: Request, service: str) -> Signed[Principal]:
        services = scopes.get(service)
        if services is None:
            services = scopes[service] = frozenset({service})
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        return verify_headers(
            scope["method"],
            raw_path.decode("latin-1"),
            scope.get("query_string", b"").decode("latin-1"),
            request.headers,
            lookup,
            clock(),
            services=services,
        )

    return authenticate


_INTERNAL = "Internal error; see the platform log."


async def serve(
    api: Api,
    scope: Scope,
    receive: Receive,
    send: Send,
    authenticate: Authenticate,
    trail: Trail | None = None,
) -> None:
    """The request path every API shares (this module's docstring)."""
    received_ns = time.perf_counter_ns()
    caller: Principal | None = None
    operation: str | None = None
    code: str | None = None
    refused = False
    request = Request(scope, request_headers(scope), b"", received_ns)
    try:
        # Headers first: a request that will be refused costs no body (uvicorn discards what
        # the client still sends once the answer is out).
        signed = None if api.signing_service is None else authenticate(request, api.signing_service)
        try:
            body = await read_body(receive, api.max_body)
        except ConnectionAbortedError:
            return  # the client left before its request was read: there is nobody to answer
        if body is None:
            raise api.too_large()
        request.body = body
        if signed is not None:
            assert api.signing_service is not None
            caller = signed.body(body)
            operation = api.operation(request)
            if operation is not None and not caller.may(operation):
                refused = True
                raise denied(caller, api.signing_service, operation)
        response = await api.handle(request)
    except PierError as err:
        if err.status >= 500:
            log.error("%s %s: %s %s", scope["method"], scope["path"], err.code, err.message)
        code = err.code
        response = api.error(err)
    except Exception:
        log.exception("%s %s failed", scope["method"], scope["path"])
        code = InternalFailure.code
        response = api.error(InternalFailure(_INTERNAL))
    await respond(send, response.status, response.body, response.headers)
    if response.after is not None:
        response.after()
    if trail is not None and operation is not None and (refused or operation in STATE_CHANGING):
        assert caller is not None
        trail(caller, operation, request, response.status, code)


class Operations(Generic[P]):
    """The one dispatcher: an API's `{operation: bound method}` table, written out at start-up.

    Handlers are plain methods of control services that block on the store, so each call runs
    in a worker thread; `unknown(operation)` is the API's error for an operation it lacks.
    """

    def __init__(
        self,
        table: Mapping[str, Callable[[P], Result]],
        unknown: Callable[[str], PierError],
    ) -> None:
        self._table = dict(table)
        self._unknown = unknown

    def __contains__(self, operation: str) -> bool:
        return operation in self._table

    def names(self) -> list[str]:
        return sorted(self._table)

    def handler(self, operation: str) -> Callable[[P], Result]:
        """The operation's method, or the API's error for an operation it does not serve."""
        handler = self._table.get(operation)
        if handler is None:
            raise self._unknown(operation)
        return handler

    async def __call__(self, operation: str, params: P) -> Result:
        return await asyncio.to_thread(self.handler(operation), params)


__all__ = [
    "Api",
    "Authenticate",
    "Operations",
    "Request",
    "Response",
    "Result",
    "SignedRequest",
    "Trail",
    "serve",
    "sigv4",
]
