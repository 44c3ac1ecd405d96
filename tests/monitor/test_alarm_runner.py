"""The alarm runner on a real store (SQLite and PostgreSQL) with an injected clock: evaluation
windows, transitions and their history, webhooks (retries, timeout, failures recorded),
subscribers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pier.monitor.alarms.actions import WebhookSender
from pier.monitor.alarms.alarms import INITIAL_REASON
from pier.monitor.alarms.runner import AlarmRunner, AlarmTransition, state_update_entry
from pier.store import db
from pier.store.alarms import AlarmStore, HistoryEntry
from pier.store.metrics import MetricPoint, MetricStore

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # a whole minute
NS, METRIC = "Pier/Test", "Errors"
DIMS = {"EndpointName": "e"}


@pytest.fixture(scope="module")
def engine(migrated_engine: Any) -> Any:
    return migrated_engine


@pytest.fixture
def stores(engine: Any) -> tuple[AlarmStore, MetricStore]:
    from sqlalchemy import delete

    from pier.store.tables import AlarmHistoryRow, AlarmRow, MetricPointRow

    with engine.begin() as conn:
        for table in (AlarmRow, AlarmHistoryRow, MetricPointRow):
            conn.execute(delete(table))
    sessions = db.sessions(engine)
    return AlarmStore(sessions), MetricStore(sessions)


class Hooks:
    """An httpx transport answering per URL: a status, or an exception to raise."""

    def __init__(self, answers: dict[str, int | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.calls.append((url, json.loads(request.content)))
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)


def make_runner(
    stores: tuple[AlarmStore, MetricStore], hooks: Hooks | None = None
) -> tuple[AlarmRunner, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    transport = httpx.MockTransport(hooks or Hooks({}))
    sender = WebhookSender(timeout_s=5, tries=3, backoff_s=1, sleep=sleep, transport=transport)
    runner = AlarmRunner(
        stores[0], stores[1], account="000000000000", region="us-east-1",
        interval_s=60, delay_s=0, clock=lambda: T0, webhooks=sender,
    )  # fmt: skip
    return runner, slept


def put_alarm(
    store: AlarmStore, name: str = "errors", at: datetime = T0 - timedelta(hours=1), **request: Any
) -> None:
    req: dict[str, Any] = {
        "AlarmName": name,
        "Namespace": NS,
        "MetricName": METRIC,
        "Dimensions": [{"Name": "EndpointName", "Value": "e"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    req.update(request)
    entry = HistoryEntry(name, at, "ConfigurationUpdate", "created", "{}")
    store.create_or_update(
        name, f"arn:aws:cloudwatch:us-east-1:000000000000:alarm:{name}", req,
        ("INSUFFICIENT_DATA", INITIAL_REASON), at, entry,
    )  # fmt: skip


def write(metrics: MetricStore, minute: int, value: float) -> None:
    at = T0 + timedelta(minutes=minute, seconds=30)
    metrics.write([MetricPoint.single(NS, METRIC, DIMS, at, value)])


def test_transitions_follow_the_data_and_are_recorded(
    stores: tuple[AlarmStore, MetricStore],
) -> None:
    alarms, metrics = stores
    put_alarm(alarms)
    runner, _ = make_runner(stores)

    async def scenario() -> list[list[AlarmTransition]]:
        steps = [await runner.run_once(T0 + timedelta(seconds=5))]  # no data: stays
        write(metrics, -1, 3.0)
        write(metrics, -1, 4.0)  # the minute's Sum is 7
        steps.append(await runner.run_once(T0 + timedelta(seconds=6)))
        write(metrics, 0, 1.0)
        steps.append(await runner.run_once(T0 + timedelta(seconds=65)))
        steps.append(await runner.run_once(T0 + timedelta(seconds=66)))  # nothing new
        await runner.aclose()
        return steps

    steps = asyncio.run(scenario())
    assert [[(t.old_state, t.new_state) for t in s] for s in steps] == [
        [],
        [("INSUFFICIENT_DATA", "ALARM")],
        [("ALARM", "OK")],
        [],
    ]
    alarm = alarms.get("errors")
    assert alarm is not None
    assert alarm.state == "OK"
    assert alarm.reason == (
        "Threshold Crossed: 1 datapoint [1.0 (30/11/26 06:00:00)] was not greater than the "
        "threshold (5.0)."
    )
    assert alarm.state_updated_at == T0 + timedelta(seconds=65)
    data = json.loads(alarm.reason_data or "")
    assert data["evaluatedDatapoints"] == [
        {"timestamp": "2026-11-30T06:00:00.000+0000", "sampleCount": 1.0, "value": 1.0}
    ]
    updates = alarms.history("errors", types=["StateUpdate"])
    assert [h.summary for h in updates] == [
        "Alarm updated from ALARM to OK",
        "Alarm updated from INSUFFICIENT_DATA to ALARM",
    ]
    first = json.loads(updates[1].data)
    assert first["oldState"] == {"stateValue": "INSUFFICIENT_DATA", "stateReason": INITIAL_REASON}
    assert first["newState"]["stateValue"] == "ALARM"
    assert first["newState"]["stateReasonData"]["recentDatapoints"] == [7.0]


def test_webhooks_succeed_retry_and_fail_in_history(
    stores: tuple[AlarmStore, MetricStore],
) -> None:
    alarms, metrics = stores
    good, bad, slow = "http://hooks/good", "http://hooks/bad", "http://hooks/slow"
    sns = "arn:aws:sns:us-east-1:000000000000:ops"
    put_alarm(alarms, AlarmActions=[good, bad, slow, sns], AlarmDescription="too many errors")
    hooks = Hooks({good: 204, bad: 500, slow: httpx.ReadTimeout("slow")})
    runner, slept = make_runner(stores, hooks)
    write(metrics, -1, 10.0)

    async def scenario() -> None:
        await runner.run_once(T0 + timedelta(seconds=1))
        await runner.drain()
        await runner.aclose()

    asyncio.run(scenario())
    assert sorted(url for url, _ in hooks.calls) == [bad] * 3 + [good] + [slow] * 3
    assert sorted(slept) == [1, 1, 2, 2]  # back-off between the three tries
    message = hooks.calls[0][1]
    assert message["AlarmName"] == "errors"
    assert message["AlarmDescription"] == "too many errors"
    assert (message["OldStateValue"], message["NewStateValue"]) == ("INSUFFICIENT_DATA", "ALARM")
    assert message["StateChangeTime"] == "2026-11-30T06:00:01.000+0000"
    assert message["NewStateReason"].startswith("Threshold Crossed: 1 datapoint [10.0")
    assert message["Trigger"] == {
        "MetricName": METRIC,
        "Namespace": NS,
        "StatisticType": "Statistic",
        "Statistic": "SUM",
        "Unit": None,
        "Dimensions": [{"value": "e", "name": "EndpointName"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 5.0,
        "TreatMissingData": "missing",
        "EvaluateLowSampleCountPercentile": "",
    }
    actions = {h.summary: json.loads(h.data) for h in alarms.history("errors", types=["Action"])}
    assert set(actions) == {
        f"Successfully executed action {good}",
        f"Failed to execute action {bad}",
        f"Failed to execute action {slow}",
        f"Failed to execute action {sns}",
    }
    assert actions[f"Successfully executed action {good}"]["actionState"] == "Succeeded"
    failed = actions[f"Failed to execute action {bad}"]
    assert (failed["actionState"], failed["attempts"], failed["error"]) == ("Failed", 3, "HTTP 500")
    assert json.loads(failed["publishedMessage"])["AlarmName"] == "errors"
    assert actions[f"Failed to execute action {slow}"]["error"] == "timed out after 5 s"
    assert "cannot execute AWS ARN" in actions[f"Failed to execute action {sns}"]["error"]


def test_actions_disabled_and_other_states(stores: tuple[AlarmStore, MetricStore]) -> None:
    alarms, metrics = stores
    url = "http://hooks/ok"
    put_alarm(alarms, "quiet", AlarmActions=[url], ActionsEnabled=False)
    put_alarm(alarms, "loud", OKActions=[url], AlarmActions=[], TreatMissingData="notBreaching")
    hooks = Hooks({url: 200})
    runner, _ = make_runner(stores, hooks)
    write(metrics, -1, 10.0)

    async def scenario() -> list[AlarmTransition]:
        out = await runner.run_once(T0 + timedelta(seconds=1))
        await runner.drain()
        await runner.aclose()
        return out

    got = asyncio.run(scenario())
    # "quiet" alarms without acting; "loud" sees the same breaching point: ALARM, no action
    assert sorted((t.alarm_name, t.new_state) for t in got) == [
        ("loud", "ALARM"),
        ("quiet", "ALARM"),
    ]
    assert hooks.calls == []
    assert alarms.history(types=["Action"]) == []


def test_subscribers_get_every_transition_and_failures_stay_contained(
    stores: tuple[AlarmStore, MetricStore], caplog: pytest.LogCaptureFixture
) -> None:
    alarms, metrics = stores
    put_alarm(alarms)
    runner, _ = make_runner(stores)
    seen: list[str] = []

    def broken(t: AlarmTransition) -> None:
        raise RuntimeError("subscriber bug")

    async def later(t: AlarmTransition) -> None:
        await asyncio.sleep(0)
        seen.append(f"async {t.alarm_name} {t.new_state} {t.source}")

    runner.subscribe(broken)
    unsubscribe = runner.subscribe(lambda t: seen.append(f"sync {t.new_state}"))
    runner.subscribe(later)
    write(metrics, -1, 10.0)

    async def scenario() -> None:
        await runner.run_once(T0 + timedelta(seconds=1))
        await runner.drain()
        unsubscribe()
        write(metrics, 0, 0.0)
        await runner.run_once(T0 + timedelta(seconds=61))
        await runner.drain()
        await runner.aclose()

    asyncio.run(scenario())
    assert seen == ["sync ALARM", "async errors ALARM evaluation", "async errors OK evaluation"]
    assert "subscriber" in caplog.text
    assert 'alarm "errors" INSUFFICIENT_DATA -> ALARM: Threshold Crossed' in caplog.text


def test_an_evaluation_of_an_alarm_changed_meanwhile_is_dropped(
    stores: tuple[AlarmStore, MetricStore],
) -> None:
    alarms, metrics = stores
    put_alarm(alarms)
    stale = alarms.get("errors")
    assert stale is not None
    put_alarm(alarms, at=T0 - timedelta(minutes=1), Threshold=50.0)  # updated meanwhile
    write(metrics, -1, 10.0)
    runner, _ = make_runner(stores)
    assert runner.evaluate_alarm(stale, T0 + timedelta(seconds=1)) is None
    assert alarms.get("errors").state == "INSUFFICIENT_DATA"  # type: ignore[union-attr]


def test_ticks_and_windows() -> None:
    runner = AlarmRunner(
        None,
        None,
        account="0",
        region="r",
        interval_s=60,
        delay_s=10,  # type: ignore[arg-type]
    )
    assert runner.next_tick(T0) == 10
    assert runner.next_tick(T0 + timedelta(seconds=10)) == 60
    assert runner.next_tick(T0 + timedelta(seconds=11)) == 59
    assert runner.window_end(60, T0 + timedelta(seconds=9)) == T0 - timedelta(minutes=1)
    assert runner.window_end(300, T0 + timedelta(seconds=75)) == T0 + timedelta(minutes=1)
    assert runner.window_end(10, T0 + timedelta(seconds=35)) == T0 + timedelta(seconds=20)


def test_the_loop_wakes_on_request_and_stops(
    stores: tuple[AlarmStore, MetricStore], tmp_path: Path
) -> None:
    alarms, metrics = stores
    put_alarm(alarms)
    write(metrics, -1, 10.0)
    runner, _ = make_runner(stores)  # ticks every 60 s: only wake() makes it evaluate now

    async def scenario() -> str | None:
        await runner.start()
        runner.wake()
        for _ in range(200):
            alarm = await asyncio.to_thread(alarms.get, "errors")
            if alarm is not None and alarm.state == "ALARM":
                break
            await asyncio.sleep(0.01)
        await runner.aclose()
        return alarm.state if alarm else None

    assert asyncio.run(scenario()) == "ALARM"


def test_an_evaluation_does_not_undo_a_state_set_meanwhile(
    stores: tuple[AlarmStore, MetricStore],
) -> None:
    alarms = stores[0]
    put_alarm(alarms, TreatMissingData="notBreaching")
    stale = alarms.get("errors")
    assert stale is not None
    done = alarms.set_state("errors", "ALARM", "drill", None, T0, lambda before: None)
    assert done is not None
    assert (done[0].state, done[1].state, done[1].reason) == ("INSUFFICIENT_DATA", "ALARM", "drill")
    runner, _ = make_runner(stores)
    assert runner.evaluate_alarm(stale, T0 + timedelta(seconds=1)) is None  # read before
    after = alarms.get("errors")
    assert after is not None
    assert (after.state, after.reason) == ("ALARM", "drill")
    fresh = runner.evaluate_alarm(after, T0 + timedelta(seconds=2))  # the next evaluation
    assert fresh is not None
    assert (fresh.old_state, fresh.new_state) == ("ALARM", "OK")
    assert alarms.set_state("ghost", "OK", "x", None, T0, lambda before: None) is None


def test_a_change_is_never_stamped_before_the_one_it_follows(
    stores: tuple[AlarmStore, MetricStore],
) -> None:
    """A wall clock that steps back (or a writer that read the clock early) must not list an
    evaluation's OK before the SetAlarmState it undid: history order is the order of changes."""
    alarms = stores[0]
    put_alarm(alarms, TreatMissingData="notBreaching")
    later = T0 + timedelta(seconds=5)
    done = alarms.set_state(
        "errors", "ALARM", "drill", None, later,
        lambda before: state_update_entry(before, "ALARM", "drill", None, later),
    )  # fmt: skip
    assert done is not None
    runner, _ = make_runner(stores)  # its clock says T0: behind the SetAlarmState
    current = alarms.get("errors")
    assert current is not None
    back = runner.evaluate_alarm(current, T0 + timedelta(seconds=1))
    assert back is not None
    assert back.new_state == "OK"
    now = alarms.get("errors")
    assert now is not None
    assert now.state == "OK"
    assert now.state_updated_at >= later
    updates = alarms.history("errors", types=["StateUpdate"], newest_first=False)
    assert [json.loads(u.data)["newState"]["stateValue"] for u in updates] == ["ALARM", "OK"]
