"""Server-side console sessions and one-time sign-in links, in the platform's memory.

A session is a random id (the cookie's value, 256 bits) mapped to who signed in, its CSRF
token and when it ends; the cookie carries nothing else. Sign-in forms get an anonymous
session first (its CSRF token protects the sign-in POST); signing in replaces it with a new
id, so an id seen before sign-in is worth nothing after it. Sessions end `ttl_s` after they
began (8 h by default), on sign-out, and when the platform stops (they live in memory: a
restart signs everyone out, which is the safe direction).

One-time links (`pier console-url`): a random token valid for `link_ttl_s`, good for one
sign-in; only its SHA-256 is kept. Expired entries are dropped as new ones arrive, and the
number of live entries is capped, so an unauthenticated client cannot grow memory without
bound.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pier.platform.console.identity import Identity

SESSION_TTL_S = 8 * 3600.0
ANONYMOUS_TTL_S = 15 * 60.0  # a sign-in form left open this long must be reloaded
LINK_TTL_S = 300.0
MAX_SESSIONS = 10_000  # anonymous ones included: the oldest go first past it
MAX_LINKS = 1_000
V = TypeVar("V")


@dataclass(slots=True)
class Session:
    """One browser's session: who (None before sign-in), its CSRF token, when it ends."""

    id: str
    csrf: str
    expires: float
    identity: Identity | None = None
    flash: list[str] = field(default_factory=list)  # messages shown once, on the next page

    def csrf_ok(self, submitted: str | None) -> bool:
        """Whether `submitted` is this session's CSRF token (compared in constant time)."""
        return submitted is not None and hmac.compare_digest(self.csrf.encode(), submitted.encode())


class SessionStore:
    """Sessions and one-time links; thread-safe (pages are built in worker threads)."""

    def __init__(
        self,
        ttl_s: float = SESSION_TTL_S,
        link_ttl_s: float = LINK_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.link_ttl_s = link_ttl_s
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        # sha256(token) -> (expiry, who asked for the link)
        self._links: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._lock = threading.Lock()

    def _new(self, identity: Identity | None, ttl_s: float) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + ttl_s)
        session.identity = identity
        with self._lock:
            _drop_expired(self._sessions, now, lambda s: s.expires)
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.popitem(last=False)
            self._sessions[session.id] = session
        return session

    def anonymous(self) -> Session:
        """A session for the sign-in form: a CSRF token, nobody signed in."""
        return self._new(None, ANONYMOUS_TTL_S)

    def sign_in(self, identity: Identity, previous: str | None = None) -> Session:
        """A new session for `identity` (ending ttl_s from now); `previous` is dropped."""
        if previous is not None:
            self.end(previous)
        return self._new(identity, self.ttl_s)

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, else None (an expired one is dropped)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def end(self, session_id: str) -> None:
        """Sign out: the id is forgotten at once."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def now(self) -> float:
        """The store's clock (what `Session.expires` is measured on)."""
        return self._clock()

    def new_link(self, identity: Identity) -> str:
        """A one-time sign-in token for `identity`, valid for link_ttl_s."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            _drop_expired(self._links, now, lambda entry: entry[0])
            while len(self._links) >= MAX_LINKS:
                self._links.popitem(last=False)
            self._links[_digest(token)] = (now + self.link_ttl_s, identity)
        return token

    def redeem_link(self, token: str) -> Identity | None:
        """Who a live one-time token was made for, else None; it is spent either way. The
        lookup is by SHA-256 digest, so no comparison runs over the secret itself."""
        with self._lock:
            entry = self._links.pop(_digest(token), None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _drop_expired(entries: OrderedDict[str, V], now: float, expiry: Callable[[V], float]) -> None:
    for key in [k for k, v in entries.items() if expiry(v) <= now]:
        del entries[key]


__all__ = ["LINK_TTL_S", "SESSION_TTL_S", "Session", "SessionStore"]
