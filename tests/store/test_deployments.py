"""The deployment history (pier.store.hosting, table `deployments`) on SQLite and PostgreSQL:
rows are written, progressed and ended, read newest first per endpoint (the read function
the console uses), and dropped with their endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete

from pier.control.rollout import plan
from pier.store import db
from pier.store.hosting import HostingStore, deployment_history
from pier.store.tables import DeploymentRow

T0 = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
CANARY = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "WaitIntervalInSeconds": 2,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        }
    },
    "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]},
}


@pytest.fixture
def sessions(migrated_engine: Engine) -> db.Sessions:
    with migrated_engine.begin() as conn:
        conn.execute(delete(DeploymentRow))
    return db.sessions(migrated_engine)


def row(endpoint: str, generation: int, to: str, started: datetime) -> DeploymentRow:
    return DeploymentRow(
        endpoint_name=endpoint,
        generation=generation,
        from_config="cfg-a",
        to_config=to,
        policy="CANARY",
        deployment_config=CANARY,
        plan=plan(CANARY, {"main": 1}, {"main": 1}).to_json(),
        status="InProgress",
        step=-1,
        share=0.0,
        started_at=started,
    )


def test_history_is_kept_progressed_and_read_newest_first(sessions: db.Sessions) -> None:
    store = HostingStore(sessions)
    with store.begin() as tx:
        tx.add_deployment(row("ep", 2, "cfg-b", T0))
        tx.add_deployment(row("other", 2, "cfg-x", T0))
    with store.begin() as tx:
        first = tx.deployment("ep", 2)
        assert first is not None
        first.step, first.share, first.step_started_at = 0, 0.25, T0 + timedelta(seconds=30)
    with store.begin() as tx:
        first = tx.deployment("ep", 2)
        assert first is not None
        first.status, first.reason = "RolledBack", 'the alarm "errors" went into ALARM'
        first.ended_at = T0 + timedelta(seconds=31)
        tx.add_deployment(row("ep", 3, "cfg-c", T0 + timedelta(minutes=5)))

    history = deployment_history(sessions, "ep")
    assert [(d.generation, d.to_config, d.status) for d in history] == [
        (3, "cfg-c", "InProgress"),
        (2, "cfg-b", "RolledBack"),
    ]
    rolled = history[1]
    assert (rolled.step, rolled.share) == (0, 0.25)
    assert rolled.step_started_at == T0 + timedelta(seconds=30)  # aware, UTC, on both stores
    assert rolled.ended_at == T0 + timedelta(seconds=31)
    assert rolled.reason == 'the alarm "errors" went into ALARM'
    assert rolled.deployment_config == CANARY
    assert [s["Share"] for s in rolled.plan["Steps"]] == [0.25, 1.0]
    assert rolled.plan["Alarms"] == ["errors"]
    assert len(deployment_history(sessions, "ep", limit=1)) == 1
    assert deployment_history(sessions, "ghost") == []

    with store.begin() as tx:
        tx.drop_deployments("ep")
    assert deployment_history(sessions, "ep") == []
    assert [d.to_config for d in deployment_history(sessions, "other")] == ["cfg-x"]
