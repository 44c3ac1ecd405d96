"""Users, keys and the audit trail in the state store (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select

from pier.store import db
from pier.store.audit import AuditEvent, AuditStore
from pier.store.tables import AccessKeyRow, AuditRow, UserRow
from pier.store.users import UserError, UserStore

KEY = base64.urlsafe_b64encode(secrets.token_bytes(32))


@pytest.fixture
def users(migrated_engine: Engine) -> UserStore:
    with migrated_engine.begin() as conn:
        conn.execute(delete(AccessKeyRow))
        conn.execute(delete(UserRow))
    return UserStore(db.sessions(migrated_engine), KEY)


@pytest.fixture
def audit(migrated_engine: Engine) -> AuditStore:
    with migrated_engine.begin() as conn:
        conn.execute(delete(AuditRow))
    return AuditStore(db.sessions(migrated_engine))


def test_a_secret_is_stored_encrypted_and_read_back_for_the_verifier(
    users: UserStore, migrated_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = users.add("alice", "deployer")
    with migrated_engine.connect() as conn:
        stored = conn.execute(select(AccessKeyRow.secret)).scalar_one()
    assert key.secret_access_key not in stored
    [active] = users.active_keys(datetime.now(UTC))
    assert (active.access_key_id, active.secret_access_key, active.user, active.role) == (
        key.access_key_id,
        key.secret_access_key,
        "alice",
        "deployer",
    )
    # another home's server key cannot read it: the key is left out, named in the log
    other = UserStore(db.sessions(migrated_engine), base64.urlsafe_b64encode(bytes(32)))
    with caplog.at_level(logging.WARNING, "pier.store"):
        assert other.active_keys(datetime.now(UTC)) == []
    assert key.access_key_id in caplog.text
    assert key.secret_access_key not in caplog.text
    # the home's own key, whose secret credentials.json still holds, can be stored again
    assert other.rekey(key.access_key_id, key.secret_access_key)
    assert [k.secret_access_key for k in other.active_keys(datetime.now(UTC))] == [
        key.secret_access_key
    ]
    assert not other.rekey(key.access_key_id, key.secret_access_key)  # readable: untouched


def test_rotation_keeps_the_old_key_until_the_grace_period_ends(users: UserStore) -> None:
    old = users.add("bot", "invoker")
    new = users.rotate("bot", timedelta(minutes=5))
    now = datetime.now(UTC)
    assert {k.access_key_id for k in users.active_keys(now)} == {
        old.access_key_id,
        new.access_key_id,
    }
    later = now + timedelta(minutes=6)
    assert {k.access_key_id for k in users.active_keys(later)} == {new.access_key_id}
    assert users.fingerprint(now) != users.fingerprint(later)
    # a second rotation with no grace revokes both earlier keys at once
    newest = users.rotate("bot", timedelta(0))
    assert {k.access_key_id for k in users.active_keys(datetime.now(UTC))} == {newest.access_key_id}


def test_user_errors_change_nothing(users: UserStore) -> None:
    users.add("admin", "admin")
    before = users.users()
    with pytest.raises(UserError, match="exists"):
        users.add("admin", "invoker")
    with pytest.raises(UserError, match="invalid role"):
        users.add("eve", "root")
    with pytest.raises(UserError, match="invalid user name"):
        users.add("not ok", "admin")
    with pytest.raises(UserError, match="no user"):
        users.rotate("nobody", timedelta(0))
    with pytest.raises(UserError, match="last admin"):
        users.remove("admin")
    assert users.users() == before
    users.add("second", "admin")
    users.remove("admin")
    assert [u.name for u in users.users()] == ["second"]
    assert users.owner_of(before[0].keys[0][0]) is None


def event(minutes_ago: int, user: str, operation: str = "CreateModel") -> AuditEvent:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return AuditEvent(at, user, "AKPRX", "127.0.0.1", operation, None, 200, None)


def test_the_audit_query_filters_by_time_and_user_newest_first(audit: AuditStore) -> None:
    audit.append([event(90, "alice"), event(30, "bob"), event(10, "alice", "DeleteModel")])
    recent = audit.query(since=datetime.now(UTC) - timedelta(hours=1))
    assert [(e.user, e.operation) for e in recent] == [
        ("alice", "DeleteModel"),
        ("bob", "CreateModel"),
    ]
    assert [e.user for e in audit.query(user="alice")] == ["alice", "alice"]
    assert len(audit.query(limit=1)) == 1
    assert audit.query(user="nobody") == []
