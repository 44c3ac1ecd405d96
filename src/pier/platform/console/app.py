"""The web console: server-rendered pages under /console/ on the platform's port.

`ConsoleApi` is one more `Api` of the platform (pier.platform.api): the front door reads the
body within `max_body`, and maps a PierError to `error()`. It is not SigV4-signed: a browser
signs in with the platform's access key and secret (pier.platform.console.identity) and gets
a server-side session (pier.platform.console.sessions) in a cookie that is HttpOnly,
SameSite=Strict, Path=/console and expires. Without a session only the sign-in page, the
one-time link and the static assets answer; a GET elsewhere is sent to sign in, anything else
is refused (401). Every POST carries the session's CSRF token (checked in constant time) and
every action a confirmation; actions are the platform's SageMaker and CloudWatch operations
(pier.platform.console.calls). Pages are Jinja2 templates, autoescaped; responses forbid
framing, sniffing, caching and any script or style not served by pier (CSP).

`ConsoleLinkApi` mints the one-time sign-in links `pier console-url` prints: POST
/console/links, SigV4-signed with the platform's key like the monitoring routes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pier.contract.asgi import Headers, Scope, json_headers
from pier.errors import PierError, ValidationException
from pier.platform.access import Principal
from pier.platform.api import Request, Response, Trail
from pier.platform.console import pages
from pier.platform.console.calls import ConsoleCalls
from pier.platform.console.charts import RANGES
from pier.platform.console.identity import Identity, Lookup, check
from pier.platform.console.sessions import Session, SessionStore
from pier.platform.console.signature import MAX_ROWS, body
from pier.store.api_keys import StoredKey

log = logging.getLogger("pier.console")

PREFIX = "/console"
COOKIE = "pier_console"
MAX_FORM_BYTES = 1024 * 1024
_HERE = Path(__file__).parent
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY: Headers = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # a one-time link's token never leaves in a Referer
    (b"cache-control", b"no-store"),
]
_HTML = (b"content-type", b"text/html; charset=utf-8")


class Unauthorized(PierError):
    status = 401
    code = "Unauthorized"


class Forbidden(PierError):
    status = 403
    code = "Forbidden"


class NotFound(PierError):
    status = 404
    code = "NotFound"


@dataclass(slots=True)
class Page:
    """A request as a console handler sees it: the session, path parameters, form fields."""

    request: Request
    maybe_session: Session | None  # None only on the sign-in routes
    params: dict[str, str]
    form: dict[str, str]
    query: dict[str, str]

    @property
    def session(self) -> Session:
        """The request's session (ConsoleApi.handle let no other request through)."""
        if self.maybe_session is None:
            raise Unauthorized("Sign in first: no console session, or it has expired.")
        return self.maybe_session


def _with(request: Request, params: dict[str, Any]) -> Request:
    """The console's request as the audit trail reads an API call: with the resource's name."""
    return dataclasses.replace(request, params=params)


Handler = Callable[[Page], Awaitable[Response]]
_NAME = "(?P<name>[^/]+)"


def _route(method: str, path: str, handler: Handler, public: bool = False) -> _Route:
    return _Route(method, re.compile(f"^{PREFIX}{path}$"), handler, public)


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    path: re.Pattern[str]  # under /console; named groups are the page's parameters
    handler: Handler
    public: bool  # served without a session (signing in)


def _first(values: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[0] for k, v in values.items()}


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if target and target.startswith(PREFIX + "/") and "\\" not in target and "//" not in target:
        return target
    return PREFIX + "/"


def _redirect(location: str, extra: Headers | None = None) -> Response:
    return Response(303, b"", [(b"location", location.encode()), *_SECURITY, *(extra or [])])


