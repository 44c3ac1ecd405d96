"""Monitoring schedules and their executions in the state store.

The rules (pier.control.monitoring_service) and the runs (pier.monitor.schedules.scheduler) are
decided elsewhere; this module reads and writes the rows. As in pier.store.hosting, a unit of
work is one transaction: `MonitoringStore.begin()` for changes, `read()` for reads, and
`MonitoringTx` offers the queries. A schedule reads the endpoint it monitors (its deployed data
capture), so `endpoint` is here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pier.store.db import Duplicate, Sessions
from pier.store.tables import EndpointRow, MonitoringExecutionRow, MonitoringScheduleRow

__all__ = ["MonitoringStore", "MonitoringTx"]


class MonitoringTx:
    """The queries and writes of one transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # ---------------------------------------------------------------- schedules
    def schedule(self, name: str) -> MonitoringScheduleRow | None:
        return self._s.get(MonitoringScheduleRow, name)

    def schedules(self, status: str | None = None) -> list[MonitoringScheduleRow]:
        """Every schedule, or those in `status`."""
        query = select(MonitoringScheduleRow)
        if status is not None:
            query = query.where(MonitoringScheduleRow.status == status)
        return list(self._s.scalars(query))

    def schedule_taken(self, arn: str) -> bool:
        """Whether a schedule has the ARN (names differing only in case do)."""
        t = MonitoringScheduleRow
        return self._s.scalar(select(t.name).where(t.arn == arn)) is not None

    def add_schedule(self, row: MonitoringScheduleRow) -> None:
        """(A clash of keys raises Duplicate from `begin`.)"""
        self._s.add(row)

    def delete_schedule(self, row: MonitoringScheduleRow) -> None:
        """Its executions stay, as SageMaker keeps them."""
        self._s.delete(row)

    def endpoint(self, name: str) -> EndpointRow | None:
        return self._s.get(EndpointRow, name)

    # --------------------------------------------------------------- executions
    def execution(self, execution_id: int) -> MonitoringExecutionRow | None:
        return self._s.get(MonitoringExecutionRow, execution_id)

    def latest_execution(self, schedule_name: str) -> MonitoringExecutionRow | None:
        t = MonitoringExecutionRow
        query = select(t).where(t.schedule_name == schedule_name).order_by(t.id.desc()).limit(1)
        return self._s.scalars(query).first()

    def executions(
        self,
        *,
        schedule_name: str | None = None,
        endpoint_name: str | None = None,
        statuses: Iterable[str] | None = None,
        monitoring_type: str | None = None,
    ) -> list[MonitoringExecutionRow]:
        """The executions matching every filter given."""
        t = MonitoringExecutionRow
        query = select(t)
        if schedule_name is not None:
            query = query.where(t.schedule_name == schedule_name)
        if endpoint_name is not None:
            query = query.where(t.endpoint_name == endpoint_name)
        if statuses is not None:
            query = query.where(t.status.in_(list(statuses)))
        if monitoring_type is not None:
            query = query.where(t.monitoring_type == monitoring_type)
        return list(self._s.scalars(query))

    def add_execution(self, row: MonitoringExecutionRow) -> int:
        """Record an execution; its id."""
        self._s.add(row)
        self._s.flush()
        return row.id


class MonitoringStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @contextmanager
    def begin(self) -> Iterator[MonitoringTx]:
        """A transaction that changes rows; Duplicate when a unique key clashes at commit."""
        try:
            with self._sessions.begin() as session:
                yield MonitoringTx(session)
        except IntegrityError:
            raise Duplicate() from None

    @contextmanager
    def read(self) -> Iterator[MonitoringTx]:
        with self._sessions() as session:
            yield MonitoringTx(session)
