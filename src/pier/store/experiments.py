"""Inference experiments (shadow tests) in the state store.

The rules are pier.control.experiment_service's; this module reads and writes the rows. As in
pier.store.hosting, a unit of work is one transaction: `ExperimentStore.begin()` for changes
(Duplicate when a unique key clashes at commit), `read()` for reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pier.store.db import Duplicate, Sessions
from pier.store.tables import InferenceExperimentRow

__all__ = ["ExperimentStore", "ExperimentTx"]


class ExperimentTx:
    """The queries and writes of one transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def experiment(self, name: str) -> InferenceExperimentRow | None:
        return self._s.get(InferenceExperimentRow, name)

    def experiments(self) -> list[InferenceExperimentRow]:
        return list(self._s.scalars(select(InferenceExperimentRow)))

    def taken(self, arn: str) -> bool:
        """Whether an experiment has the ARN (names differing only in case do)."""
        t = InferenceExperimentRow
        return self._s.scalar(select(t.name).where(t.arn == arn)) is not None

    def running_on(self, endpoint: str) -> InferenceExperimentRow | None:
        """The experiment that holds the endpoint now (Running or Starting), if any."""
        t = InferenceExperimentRow
        query = select(t).where(t.endpoint_name == endpoint, t.status.in_(["Running"]))
        return self._s.scalars(query).first()

    def delete(self, row: InferenceExperimentRow) -> None:
        self._s.delete(row)

    def add(self, row: InferenceExperimentRow) -> None:
        """(A clash of keys raises Duplicate from `begin`.)"""
        self._s.add(row)


class ExperimentStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @contextmanager
    def begin(self) -> Iterator[ExperimentTx]:
        """A transaction that changes rows; Duplicate when a unique key clashes at commit."""
        try:
            with self._sessions.begin() as session:
                yield ExperimentTx(session)
        except IntegrityError:
            raise Duplicate() from None

    @contextmanager
    def read(self) -> Iterator[ExperimentTx]:
        with self._sessions() as session:
            yield ExperimentTx(session)
