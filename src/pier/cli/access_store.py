"""What `pier users` and `pier audit` share: the home's state store, opened directly (heavy
at import, SQLAlchemy: the commands import it when they run).

Both commands work on the state store the platform uses (SQLite in the home by default; the
same --state-url / PIER_STATE_URL as `pier up`), whether or not the platform is running: a
running platform sees user changes within a second (pier.platform.access.KeyCache). The store
is migrated first, and the home's own credential is made the `admin` user's key, as `pier up`
does, so that the first `pier users list` already shows it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pier.cli.common import fail, platform_settings
from pier.errors import PierError
from pier.platform.access import adopt_home_credential
from pier.platform.home import OWNER_ONLY_UMASK, Home
from pier.store import db
from pier.store.audit import AuditEvent, AuditStore
from pier.store.users import UserStore


@dataclass(frozen=True)
class AccessStore:
    home: Home
    users: UserStore
    audit: AuditStore
    account: str

    def record(self, operation: str, user: str) -> None:
        """Audit a user change made here: by the local account, on the user's IAM-style ARN."""
        self.audit.append([
            AuditEvent(datetime.now(UTC), f"cli:{getpass.getuser()}", "-", "local", operation,
                       f"arn:aws:iam::{self.account}:user/{user}", 200, None)
        ])  # fmt: skip


@contextlib.contextmanager
def open_store(home: Path | None, state_url: str | None) -> Iterator[AccessStore]:
    """The store of `home` (migrated, its credential adopted); exit 1 saying why it cannot be
    opened, or why a user command was refused."""
    settings = platform_settings(home=home, state_url=state_url)
    os.umask(OWNER_ONLY_UMASK)  # the home's files are the owner's alone, as pier up makes them
    h = Home(settings.home)
    engine = None
    try:
        h.prepare()
        engine = db.create(settings.resolved_state_url())
        db.migrate(engine)
        sessions = db.sessions(engine)
        users = UserStore(sessions, h.server_key())
        credentials = h.credentials()
        assert credentials is not None
        adopt_home_credential(users, credentials)
        yield AccessStore(h, users, AuditStore(sessions), settings.account)
    except PierError as exc:
        raise fail(exc.message) from None
    finally:
        if engine is not None:
            engine.dispose()


__all__ = ["AccessStore", "open_store"]
