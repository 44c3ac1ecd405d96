"""The alarm runner: evaluates every metric alarm on a clock, records state changes, acts on them.

Lifecycle (pier.platform.server starts and stops it with the platform):
  start()   a task wakes every `interval_s` seconds, at multiples of it plus `delay_s` (points
            flushed a little late are in), evaluates every alarm in a worker thread (one
            metric query each) and publishes the transitions; `wake()` asks for an evaluation
            at once (PutMetricAlarm does, so a new alarm leaves INSUFFICIENT_DATA quickly).
  aclose()  stops the loop, then gives actions in flight `drain_s` to finish.

Each evaluation covers the evaluation range ending at the last whole minute before
`now - delay_s` (the last 10 seconds for periods under a minute): CloudWatch's sliding window.
SetAlarmState's state therefore holds until the next evaluation, as on CloudWatch.

A transition, whether from an evaluation or from SetAlarmState (`submit`), is:
1. recorded: the alarm's state, reason and StateReasonData, and a StateUpdate history item
   (compare-and-set: an evaluation of an alarm that was updated or set meanwhile is dropped);
2. logged (`pier.alarms`, WARNING into ALARM, INFO otherwise);
3. handed to every subscriber (`subscribe(callback)`: a function or a coroutine function
   taking an AlarmTransition; coroutines run as tasks, plain functions inline, so keep those
   short); a failing subscriber is logged and never stops the others;
4. acted on, when ActionsEnabled: the actions of the new state (see pier.monitor.alarms.actions)
   run as tasks, never blocking the loop; each outcome is an Action history item.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pier.monitor.alarms.actions import (
    ActionOutcome,
    WebhookSender,
    action_history_data,
    actions_for,
    is_webhook,
    notification,
    unreachable,
)
from pier.monitor.alarms.alarms import AlarmState, Slot, evaluate, period_starts, rule_from_request
from pier.store.alarms import AlarmStore, HistoryEntry, StoredAlarm, history_json
from pier.store.metrics import MetricStore

__all__ = ["AlarmRunner", "AlarmTransition", "Subscriber", "state_update_entry"]

log = logging.getLogger("pier.alarms")

HISTORY_DAYS = 14  # CloudWatch keeps two weeks of alarm history
PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class AlarmTransition:
    """What subscribers receive: one alarm changed state."""

    alarm_name: str
    alarm_arn: str
    old_state: str
    new_state: str
    reason: str
    reason_data: dict[str, Any] | None
    timestamp: datetime
    request: dict[str, Any] = field(repr=False)  # the alarm's configuration
    configuration_updated_at: datetime = field(repr=False)
    source: str = "evaluation"  # or "SetAlarmState"

    @classmethod
    def of(cls, before: StoredAlarm, after: StoredAlarm, source: str) -> AlarmTransition:
        return cls(
            after.name,
            after.arn,
            before.state,
            after.state,
            after.reason,
            json.loads(after.reason_data) if after.reason_data else None,
            after.state_updated_at,
            after.request,
            after.configuration_updated_at,
            source,
        )


Subscriber = Callable[[AlarmTransition], Awaitable[None] | None]


def state_update_entry(
    before: StoredAlarm, state: str, reason: str, reason_data: str | None, at: datetime
) -> HistoryEntry:
    """CloudWatch's StateUpdate history item."""
    new: dict[str, Any] = {"stateValue": state, "stateReason": reason}
    if reason_data:
        new["stateReasonData"] = json.loads(reason_data)
    old: dict[str, Any] = {"stateValue": before.state, "stateReason": before.reason}
    if before.reason_data:
        old["stateReasonData"] = json.loads(before.reason_data)
    return HistoryEntry(
        before.name,
        at,
        "StateUpdate",
        f"Alarm updated from {before.state} to {state}",
        history_json({"version": "1.0", "oldState": old, "newState": new}),
    )


