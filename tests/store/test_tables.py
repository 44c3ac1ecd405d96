"""pier.store.tables.UtcDateTime: every datetime comes back aware and in UTC, on SQLite and on
PostgreSQL (a throwaway database, migrated like the platform's), whatever zone it was given in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import StatementError

from pier.store import db
from pier.store.tables import AlarmHistoryRow

PARIS_WINTER = timezone(timedelta(hours=1))


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    with migrated_engine.begin() as conn:
        conn.execute(delete(AlarmHistoryRow))
    return migrated_engine


def entry(at: datetime) -> AlarmHistoryRow:
    return AlarmHistoryRow(alarm_name="a", timestamp=at, type="StateUpdate", summary="", data="{}")


def test_a_time_comes_back_aware_in_utc(engine: Engine) -> None:
    sessions = db.sessions(engine)
    local = datetime(2026, 12, 4, 18, 30, 15, 250000, tzinfo=PARIS_WINTER)
    with sessions.begin() as s:
        s.add(entry(local))
    with sessions() as s:
        [got] = s.scalars(select(AlarmHistoryRow.timestamp))
    assert got == local
    assert got.tzinfo is UTC
    assert got.hour == 17  # stored as UTC, not as the local digits


def test_comparisons_in_sql_are_made_in_utc(engine: Engine) -> None:
    sessions = db.sessions(engine)
    with sessions.begin() as s:
        s.add(entry(datetime(2026, 12, 4, 17, 0, tzinfo=UTC)))
    bound = datetime(2026, 12, 4, 17, 30, tzinfo=PARIS_WINTER)  # 16:30 UTC: before the entry
    with sessions() as s:
        later = list(s.scalars(select(AlarmHistoryRow).where(AlarmHistoryRow.timestamp > bound)))
    assert len(later) == 1


def test_a_naive_time_is_refused(engine: Engine) -> None:
    sessions = db.sessions(engine)
    with pytest.raises(StatementError, match="naive datetime"), sessions.begin() as s:
        s.add(entry(datetime(2026, 12, 4, 17, 0)))
