"""pier.store.hosting and pier.store.monitoring on SQLite and PostgreSQL: a unit of work
commits or rolls back whole, a unique-key clash is Duplicate, the tag limit holds, and
executions are found by every filter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete

from pier.store import db
from pier.store.db import Duplicate
from pier.store.hosting import MAX_TAGS, HostingStore, TooManyTags
from pier.store.monitoring import MonitoringStore
from pier.store.tables import (
    ModelRow,
    MonitoringExecutionRow,
    MonitoringScheduleRow,
    TagRow,
)

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


@pytest.fixture
def sessions(migrated_engine: Engine) -> db.Sessions:
    with migrated_engine.begin() as conn:
        for table in (TagRow, ModelRow, MonitoringExecutionRow, MonitoringScheduleRow):
            conn.execute(delete(table))
    return db.sessions(migrated_engine)


def model(name: str) -> ModelRow:
    return ModelRow(name=name, arn=f"arn:model/{name.lower()}", created_at=NOW, request={})


def test_a_resource_is_added_with_its_tags_and_deleted_with_them(sessions: db.Sessions) -> None:
    store = HostingStore(sessions)
    with store.begin() as tx:
        tx.add(model("m"), [{"Key": "team", "Value": "ml"}])
    with store.read() as tx:
        assert tx.taken(ModelRow, "arn:model/m")
        assert [(t.key, t.value) for t in tx.tags("arn:model/m")] == [("team", "ml")]
    with store.begin() as tx:
        row = tx.model("m")
        assert row is not None
        tx.delete(row)
    with store.read() as tx:
        assert tx.models() == []
        assert tx.tags("arn:model/m") == []


def test_one_arn_for_names_differing_in_case_is_duplicate(sessions: db.Sessions) -> None:
    store = HostingStore(sessions)
    with store.begin() as tx:
        tx.add(model("m"))
    with pytest.raises(Duplicate), store.begin() as tx:
        tx.add(model("M"))  # another primary key, the same ARN


def test_too_many_tags_roll_the_whole_change_back(sessions: db.Sessions) -> None:
    store = HostingStore(sessions)
    tags = [{"Key": f"k{i}", "Value": ""} for i in range(MAX_TAGS + 1)]
    with pytest.raises(TooManyTags), store.begin() as tx:
        tx.add(model("m"), tags)
    with store.read() as tx:
        assert tx.model("m") is None
        assert tx.tags("arn:model/m") == []


def test_executions_by_filter_and_the_latest(sessions: db.Sessions) -> None:
    store = MonitoringStore(sessions)
    with store.begin() as tx:
        tx.add_schedule(
            MonitoringScheduleRow(
                name="s", arn="arn:s", status="Scheduled", endpoint_name="e",
                monitoring_type="DataQuality", created_at=NOW, last_modified_at=NOW, request={},
            )
        )  # fmt: skip
        ids = [
            tx.add_execution(
                MonitoringExecutionRow(
                    schedule_name="s",
                    endpoint_name="e",
                    monitoring_type="DataQuality",
                    scheduled_at=NOW,
                    created_at=NOW,
                    last_modified_at=NOW,
                    status=status,
                )
            )
            for status in ("Completed", "Pending", "Failed")
        ]
    with store.read() as tx:
        assert tx.schedule_taken("arn:s")
        assert [s.name for s in tx.schedules(status="Scheduled")] == ["s"]
        assert tx.schedules(status="Stopped") == []
        pending = tx.executions(statuses=("Pending", "InProgress"))
        assert [e.id for e in pending] == [ids[1]]
        assert len(tx.executions(schedule_name="s", endpoint_name="e")) == 3
        assert tx.executions(monitoring_type="ModelQuality") == []
        latest = tx.latest_execution("s")
        assert latest is not None
        assert latest.id == ids[2]
        assert latest.scheduled_at == NOW
