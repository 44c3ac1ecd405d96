"""Metric alarms and their history in the state store.

An alarm row holds the PutMetricAlarm request as the API accepted it and the alarm's current
state; `alarm_history` holds DescribeAlarmHistory's items (StateUpdate, ConfigurationUpdate,
Action), each with CloudWatch's summary and HistoryData JSON string. What those say is decided
by the callers (pier.monitor.alarm_service and pier.monitor.alarms.runner); this module only
keeps them. Every method is one short transaction: call it from a thread on an event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pier.store.tables import AlarmHistoryRow, AlarmRow

__all__ = ["AlarmStore", "HistoryEntry", "StoredAlarm", "history_json"]

_RETRIES = 5


@dataclass(frozen=True)
class StoredAlarm:
    name: str
    arn: str
    request: dict[str, Any]
    state: str
    reason: str
    reason_data: str | None
    state_updated_at: datetime
    configuration_updated_at: datetime


@dataclass(frozen=True)
class HistoryEntry:
    alarm_name: str
    timestamp: datetime
    type: str  # StateUpdate | ConfigurationUpdate | Action
    summary: str
    data: str  # JSON
    # Once stored: the row's id, which orders entries of the same timestamp (history pages).
    id: int | None = field(default=None, compare=False)


def _stored(row: AlarmRow) -> StoredAlarm:
    return StoredAlarm(
        row.name,
        row.arn,
        dict(row.request),
        row.state,
        row.reason,
        row.reason_data,
        row.state_updated_at,
        row.configuration_updated_at,
    )


def _history_row(entry: HistoryEntry) -> AlarmHistoryRow:
    return AlarmHistoryRow(
        alarm_name=entry.alarm_name,
        timestamp=entry.timestamp,
        type=entry.type,
        summary=entry.summary,
        data=entry.data,
    )


class AlarmStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ------------------------------------------------------------------------------ alarms
    def count(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(AlarmRow)) or 0)

    def get(self, name: str) -> StoredAlarm | None:
        with self._sessions() as session:
            row = session.get(AlarmRow, name)
            return None if row is None else _stored(row)

    def find(
        self,
        names: Sequence[str] | None = None,
        prefix: str | None = None,
        state: str | None = None,
    ) -> list[StoredAlarm]:
        """Alarms sorted by name; `names`, `prefix` and `state` filter (all that are given)."""
        q = select(AlarmRow).order_by(AlarmRow.name)
        if names is not None:
            q = q.where(AlarmRow.name.in_(list(names)))
        if prefix:
            # startswith, not LIKE: names may hold % and _
            q = q.where(func.substr(AlarmRow.name, 1, len(prefix)) == prefix)
        if state is not None:
            q = q.where(AlarmRow.state == state)
        with self._sessions() as session:
            return [_stored(r) for r in session.scalars(q)]

    def create_or_update(
        self,
        name: str,
        arn: str,
        request: dict[str, Any],
        initial_state: tuple[str, str],
        now: datetime,
        history: HistoryEntry,
        max_alarms: int | None = None,
    ) -> tuple[StoredAlarm | None, StoredAlarm] | None:
        """Create the alarm in `initial_state` (state, reason), or replace the configuration
        of the existing one, keeping its state (as PutMetricAlarm does). Returns (before,
        after), or None when creating it would exceed `max_alarms`."""
        with self._sessions.begin() as session:
            row = session.get(AlarmRow, name)
            before = None if row is None else _stored(row)
            if row is None:
                if max_alarms is not None:
                    total = session.scalar(select(func.count()).select_from(AlarmRow)) or 0
                    if total >= max_alarms:
                        return None
                row = AlarmRow(
                    name=name,
                    arn=arn,
                    request=request,
                    state=initial_state[0],
                    reason=initial_state[1],
                    reason_data=None,
                    state_updated_at=now,
                    configuration_updated_at=now,
                )
                session.add(row)
            else:
                row.request = request
                row.configuration_updated_at = now
            session.add(_history_row(history))
            session.flush()
            return before, _stored(row)

    def delete(self, names: Iterable[str], history: Sequence[HistoryEntry]) -> list[str]:
        """Delete every named alarm, or none: returns the names that do not exist (and then
        deletes nothing)."""
        wanted = list(dict.fromkeys(names))
        with self._sessions.begin() as session:
            rows = {
                r.name: r
                for r in session.scalars(select(AlarmRow).where(AlarmRow.name.in_(wanted)))
            }
            missing = [n for n in wanted if n not in rows]
            if missing:
                return missing
            for row in rows.values():
                session.delete(row)
            session.add_all(_history_row(h) for h in history)
        return []

    def set_actions_enabled(self, names: Iterable[str], enabled: bool) -> list[str]:
        """Set ActionsEnabled on the alarms that exist; returns their names."""
        done = []
        with self._sessions.begin() as session:
            for row in session.scalars(select(AlarmRow).where(AlarmRow.name.in_(list(names)))):
                row.request = {**row.request, "ActionsEnabled": enabled}
                done.append(row.name)
        return done

    def set_state(
        self,
        name: str,
        state: str,
        reason: str,
        reason_data: str | None,
        now: datetime,
        history: Callable[[StoredAlarm], HistoryEntry | None],
        expect_state: str | None = None,
        expect_configuration: datetime | None = None,
    ) -> tuple[StoredAlarm, StoredAlarm] | None:
        """Move the alarm to `state`, recording `history(before)` (if not None) in the same
        transaction; returns (before, after), or None when the alarm does not exist. With
        `expect_state` / `expect_configuration`, nothing happens (None) unless the alarm is
        still in that state with that configuration: an evaluation made on an alarm that
        changed meanwhile is dropped.

        The write is a conditional UPDATE on the state and configuration just read, so a
        concurrent change (SetAlarmState, PutMetricAlarm, an evaluation) is never overwritten
        unseen, on SQLite (whose driver reads outside the write transaction) as on PostgreSQL;
        without expectations, a lost race is read again and retried.

        A change is never stamped before the one it follows: `now` is raised to the state's
        last update when the wall clock stepped back or a slower writer took its time earlier,
        so the history lists the changes in the order they were made."""
        t = AlarmRow
        asked = now
        for _ in range(_RETRIES):
            with self._sessions.begin() as session:
                row = session.get(t, name)
                if row is None:
                    return None
                before = _stored(row)
                if expect_state is not None and before.state != expect_state:
                    return None
                if expect_configuration is not None and (
                    before.configuration_updated_at != expect_configuration
                ):
                    return None
                now = max(asked, before.state_updated_at)
                changed = session.execute(
                    update(t)
                    .where(
                        t.name == name,
                        t.state == row.state,
                        t.configuration_updated_at == row.configuration_updated_at,
                    )
                    .values(
                        state=state, reason=reason, reason_data=reason_data, state_updated_at=now
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(changed, "rowcount", 0) != 1:
                    if expect_state is not None or expect_configuration is not None:
                        return None
                    continue  # changed between the read and the write: read it again
                entry = history(before)
                if entry is not None:
                    session.add(_history_row(replace(entry, timestamp=max(entry.timestamp, now))))
                after = replace(
                    before, state=state, reason=reason, reason_data=reason_data,
                    state_updated_at=now.astimezone(UTC),
                )  # fmt: skip
                return before, after
        return None

    # ----------------------------------------------------------------------------- history
    def add_history(self, entries: Iterable[HistoryEntry]) -> None:
        with self._sessions.begin() as session:
            session.add_all(_history_row(e) for e in entries)

    def history(
        self,
        name: str | None = None,
        types: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        newest_first: bool = True,
        after: tuple[datetime, int] | None = None,
        limit: int = 100,
    ) -> list[HistoryEntry]:
        """Entries in time order (ties by id), those after `after` (the timestamp and id of
        the last entry of the previous page) when given."""
        t = AlarmHistoryRow
        order = (t.timestamp.desc(), t.id.desc()) if newest_first else (t.timestamp, t.id)
        q = select(t).order_by(*order).limit(limit)
        if after is not None:
            at, last = after
            if newest_first:
                q = q.where(or_(t.timestamp < at, and_(t.timestamp == at, t.id < last)))
            else:
                q = q.where(or_(t.timestamp > at, and_(t.timestamp == at, t.id > last)))
        if name is not None:
            q = q.where(t.alarm_name == name)
        if types:
            q = q.where(t.type.in_(list(types)))
        if start is not None:
            q = q.where(t.timestamp >= start)
        if end is not None:
            q = q.where(t.timestamp <= end)
        with self._sessions() as session:
            return [
                HistoryEntry(r.alarm_name, r.timestamp, r.type, r.summary, r.data, r.id)
                for r in session.scalars(q)
            ]

    def prune_history(self, before: datetime) -> int:
        """Delete history older than `before` (CloudWatch keeps two weeks)."""
        with self._sessions.begin() as session:
            result = session.execute(
                delete(AlarmHistoryRow).where(AlarmHistoryRow.timestamp < before)
            )
        return int(getattr(result, "rowcount", 0) or 0)


def history_json(data: dict[str, Any]) -> str:
    """HistoryData as CloudWatch writes it: compact JSON."""
    return json.dumps(data, separators=(",", ":"), default=str)
