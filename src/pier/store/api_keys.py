"""The gateway's API keys, their usage counts, and its per-endpoint settings (CORS).

A key is stored as its id (the public prefix clients send inside the key), a name, and the
HMAC-SHA256 digest of the whole key (pier.control.api_keys makes and checks both): never the
key itself. Revoking keeps the row (with `revoked_at`), so usage stays attributable.

Usage is one row per (key, endpoint, period), the period a UTC day ("2026-12-04") or month
("2026-12"); the gateway counts in memory and writes the counts it has (absolute values, not
increments) every few seconds, and reads the current periods back when it starts.

Every method is one short transaction: call it from a thread on an event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pier.store.tables import ApiKeyRow, ApiKeyUsageRow, GatewayEndpointRow

__all__ = ["ApiKeyStore", "StoredKey", "UsageCount"]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An API key as stored: no secret, only its digest. `endpoints` None: every endpoint.
    The plan's limits are None when not set (no limit)."""

    key_id: str
    name: str
    digest: str
    created_at: datetime
    revoked_at: datetime | None
    endpoints: frozenset[str] | None
    rate: float | None
    burst: int | None
    quota_day: int | None
    quota_month: int | None


@dataclass(frozen=True, slots=True)
class UsageCount:
    """Requests of a key to an endpoint in one period (day "YYYY-MM-DD" or month "YYYY-MM")."""

    key_id: str
    endpoint: str
    period: str
    requests: int
    throttled: int


def _stored(row: ApiKeyRow) -> StoredKey:
    return StoredKey(
        key_id=row.key_id,
        name=row.name,
        digest=row.digest,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        endpoints=None if row.endpoints is None else frozenset(row.endpoints),
        rate=row.rate,
        burst=row.burst,
        quota_day=row.quota_day,
        quota_month=row.quota_month,
    )


class ApiKeyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ---------------------------------------------------------------------------- keys
    def add(self, key: StoredKey) -> None:
        """Store a new key (its id is fresh and random: a clash is a bug, raised as is)."""
        with self._sessions.begin() as session:
            session.add(
                ApiKeyRow(
                    key_id=key.key_id,
                    name=key.name,
                    digest=key.digest,
                    created_at=key.created_at,
                    revoked_at=key.revoked_at,
                    endpoints=None if key.endpoints is None else sorted(key.endpoints),
                    rate=key.rate,
                    burst=key.burst,
                    quota_day=key.quota_day,
                    quota_month=key.quota_month,
                )
            )

    def list_keys(self, include_revoked: bool = True) -> list[StoredKey]:
        """Every key, oldest first (without the revoked ones unless `include_revoked`)."""
        q = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)
        if not include_revoked:
            q = q.where(ApiKeyRow.revoked_at.is_(None))
        with self._sessions() as session:
            return [_stored(r) for r in session.scalars(q)]

    def get(self, key_id: str) -> StoredKey | None:
        """The key with this id (revoked or not), or None."""
        with self._sessions() as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else _stored(row)

    def revoke(self, key_id: str, at: datetime) -> StoredKey | None:
        """Mark the key revoked at `at` (a key revoked before keeps its first time); None if
        there is no such key."""
        with self._sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = at
            return _stored(row)

    # --------------------------------------------------------------------------- usage
    def save_usage(self, counts: Iterable[UsageCount]) -> None:
        """Write these counts (absolute values), replacing what the rows held."""
        counts = list(counts)
        if not counts:
            return
        with self._sessions.begin() as session:
            for c in counts:
                row = session.get(ApiKeyUsageRow, (c.key_id, c.endpoint, c.period))
                if row is None:
                    session.add(
                        ApiKeyUsageRow(
                            key_id=c.key_id,
                            endpoint=c.endpoint,
                            period=c.period,
                            requests=c.requests,
                            throttled=c.throttled,
                        )
                    )
                else:
                    row.requests, row.throttled = c.requests, c.throttled

    def usage(
        self, periods: Sequence[str] | None = None, key_id: str | None = None
    ) -> list[UsageCount]:
        """Usage rows of these periods (all when None), of one key or all, sorted."""
        q = select(ApiKeyUsageRow).order_by(
            ApiKeyUsageRow.key_id, ApiKeyUsageRow.endpoint, ApiKeyUsageRow.period
        )
        if periods is not None:
            q = q.where(ApiKeyUsageRow.period.in_(list(periods)))
        if key_id is not None:
            q = q.where(ApiKeyUsageRow.key_id == key_id)
        with self._sessions() as session:
            return [
                UsageCount(r.key_id, r.endpoint, r.period, r.requests, r.throttled)
                for r in session.scalars(q)
            ]

    # ------------------------------------------------------------------ endpoint settings
    def cors(self) -> dict[str, list[str]]:
        """Every endpoint's allowed CORS origins."""
        with self._sessions() as session:
            return {
                r.endpoint: list(r.cors_origins)
                for r in session.scalars(select(GatewayEndpointRow))
            }

    def set_cors(self, endpoint: str, origins: Sequence[str], at: datetime) -> None:
        """Allow these origins for `endpoint` (none: CORS off for it)."""
        with self._sessions.begin() as session:
            if not origins:
                session.execute(
                    delete(GatewayEndpointRow).where(GatewayEndpointRow.endpoint == endpoint)
                )
                return
            row = session.get(GatewayEndpointRow, endpoint)
            if row is None:
                session.add(
                    GatewayEndpointRow(endpoint=endpoint, cors_origins=list(origins), updated_at=at)
                )
            else:
                row.cors_origins, row.updated_at = list(origins), at
