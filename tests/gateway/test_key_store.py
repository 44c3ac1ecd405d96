"""pier.store.api_keys and pier.control.api_keys on SQLite and PostgreSQL: a key is stored as
its digest only, found by its id, refused once revoked; usage counts are replaced, not added;
CORS settings are set and cleared; and the gateway's limiter takes the stored counts back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete

from pier.control.api_keys import PREFIX, KeyRing, digest, key_id_of, new_key
from pier.control.usage_plans import Limiter
from pier.store import db
from pier.store.api_keys import ApiKeyStore, StoredKey, UsageCount
from pier.store.tables import ApiKeyRow, ApiKeyUsageRow, GatewayEndpointRow

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
SECRET = b"s" * 32


@pytest.fixture
def store(migrated_engine: Engine) -> ApiKeyStore:
    with migrated_engine.begin() as conn:
        for table in (ApiKeyRow, ApiKeyUsageRow, GatewayEndpointRow):
            conn.execute(delete(table))
    return ApiKeyStore(db.sessions(migrated_engine))


def stored(key: str, key_id: str, **plan: object) -> StoredKey:
    fields: dict[str, object] = {
        "rate": None, "burst": None, "quota_day": None, "quota_month": None, **plan
    }  # fmt: skip
    return StoredKey(
        key_id=key_id, name="team", digest=digest(SECRET, key), created_at=NOW, revoked_at=None,
        endpoints=frozenset({"e"}), **fields,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_new_key_is_random_and_carries_its_id() -> None:
    a, b = new_key(), new_key()
    assert a.key != b.key
    assert a.key.startswith(PREFIX + a.key_id + "_")
    assert key_id_of(a.key) == a.key_id
    assert len(a.key) > 50  # 32 random bytes after the id
    for bad in ("", "pier_", "pier_short_x", "pier_ABCDEFGHIJKL_x", "x" * 60, a.key_id):
        assert key_id_of(bad) is None


def test_keys_are_stored_as_digests_and_checked_against_them(store: ApiKeyStore) -> None:
    made = new_key()
    store.add(stored(made.key, made.key_id, rate=2.0, quota_day=10))
    [got] = store.list_keys()
    assert made.key not in repr(got)
    assert got.digest == digest(SECRET, made.key)
    assert (got.endpoints, got.rate, got.quota_day) == (frozenset({"e"}), 2.0, 10)
    ring = KeyRing(SECRET, store.list_keys())
    assert ring.check(made.key) == got
    assert ring.check(made.key + "x") is None
    assert ring.check(made.key[:-1] + ("A" if made.key[-1] != "A" else "B")) is None
    assert KeyRing(b"another secret", store.list_keys()).check(made.key) is None
    revoked = store.revoke(made.key_id, NOW)
    assert revoked is not None
    assert revoked.revoked_at == NOW
    assert store.revoke("nosuchkey000", NOW) is None
    ring.replace(store.list_keys())
    assert ring.check(made.key) is None
    assert store.list_keys(include_revoked=False) == []


def test_usage_is_written_as_absolute_counts_and_restored(store: ApiKeyStore) -> None:
    store.save_usage([UsageCount("k", "e", "2026-12-04", 3, 1)])
    store.save_usage(
        [UsageCount("k", "e", "2026-12-04", 5, 2), UsageCount("k", "e", "2026-12", 9, 2)]
    )
    assert store.usage(["2026-12-04"]) == [UsageCount("k", "e", "2026-12-04", 5, 2)]
    assert len(store.usage(key_id="k")) == 2
    clock = datetime(2026, 12, 4, 20, 0, tzinfo=UTC).timestamp()
    limiter = Limiter(clock=lambda: clock)
    limiter.restore(store.usage())
    key = stored("pier_x", "k", quota_day=6)
    assert limiter.admit(key, "e") is None  # the 6th of today
    assert limiter.admit(key, "e") is not None  # over the day's quota
    day, month = {c.period: c for c in limiter.dirty_counts()}.values()
    assert (day.requests, day.throttled, month.requests) == (6, 3, 10)


def test_cors_origins_are_set_and_cleared(store: ApiKeyStore) -> None:
    store.set_cors("e", ["https://a.example"], NOW)
    store.set_cors("e", ["https://a.example", "https://b.example"], NOW)
    assert store.cors() == {"e": ["https://a.example", "https://b.example"]}
    store.set_cors("e", [], NOW)
    assert store.cors() == {}
