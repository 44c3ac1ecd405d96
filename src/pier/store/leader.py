"""Which of the platforms sharing one state database leads: runs the loops that act.

Several `pier up` may share one PostgreSQL state database (each with its own home); all serve
the APIs, and one, the leader, runs the reconcile loop (it launches and stops instances), the
monitoring scheduler and the alarm runner. The leader holds a session-level advisory lock
(`pg_try_advisory_lock`) on a connection of its own, kept open while it leads: when the leader
dies, the server closes its session and the lock is free for the next one to take. Advisory
locks belong to one database, so platforms of other databases on the same server do not meet.

SQLite: one platform per database (the home's pid file guards it), which is always the leader.
Blocking calls: run them in a worker thread from the event loop.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("pier.leader")

#: The advisory lock's key: "pier" in ASCII.
LOCK_KEY = 0x70696572


class Leadership:
    """The leader's lock on the state database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._shared = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free (True: this platform leads now, or already did)."""
        if self._held:
            return True
        if not self._shared:
            self._held = True
            return True
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"  # the lock is the session's, no transaction
                )
            got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
            self._held = bool(got.scalar())
        except DBAPIError as exc:
            log.warning("cannot ask the state database for leadership: %s", exc.orig)
            self._drop()
        return self._held

    def still_held(self) -> bool:
        """Whether the lock's session is alive (it holds the lock while it is)."""
        if not self._held or not self._shared:
            return self._held
        assert self._conn is not None
        try:
            self._conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            log.error("the leader's session on the state database ended: %s", exc.orig)
            self._held = False
            self._drop()
        return self._held

    def release(self) -> None:
        """Give the lock back (at shutdown: the next platform takes over at once)."""
        if self._conn is not None and self._held:
            with contextlib.suppress(DBAPIError):  # the session is gone: so is the lock
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
        self._held = False
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.invalidate()  # closed, never back to the pool (with a lock on it)
                self._conn.close()
            self._conn = None
