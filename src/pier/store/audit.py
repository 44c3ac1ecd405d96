"""The audit trail: one row per state-changing or denied API call, in the state store.

What a row holds is who (user and access key id), from where (the client's address), what
(operation, resource ARN where known), when, and how it ended (HTTP status, error code); never
a secret, a signature, nor a request or response body. pier.platform.audit_trail writes rows in
batches off the event loop; `pier audit` and the console read them with `AuditStore.query`.
Every method is one short transaction: call it from a thread on an event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from pier.store.tables import AuditRow

__all__ = ["AuditEvent", "AuditStore"]


@dataclass(frozen=True)
class AuditEvent:
    """One audited call (the row's columns, `id` once stored)."""

    at: datetime
    user: str
    key_id: str
    source: str
    operation: str
    resource: str | None
    status: int
    error_code: str | None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the time as ISO 8601."""
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


class AuditStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Write `events` in one transaction."""
        if not events:
            return
        rows = [
            {
                "at": e.at,
                "user_name": e.user,
                "key_id": e.key_id,
                "source": e.source[:64],
                "operation": e.operation[:96],
                "resource": None if e.resource is None else e.resource[:512],
                "status": e.status,
                "error_code": None if e.error_code is None else e.error_code[:96],
            }
            for e in events
        ]
        with self._sessions.begin() as session:
            session.execute(insert(AuditRow), rows)

    def query(
        self, since: datetime | None = None, user: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        """The newest `limit` events at or after `since` (of `user`), newest first."""
        q = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit)
        if since is not None:
            q = q.where(AuditRow.at >= since)
        if user is not None:
            q = q.where(AuditRow.user_name == user)
        with self._sessions() as session:
            return [
                AuditEvent(
                    r.at,
                    r.user_name,
                    r.key_id,
                    r.source,
                    r.operation,
                    r.resource,
                    r.status,
                    r.error_code,
                    r.id,
                )
                for r in session.scalars(q)
            ]
