"""pier.store.leader on a real PostgreSQL database (and SQLite): one leader at a time."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pier.store import db
from pier.store.leader import Leadership
from tests.boto3.platform_fixtures import POSTGRES_ADMIN_URL, postgres_database


def test_one_platform_leads_and_the_next_takes_over_when_it_goes() -> None:
    with postgres_database() as url:
        first, second = db.create(url), db.create(url)
        try:
            a, b = Leadership(first), Leadership(second)
            assert a.try_acquire()
            assert not b.try_acquire()
            assert a.still_held()
            assert not b.still_held()
            a.release()
            assert b.try_acquire()
            # The leader's session ends (as when its process dies): the lock goes with it.
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                name = url.rsplit("/", 1)[1]
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks JOIN pg_stat_activity "
                    "USING (pid) WHERE locktype = 'advisory' AND datname = %s",
                    (name,),
                )
            assert not b.still_held()
            assert a.try_acquire()
            a.release()
            b.release()
        finally:
            first.dispose()
            second.dispose()


def test_a_platform_on_sqlite_always_leads(tmp_path: Path) -> None:
    engine = db.create(f"sqlite:///{tmp_path / 'pier.db'}")
    try:
        leadership = Leadership(engine)
        assert leadership.try_acquire()
        assert leadership.still_held()
    finally:
        engine.dispose()