class AlarmRunner:
    def __init__(
        self,
        alarms: AlarmStore,
        metrics: MetricStore,
        *,
        account: str,
        region: str,
        interval_s: float = 60.0,
        delay_s: float = 15.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        webhooks: WebhookSender | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.alarms = alarms
        self.metrics = metrics
        self.account = account
        self.region = region
        self.interval_s = interval_s
        self.delay_s = delay_s
        self.clock = clock
        self.webhooks = webhooks or WebhookSender()
        self._subscribers: list[Subscriber] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_prune: datetime | None = None

    # -------------------------------------------------------------------------- interface
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback` with every transition from now on; returns the unsubscriber."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def wake(self) -> None:
        """Evaluate soon (thread-safe): called after PutMetricAlarm."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def submit(self, transition: AlarmTransition) -> None:
        """Publish a transition recorded elsewhere (SetAlarmState); thread-safe."""
        if self._loop is None:
            log.warning("alarm runner not started: %s not published", transition)
            return
        self._loop.call_soon_threadsafe(self._spawn, self.publish(transition))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.create_task(self._run(), name="pier-alarms")
        log.info(
            "alarm runner: evaluating every %g s (+%g s for late points)",
            self.interval_s,
            self.delay_s,
        )

    async def aclose(self, drain_s: float = 10.0) -> None:
        if self._main is not None:
            self._main.cancel()
            await asyncio.gather(self._main, return_exceptions=True)
            self._main = None
        await self.drain(drain_s)
        self._loop = None
        await self.webhooks.aclose()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for actions and subscribers in flight (cancelled after `timeout_s`)."""
        while self._tasks:
            pending = list(self._tasks)
            _, late = await asyncio.wait(pending, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
                log.warning("alarm actions cancelled at shutdown: %d", len(late))
                return

    # --------------------------------------------------------------------------- the loop
    def next_tick(self, now: datetime) -> float:
        """Seconds from `now` to the next evaluation: multiples of interval_s, + delay_s."""
        t = now.timestamp() - self.delay_s
        nxt = math.floor(t / self.interval_s + 1) * self.interval_s
        return max(nxt - t, 0.0)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.next_tick(self.clock()))
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("alarm evaluation failed; retrying at the next tick")

    async def run_once(self, now: datetime | None = None) -> list[AlarmTransition]:
        """Evaluate every alarm at `now` (default: the clock) and publish the transitions."""
        at = now or self.clock()
        transitions = await asyncio.to_thread(self.evaluate_all, at)
        for t in transitions:
            await self.publish(t)
        if self._last_prune is None or at - self._last_prune >= PRUNE_EVERY:
            self._last_prune = at
            await asyncio.to_thread(self.alarms.prune_history, at - timedelta(days=HISTORY_DAYS))
        return transitions

    # ------------------------------------------------------------------------- evaluation
    def evaluate_all(self, now: datetime) -> list[AlarmTransition]:
        out = []
        for alarm in self.alarms.find():
            try:
                transition = self.evaluate_alarm(alarm, now)
            except Exception:
                log.exception("alarm %r could not be evaluated", alarm.name)
                continue
            if transition is not None:
                out.append(transition)
        return out

    def window_end(self, period: int, now: datetime) -> datetime:
        step = 60 if period >= 60 else 10
        t = now.timestamp() - self.delay_s
        return datetime.fromtimestamp(math.floor(t / step) * step, UTC)

    def evaluate_alarm(self, alarm: StoredAlarm, now: datetime) -> AlarmTransition | None:
        """Evaluate one alarm; record and return its transition, if any."""
        rule = rule_from_request(alarm.request)
        end = self.window_end(rule.period, now)
        starts = period_starts(rule, end)
        points = self.metrics.query(
            rule.namespace,
            rule.metric_name,
            dict(rule.dimensions),
            starts[0],
            end,
            rule.period,
            rule.statistic.value,
            unit=rule.unit,
        )
        by_start = {p.timestamp: p for p in points}
        slots = [
            Slot(s, by_start[s].value, by_start[s].sample_count) if s in by_start else Slot(s)
            for s in starts
        ]
        # Stamped when evaluated, not when the tick began: a SetAlarmState made in between
        # must stay before the transition that undoes it in the history.
        stamp = max(now, self.clock())
        result = evaluate(rule, slots, AlarmState(alarm.state), stamp)
        if result.state.value == alarm.state:
            return None
        data = json.dumps(result.reason_data, separators=(",", ":"))
        changed = self.alarms.set_state(
            alarm.name,
            result.state.value,
            result.reason,
            data,
            stamp,
            lambda before: state_update_entry(
                before, result.state.value, result.reason, data, stamp
            ),
            expect_state=alarm.state,
            expect_configuration=alarm.configuration_updated_at,
        )
        if changed is None:  # updated, set or deleted meanwhile: the next tick sees it
            return None
        return AlarmTransition.of(*changed, source="evaluation")

    # ------------------------------------------------------------------------- publishing
    async def publish(self, t: AlarmTransition) -> None:
        level = logging.WARNING if t.new_state == AlarmState.ALARM else logging.INFO
        log.log(level, 'alarm "%s" %s -> %s: %s', t.alarm_name, t.old_state, t.new_state, t.reason)
        for callback in list(self._subscribers):
            try:
                result = callback(t)
                if inspect.isawaitable(result):
                    self._spawn(_guarded(result, callback))
            except Exception:
                log.exception("alarm subscriber %r failed on %s", callback, t.alarm_name)
        if not t.request.get("ActionsEnabled", True):
            return
        actions = actions_for(t.request, t.new_state)
        if not actions:
            return
        message = notification(
            t.request,
            arn=t.alarm_arn,
            account=self.account,
            region=self.region,
            old_state=t.old_state,
            new_state=t.new_state,
            reason=t.reason,
            changed_at=t.timestamp,
            configuration_updated_at=t.configuration_updated_at,
        )
        for action in actions:
            self._spawn(self._act(t, action, message))

    async def _act(self, t: AlarmTransition, action: str, message: dict[str, Any]) -> None:
        if is_webhook(action):
            outcome = await self.webhooks.send(action, message)
        else:
            outcome = unreachable(action)
        await asyncio.to_thread(self._record_action, t, outcome, message)

    def _record_action(
        self, t: AlarmTransition, outcome: ActionOutcome, message: dict[str, Any]
    ) -> None:
        if not outcome.succeeded:
            log.error(
                'alarm "%s" -> %s: action %s failed after %d attempt(s): %s',
                t.alarm_name,
                t.new_state,
                outcome.action,
                outcome.attempts,
                outcome.error,
            )
        data = action_history_data(outcome, t.timestamp, message)
        entry = HistoryEntry(
            t.alarm_name, self.clock(), "Action", outcome.summary, history_json(data)
        )
        self.alarms.add_history([entry])

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _guarded(result: Awaitable[Any], callback: Subscriber) -> None:
    try:
        await result
    except Exception:
        log.exception("alarm subscriber %r failed", callback)