class ConsoleApi:
    """The console's pages and actions (this module's docstring)."""

    max_body = MAX_FORM_BYTES
    signing_service = None  # a browser session, not SigV4

    def __init__(
        self,
        calls: ConsoleCalls,
        sessions: SessionStore,
        lookup: Lookup,
        *,
        mlflow_url: Callable[[], str | None],
        model_cache: Path,
        trail: Trail | None = None,
        keys_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.calls = calls
        self.sessions = sessions
        self._lookup = lookup
        self._trail = trail
        self._keys_changed = keys_changed  # the gateway reloads its keys (GatewayApi.sync)
        self._mlflow_url = mlflow_url
        self._model_cache = model_cache
        self._templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # A name as one path segment: "/" escaped too (Jinja's urlencode keeps it), as alarm
        # names may hold one; the routes match the raw path.
        self._templates.filters["segment"] = lambda value: quote(str(value), safe="")
        # The console's routes, written out (as the APIs' Operations tables are).
        self._routes = [
            _route("GET", "/login", self.login_page, public=True),
            _route("POST", "/login", self.login, public=True),
            _route("GET", "/link", self.link, public=True),
            _route("POST", "/logout", self.logout),
            _route("GET", "/", self.home),
            _route("GET", f"/endpoints/{_NAME}", self.endpoint),
            _route("GET", f"/endpoints/{_NAME}/charts", self.charts),
            _route("GET", f"/endpoints/{_NAME}/capture", self.capture),
            _route("GET", f"/endpoints/{_NAME}/invoke", self.invoke_page),
            _route("POST", f"/endpoints/{_NAME}/invoke", self.invoke),
            _route("POST", f"/endpoints/{_NAME}/capacity", self.capacity),
            _route("POST", f"/endpoints/{_NAME}/delete", self.delete),
            _route("GET", "/monitoring", self.monitoring),
            _route("GET", "/audit", self.audit),
            _route("GET", "/keys", self.keys),
            _route("POST", f"/keys/{_NAME}/revoke", self.revoke_key),
            _route("GET", "/alarms", self.alarms),
            _route("GET", f"/alarms/{_NAME}", self.alarm),
            _route("POST", f"/alarms/{_NAME}/state", self.alarm_state),
        ]
        self._static = {
            f.name: (f.read_bytes(), mimetypes.guess_type(f.name)[0] or "text/plain")
            for f in sorted((_HERE / "static").iterdir())
            if f.is_file()
        }

    # ---------------------------------------------------------------- the Api protocol
    def matches(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return path == PREFIX or path.startswith(PREFIX + "/")

    def operation(self, request: Request) -> str | None:
        """None: the console is not signed; its actions check the role themselves (`_act`)."""
        return None

    def too_large(self) -> PierError:
        return ValidationException(f"The form is larger than {MAX_FORM_BYTES} bytes.")

    def error(self, err: PierError) -> Response:
        html = self._render("error.html", None, code=err.code, message=err.message)
        return Response(err.status, html, [_HTML, *_SECURITY])

    async def handle(self, request: Request) -> Response:
        # Routes match the path as sent (still %-escaped): a name holding "/" stays one segment.
        raw: bytes | None = request.scope.get("raw_path")
        path, method = (raw.decode("latin-1") if raw else request.path), request.method
        if path == PREFIX:
            return _redirect(PREFIX + "/")
        if method == "GET" and path.startswith(PREFIX + "/static/"):
            return self._asset(path[len(PREFIX + "/static/") :])
        session = self.sessions.get(self._cookie(request))
        signed_in = session is not None and session.identity is not None
        query = _first(parse_qs(request.scope.get("query_string", b"").decode("latin-1")))
        found = [(r, match) for r in self._routes if (match := r.path.match(path))]
        chosen = next(((r, match) for r, match in found if r.method == method), None)
        if not (chosen is not None and chosen[0].public) and not signed_in:
            if method == "GET":
                return _redirect(f"{PREFIX}/login?{urlencode({'next': path})}")
            raise Unauthorized("Sign in first: no console session, or it has expired.")
        if chosen is None:
            if found:
                raise ValidationException(f"{method} is not served on {path}.")
            raise NotFound(f"No console page at {path}.")
        chosen_route, match = chosen
        form: dict[str, str] = {}
        if method == "POST":
            form = self._form(request)
            if session is None or not session.csrf_ok(form.get("csrf")):
                raise Forbidden(
                    "The form's CSRF token is missing or wrong (an old page, or a form "
                    "posted from another site); reload the page and try again."
                )
        params = {k: unquote(v) for k, v in match.groupdict().items()}
        return await chosen_route.handler(Page(request, session, params, form, query))

    # ---------------------------------------------------------------- plumbing
    def _cookie(self, request: Request) -> str | None:
        raw = request.headers.get("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # a malformed Cookie header: no session
            return None
        morsel = jar.get(COOKIE)
        return morsel.value if morsel is not None else None

    def _set_cookie(self, session: Session) -> tuple[bytes, bytes]:
        ttl = max(int(session.expires - self.sessions.now()), 1)
        value = f"{COOKIE}={session.id}; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age={ttl}"
        return (b"set-cookie", value.encode())

    def _clear_cookie(self) -> tuple[bytes, bytes]:
        value = f"{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0"
        return (b"set-cookie", value.encode())

    def _form(self, request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise ValidationException(
                "The console takes forms (application/x-www-form-urlencoded), "
                f"not {kind or 'a body without Content-Type'}."
            )
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationException("The form is not UTF-8.") from None
        return _first(parse_qs(text, keep_blank_values=True))

    def _asset(self, name: str) -> Response:
        found = self._static.get(name)
        if found is None:
            raise NotFound(f"No console asset {name}.")
        data, kind = found
        headers = [(b"content-type", kind.encode()), *_SECURITY]
        return Response(200, data, headers)

    def _render(self, template: str, session: Session | None, **context: Any) -> bytes:
        flash: list[str] = []
        if session is not None:
            flash, session.flash = session.flash, []
        return (
            self._templates.get_template(template)
            .render(session=session, flash=flash, prefix=PREFIX, ranges=list(RANGES), **context)
            .encode()
        )

    def _page(self, template: str, page: Page, status: int = 200, **context: Any) -> Response:
        html = self._render(template, page.maybe_session, **context)
        return Response(status, html, [_HTML, *_SECURITY])

    @staticmethod
    async def _run(work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(work, *args)

    async def _act(
        self, page: Page, operation: str, params: dict[str, Any], work: Callable[[], Any]
    ) -> Any:
        """Run a state-changing `operation` for the session's user: refused (403) unless the
        user's role allows it (docs/security.md, the same POLICY as the APIs), and written to
        the audit trail like a call through the APIs, whatever its outcome."""
        identity = page.session.identity
        caller = self._lookup(identity.access_key_id) if identity is not None else None
        if caller is None:
            raise Unauthorized("Your access key is no longer valid: sign in again.")
        if isinstance(caller, Principal) and not caller.may(operation):
            if self._trail is not None:
                self._trail(caller, operation, _with(page.request, params), 403, "AccessDenied")
            raise Forbidden(
                f"{operation}: your role ({caller.role}) does not allow it (docs/security.md)."
            )
        status, code = 200, None
        try:
            return await work()
        except PierError as exc:
            status, code = exc.status, exc.code
            raise
        finally:
            if self._trail is not None and isinstance(caller, Principal):
                self._trail(caller, operation, _with(page.request, params), status, code)

    @staticmethod
    def _confirmed(page: Page) -> None:
        if page.form.get("confirm") != "yes":
            raise ValidationException("Tick the confirmation box to apply this change.")

    # ---------------------------------------------------------------- sign-in
    async def login_page(self, page: Page) -> Response:
        """GET /login: the sign-in form (an anonymous session carries its CSRF token)."""
        session = page.maybe_session
        if session is not None and session.identity is not None:
            return _redirect(_safe_next(page.query.get("next")))
        if session is None:
            session = self.sessions.anonymous()
        html = self._render("login.html", session, next=_safe_next(page.query.get("next")))
        return Response(200, html, [_HTML, *_SECURITY, self._set_cookie(session)])

    async def login(self, page: Page) -> Response:
        """POST /login: check the key and secret; a new session, or 401 and the form again."""
        key_id = page.form.get("access_key_id", "").strip()
        identity = check(self._lookup, key_id, page.form.get("secret_access_key", ""))
        if identity is None:
            log.warning("console sign-in refused for access key %s", key_id[:24] or "(none)")
            page.session.flash.append("Wrong access key or secret.")
            html = self._render("login.html", page.session, next=_safe_next(page.form.get("next")))
            return Response(401, html, [_HTML, *_SECURITY])
        session = self.sessions.sign_in(identity, previous=page.session.id)
        log.info("console sign-in: %s", identity.access_key_id)
        return _redirect(_safe_next(page.form.get("next")), [self._set_cookie(session)])

    async def link(self, page: Page) -> Response:
        """GET /link?token=: a one-time link's sign-in; 401 when spent or expired."""
        token = page.query.get("token", "")
        identity = self.sessions.redeem_link(token) if token else None
        if identity is None:
            raise Unauthorized(
                "This sign-in link is spent or expired; print a new one with `pier console-url`."
            )
        previous = page.maybe_session.id if page.maybe_session is not None else None
        session = self.sessions.sign_in(identity, previous=previous)
        log.info("console sign-in with a one-time link: %s", identity.access_key_id)
        return _redirect(PREFIX + "/", [self._set_cookie(session)])

    async def logout(self, page: Page) -> Response:
        """POST /logout: forget the session, clear the cookie."""
        self.sessions.end(page.session.id)
        return _redirect(PREFIX + "/login", [self._clear_cookie()])

    # ---------------------------------------------------------------- pages
    async def home(self, page: Page) -> Response:
        """GET /: every endpoint."""
        rows = await self._run(pages.endpoints, self.calls, self._mlflow_url())
        return self._page("endpoints.html", page, endpoints=rows, title="Endpoints")

    async def endpoint(self, page: Page) -> Response:
        """GET /endpoints/{name}: one endpoint, its instances and deployment."""
        data = await self._run(pages.endpoint, self.calls, page.params["name"], self._mlflow_url())
        return self._page("endpoint.html", page, e=data, title=data["name"])

    async def charts(self, page: Page) -> Response:
        """GET /endpoints/{name}/charts?range=: its metric charts (fragment=1: the charts only)."""
        span = page.query.get("range", "1h")
        if span not in RANGES:
            raise ValidationException(f"range must be one of {', '.join(RANGES)}, not {span!r}.")
        name = page.params["name"]
        data = await self._run(pages.charts, self.calls, name, span)
        template = "_charts.html" if page.query.get("fragment") == "1" else "charts.html"
        return self._page(template, page, name=name, span=span, variants=data, title=name)

    async def capture(self, page: Page) -> Response:
        """GET /endpoints/{name}/capture: its latest captured records."""
        data = await self._run(pages.capture, self.calls, page.params["name"])
        return self._page("capture.html", page, c=data, title=data["name"])

    async def invoke_page(self, page: Page) -> Response:
        """GET /endpoints/{name}/invoke: the form from the model's signature."""
        name = page.params["name"]
        variant = page.query.get("variant") or None
        form = await self._run(pages.invoke_form, self.calls, name, variant, self._model_cache)
        described = await self._run(self._described, name)
        return self._page(
            "invoke.html", page, name=name, form=form, variant=variant, result=None,
            variants=[v["VariantName"] for v in described.get("ProductionVariants", [])],
            values={}, raw=form.raw, title=name,
        )  # fmt: skip

    def _described(self, name: str) -> dict[str, Any]:
        return self.calls.sagemaker("DescribeEndpoint", EndpointName=name)

    async def monitoring(self, page: Page) -> Response:
        """GET /monitoring: schedules, their latest drift report and violations."""
        data = await self._run(pages.monitoring, self.calls)
        return self._page("monitoring.html", page, schedules=data, title="Monitoring")

    async def audit(self, page: Page) -> Response:
        """GET /audit?user=: the latest audited calls (of one user)."""
        user = page.query.get("user", "").strip() or None
        data = await self._run(pages.audit, self.calls, user)
        return self._page("audit.html", page, events=data, user=user or "", title="Audit trail")

    async def keys(self, page: Page) -> Response:
        """GET /keys: the gateway's API keys and their usage (read-only)."""
        data = await self._run(pages.api_keys, self.calls)
        return self._page("keys.html", page, k=data, title="API keys")

    async def alarms(self, page: Page) -> Response:
        """GET /alarms: every alarm."""
        data = await self._run(pages.alarms, self.calls)
        return self._page("alarms.html", page, alarms=data, title="Alarms")

    async def alarm(self, page: Page) -> Response:
        """GET /alarms/{name}: one alarm, its history, the form that sets its state."""
        data = await self._run(pages.alarm, self.calls, page.params["name"])
        if data is None:
            raise NotFound(f"No alarm named {page.params['name']}.")
        return self._page("alarm.html", page, a=data, title=data["name"])

    # ---------------------------------------------------------------- actions
    async def capacity(self, page: Page) -> Response:
        """POST /endpoints/{name}/capacity: UpdateEndpointWeightsAndCapacities, confirmed."""
        self._confirmed(page)
        name = page.params["name"]
        changes = []
        for i in range(100):
            variant = page.form.get(f"variant{i}")
            if variant is None:
                break
            changes.append(
                {
                    "VariantName": variant,
                    "DesiredWeight": _number(page.form.get(f"weight{i}", ""), f"{variant} weight"),
                    "DesiredInstanceCount": int(
                        _number(page.form.get(f"instances{i}", ""), f"{variant} instances")
                    ),
                }
            )
        operation = "UpdateEndpointWeightsAndCapacities"
        await self._act(
            page,
            operation,
            {"EndpointName": name},
            lambda: self._run(
                lambda: self.calls.sagemaker(
                    operation, EndpointName=name, DesiredWeightsAndCapacities=changes
                )
            ),
        )
        page.session.flash.append(
            "UpdateEndpointWeightsAndCapacities: "
            + ", ".join(
                f"{c['VariantName']} weight {c['DesiredWeight']:g} × "
                f"{c['DesiredInstanceCount']} instance(s)"
                for c in changes
            )
        )
        return _redirect(f"{PREFIX}/endpoints/{quote(name, safe='')}")

    async def invoke(self, page: Page) -> Response:
        """POST /endpoints/{name}/invoke: InvokeEndpoint; the form again with the answer."""
        name = page.params["name"]
        variant = page.form.get("variant") or None
        form = await self._run(pages.invoke_form, self.calls, name, variant, self._model_cache)
        described = await self._run(self._described, name)
        raw = page.form.get("raw", "")
        error, result, status = None, None, 200
        try:
            if form.tabular and page.form.get("mode") != "raw":
                rows = int(_number(page.form.get("rows", "1"), "rows"))
                payload = body(form, page.form, min(rows, MAX_ROWS))
            else:
                payload = raw.encode()
            result = await self._act(
                page,
                "InvokeEndpoint",
                {"EndpointName": name},
                lambda: self.calls.invoke(name, payload, "application/json", variant),
            )
        except PierError as exc:
            error, status = f"{exc.code}: {exc.message}", exc.status
        return self._page(
            "invoke.html", page, status, name=name, form=form, variant=variant,
            variants=[v["VariantName"] for v in described.get("ProductionVariants", [])],
            values=page.form, raw=raw or form.raw, result=result, error=error, title=name,
        )  # fmt: skip

    async def delete(self, page: Page) -> Response:
        """POST /endpoints/{name}/delete: DeleteEndpoint, confirmed by typing the name."""
        name = page.params["name"]
        if page.form.get("confirm_name") != name:
            raise ValidationException(f"Type the endpoint's name, {name}, to delete it.")
        await self._act(
            page,
            "DeleteEndpoint",
            {"EndpointName": name},
            lambda: self._run(lambda: self.calls.sagemaker("DeleteEndpoint", EndpointName=name)),
        )
        page.session.flash.append(f"DeleteEndpoint: {name} is being deleted.")
        return _redirect(PREFIX + "/")

    async def revoke_key(self, page: Page) -> Response:
        """POST /keys/{id}/revoke: revoke a gateway key, confirmed. Admins only (RevokeApiKey is
        in no role's POLICY classes), audited; the gateway refuses the key at once."""
        self._confirmed(page)
        key_id = page.params["name"]

        async def revoke() -> StoredKey:
            revoked: StoredKey | None = await self._run(self.calls.revoke_key, key_id)
            if revoked is None:
                raise NotFound(f"No API key {key_id!r}.")
            if self._keys_changed is not None:
                await self._keys_changed()
            return revoked

        revoked = await self._act(page, "RevokeApiKey", {"KeyId": key_id}, revoke)
        page.session.flash.append(f"Revoked: key {key_id} ({revoked.name}).")
        return _redirect(f"{PREFIX}/keys")

    async def alarm_state(self, page: Page) -> Response:
        """POST /alarms/{name}/state: SetAlarmState, confirmed."""
        self._confirmed(page)
        name = page.params["name"]
        state = page.form.get("state", "")
        reason = page.form.get("reason", "").strip() or "Set from the pier console"
        await self._act(
            page,
            "SetAlarmState",
            {"AlarmName": name},
            lambda: self._run(
                lambda: self.calls.cloudwatch(
                    "SetAlarmState", AlarmName=name, StateValue=state, StateReason=reason
                )
            ),
        )
        page.session.flash.append(f"SetAlarmState: {name} is {state}.")
        return _redirect(f"{PREFIX}/alarms/{quote(name, safe='')}")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValidationException(f"{what}: {text!r} is not a number.") from None


_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/")


class ConsoleLinkApi:
    """POST /console/links, SigV4-signed: a one-time sign-in link (`pier console-url`)."""

    max_body = 1024
    signing_service = "sagemaker"

    def __init__(self, sessions: SessionStore) -> None:
        self.sessions = sessions

    def matches(self, scope: Scope) -> bool:
        return bool(scope["method"] == "POST" and scope["path"] == PREFIX + "/links")

    def operation(self, request: Request) -> str | None:
        return "CreateConsoleLink"

    def too_large(self) -> PierError:
        return ValidationException("POST /console/links takes no body.")

    async def handle(self, request: Request) -> Response:
        # The front door verified the signature: the key id it names is who asks.
        signed = _CREDENTIAL.search(request.headers.get("authorization", ""))
        if signed is None:
            raise Unauthorized("POST /console/links must be signed with SigV4.")
        token = self.sessions.new_link(Identity(signed["key"]))
        answer = {
            "Path": f"{PREFIX}/link?{urlencode({'token': token})}",
            "ExpiresInSeconds": int(self.sessions.link_ttl_s),
        }
        return Response(200, orjson.dumps(answer), json_headers())

    def error(self, err: PierError) -> Response:
        payload = orjson.dumps({"__type": err.code, "message": err.message})
        return Response(err.status, payload, json_headers(err.code))


__all__ = ["COOKIE", "PREFIX", "ConsoleApi", "ConsoleLinkApi"]
