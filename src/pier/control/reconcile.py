"""The reconcile loop: moves what runs toward what was asked, and alone touches the backend.

Desired state is in the store: each endpoint's deployment (pier.control.deployment: its
variants with their containers, desired weights and counts, and the label of their fleet), and
a pending deployment during an update. Actual state is the backend's instances. The
loop wakes when the service records a change (or every second), and on each endpoint:

- Creating: launch every variant's instances, wait until healthy, publish the route, InService;
  on failure stop them and mark Failed with the instance log's tail as FailureReason.
- Updating to a new config (blue/green): launch the new instances while the old serve; when all
  are healthy switch the route, then drain and stop the old; on failure stop the new ones and
  return to InService on the old config with FailureReason set.
- Updating with deployment guardrails (the update's DeploymentConfig, planned by
  pier.control.rollout): the new fleet comes up (whole, or batch by batch when rolling), the
  router splits the traffic between the fleets step by step, and each step bakes while the
  AutoRollbackConfiguration alarms are watched (`on_alarm`, subscribed to the alarm runner).
  An alarm in ALARM sends all traffic back to the old fleet at once (a rolling update first
  relaunches the old capacity it stopped) and the endpoint ends InService on its old config,
  FailureReason naming the alarm; UpdateRollbackFailed when the old fleet cannot come back.
  Every update's progress and outcome go to the deployment history (store: deployments).
- Updating weights/capacities: publish weights, launch or stop instances to match counts.
- Deleting: unpublish, stop every instance, delete the row.
- InService: replace instances that died or stopped answering /ping.
- Housekeeping (every `housekeeping_interval_s`, when no operation is in flight): the
  `housekeeping` callable (pier.hosting.housekeeping) removes what instances that no longer
  run left behind: their directories, and models no running instance uses.

On start it publishes a route for every endpoint that served (InService, OutOfService, Updating),
so that the runtime knows each of them from its first request: until its instances serve again,
a request gets a retryable 503 (ServiceUnavailable), never "not found". It adopts the instances
a previous platform process left running (the backend keeps their records): those matching what
an endpoint runs serve again, others are stopped. An adopted instance that was still loading
gets the rest of its startup health check time, then serves or is replaced; after a reboot
(nothing survives) the instances are launched again.

An InService endpoint that cannot get its instances back (its model directory is gone, the
model no longer loads) says so: FailureReason tells why, and the status is OutOfService while
no instance serves. Healing keeps trying; the endpoint is InService again once it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pier.contract.capture_config import CaptureSettings
from pier.control.deployment import (
    Deployment,
    VariantLive,
    VariantPlan,
    deployed,
    deployed_columns,
    pending,
    pending_columns,
)
from pier.control.rollout import Plan, PlanError, Policy, Step, plan, rollback_batches
from pier.control.status import EndpointStatus, VariantStatus
from pier.hosting.base import Backend, Instance, InstanceSpec, InstanceState, new_instance_id
from pier.monitor.alarms.runner import AlarmTransition
from pier.router.table import (
    EndpointRoute,
    FleetSplit,
    RoutingTable,
    ShadowRoute,
    Target,
    VariantRoute,
)
from pier.store.alarms import AlarmStore
from pier.store.db import Sessions
from pier.store.hosting import HostingStore
from pier.store.tables import EndpointRow

log = logging.getLogger("pier.reconcile")

ModelResolver = Callable[[dict[str, Any]], str]  # container definition -> model URI for serve
# (ids of the instances that run, their models' paths) -> removes what the others left
Housekeeping = Callable[[set[str], set[str]], object]


class LaunchFailed(Exception):
    pass


class RolledBack(Exception):
    """A guarded update must roll back; the message is the reason (FailureReason's core)."""


@dataclass
class _Watch:
    """A guarded update in progress: its alarms, the first to fire, and where it stands."""

    alarms: frozenset[str]
    fired: asyncio.Future[str]
    step: Step | None = None
    step_index: int = -1
    steps: int = 0
    bake_ends: float = 0.0  # time.time() when the current bake ends


class OperationKind(StrEnum):
    """What the task running for an endpoint does."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    HEAL = "heal"
    ORPHANS = "orphans"  # stop the instances of an endpoint that no longer exists


#: The variant status DescribeEndpoint shows while an operation runs.
_VARIANT_STATUS = {
    OperationKind.CREATE: VariantStatus.CREATING,
    OperationKind.UPDATE: VariantStatus.UPDATING,
}


#: Endpoints whose instances are kept running and healed (and adopted after a restart).
_SERVING = (EndpointStatus.IN_SERVICE, EndpointStatus.OUT_OF_SERVICE)
#: Endpoints that served before a restart: their routes are published from the store at once.
_RESTORED = (*_SERVING, EndpointStatus.UPDATING)
#: The start of the FailureReason a failed heal writes (cleared when healing succeeds).
HEAL_FAILED = "Could not replace an instance: "
_MIN_ADOPTED_WAIT_S = 5.0  # an adopted Pending instance gets at least this to answer /ping


def _now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        sessions: Sessions,
        backend: Backend,
        table: RoutingTable,
        resolve_model: ModelResolver,
        *,
        health_interval_s: float = 5.0,
        stop_grace_s: float = 30.0,
        housekeeping: Housekeeping | None = None,
        housekeeping_interval_s: float = 300.0,
        launches: asyncio.Event | None = None,
    ) -> None:
        self._housekeeping = housekeeping
        self._housekeeping_interval_s = housekeeping_interval_s
        self._store = HostingStore(sessions)
        self._alarm_store = AlarmStore(sessions)
        self._watches: dict[str, _Watch] = {}  # endpoint -> its guarded update's alarms
        self._backend = backend
        self._table = table
        self._resolve_model = resolve_model
        self._health_interval_s = health_interval_s
        self._stop_grace_s = stop_grace_s
        self._instances: dict[str, list[Instance]] = {}  # endpoint -> every instance it has
        # endpoint -> (kind, task)
        self._tasks: dict[str, tuple[OperationKind, asyncio.Task[None]]] = {}
        self._operation_started: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._health_due = False
        self._leftovers: asyncio.Task[None] | None = None
        # Set when instances may be launched (the platform holds it until MLflow, which
        # resolves and serves registry models, is up); None: at once.
        self._launches = launches
        # Endpoints published from the store at start whose instances do not serve yet.
        self._restoring: set[str] = set()

    # ------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._adopt()
        self._main = asyncio.create_task(self._run(), name="pier-reconcile")

    async def stop(self, *, stop_instances: bool) -> None:
        """Stop reconciling; with stop_instances, also drain and stop every instance."""
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        for _, task in list(self._tasks.values()):
            task.cancel()
        for _, task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._leftovers is not None:
            await self._leftovers
        if stop_instances:
            every = [i for group in self._instances.values() for i in group]
            await asyncio.gather(*(self._stop_instance(i) for i in every), return_exceptions=True)
            self._instances.clear()

    def suspect(self, instance_id: str) -> None:
        """The router could not connect to an instance: check health now, not in 5 s."""
        log.warning("instance %s refused a connection", instance_id)
        self._health_due = True
        self._wakeup.set()

    def notify(self) -> None:
        """Called by the service (from any thread) after it records a change."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def on_alarm(self, transition: AlarmTransition) -> None:
        """The alarm runner's subscriber (called inline on the loop): an alarm watched by a
        guarded update went into ALARM, so that update rolls back now."""
        if transition.new_state != "ALARM":
            return
        for watch in self._watches.values():
            if transition.alarm_name in watch.alarms and not watch.fired.done():
                watch.fired.set_result(transition.alarm_name)

    # ------------------------------------------------------------------------ live view
    def pending_variants(self, endpoint: str) -> dict[str, VariantLive]:
        """The new fleet of a guarded update while traffic shifts to it: per variant, the
        weight it takes now (its weight times the step's share), its healthy instances, and
        ActivatingTraffic / Baking with the step it is at."""
        route = self._table.get(endpoint)
        watch = self._watches.get(endpoint)
        if route is None or route.incoming is None or watch is None or watch.step is None:
            return {}
        share = route.incoming.share
        status = {
            "Status": str(VariantStatus.BAKING),
            "StatusMessage": f"step {watch.step_index + 1} of {watch.steps}: {watch.step.label}, "
            f"{share:.0%} of the traffic on the new fleet",
            "StartTime": watch.bake_ends - watch.step.bake_s,
        }
        return {
            name: VariantLive(v.weight * share, len(v.targets), [status])
            for name, v in route.incoming.variants.items()
        }

    def variants(self, endpoint: str) -> dict[str, VariantLive]:
        route = self._table.get(endpoint)
        task = self._tasks.get(endpoint)
        status = _VARIANT_STATUS.get(task[0]) if task is not None else None
        started = self._operation_started.get(endpoint)
        statuses = []
        if status is not None:
            statuses = [{"Status": str(status), "StartTime": started or time.time()}]
        out: dict[str, VariantLive] = {}
        if route is not None:
            models = {
                i.spec.instance_id: i.spec.model_path for i in self._instances.get(endpoint, [])
            }
            routes: list[VariantRoute | ShadowRoute] = [*route.variants.values(), *route.shadows]
            for v in routes:
                running = sorted(
                    {models[t.instance_id] for t in v.targets if t.instance_id in models}
                )
                weight = v.weight if isinstance(v, VariantRoute) else v.share
                out[v.name] = VariantLive(weight, len(v.targets), list(statuses), running)
        return out

    # ------------------------------------------------------------------------ main loop
    async def _run(self) -> None:
        last_health = last_sweep = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)
            self._wakeup.clear()
            try:
                rows = await asyncio.to_thread(self._load)
                self._step_all(rows)
                due = time.monotonic() - last_health >= self._health_interval_s
                if due or self._health_due:
                    self._health_due = False
                    last_health = time.monotonic()
                    await self._check_health(rows)
                if time.monotonic() - last_sweep >= self._housekeeping_interval_s and self._idle():
                    last_sweep = time.monotonic()
                    await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile pass failed; retrying")

    def _idle(self) -> bool:
        """No operation in flight: no launch is between resolving a model and using it."""
        leftovers = self._leftovers is None or self._leftovers.done()
        return not self._tasks and leftovers

    async def _sweep(self) -> None:
        if self._housekeeping is None:
            return
        every = [*self._backend.list()]
        every += [i for group in self._instances.values() for i in group]
        running = {i.spec.instance_id for i in every}
        models = {i.spec.model_path for i in every}
        await asyncio.to_thread(self._housekeeping, running, models)

    def _load(self) -> list[EndpointRow]:
        with self._store.read() as tx:
            return tx.endpoints()

    def _step_all(self, rows: list[EndpointRow]) -> None:
        names = {r.name for r in rows}
        for row in rows:
            self._step(row)
        for endpoint in list(self._instances):
            if endpoint not in names and endpoint not in self._tasks:
                self._spawn(endpoint, OperationKind.ORPHANS, self._stop_all(endpoint))

    def _step(self, row: EndpointRow) -> None:
        running = self._tasks.get(row.name)
        if running is not None:
            kind, task = running
            deleting = row.status == EndpointStatus.DELETING
            if deleting and kind != OperationKind.DELETE and not task.cancelling():
                task.cancel()  # its finally-blocks stop what it launched (once: not mid-cleanup)
            return
        status = EndpointStatus(row.status)
        current = deployed(row)
        update = pending(row)
        if status == EndpointStatus.CREATING:
            self._spawn(row.name, OperationKind.CREATE, self._create(row.name, current))
        elif status == EndpointStatus.UPDATING and update is not None:
            steps = _plan_of(row, current, update)
            work = (
                self._guarded_update(row.name, current, update, steps)
                if steps.guarded
                else self._update_config(row.name, current, update)
            )
            self._spawn(row.name, OperationKind.UPDATE, work)
        elif status == EndpointStatus.UPDATING:
            self._spawn(row.name, OperationKind.UPDATE, self._update_capacity(row.name, current))
        elif status == EndpointStatus.DELETING:
            self._spawn(row.name, OperationKind.DELETE, self._delete(row.name))
        elif status in _SERVING and self._missing(row.name, current):
            self._spawn(row.name, OperationKind.HEAL, self._heal(row.name, current))

    def _spawn(self, endpoint: str, kind: OperationKind, coro: Coroutine[Any, Any, None]) -> None:
        self._operation_started[endpoint] = time.time()
        task = asyncio.create_task(coro, name=f"pier-{kind}-{endpoint}")
        self._tasks[endpoint] = (kind, task)

        def done(t: asyncio.Task[None]) -> None:
            if endpoint in self._tasks and self._tasks[endpoint][1] is t:
                del self._tasks[endpoint]
            self._restoring.discard(endpoint)  # what it published is the endpoint's route now
            if not t.cancelled() and t.exception() is not None:
                log.error("%s of %s failed", kind, endpoint, exc_info=t.exception())
            self._wakeup.set()

        task.add_done_callback(done)

    # ------------------------------------------------------------------------ helpers
    def _of(self, endpoint: str, config: str, variant: str | None = None) -> list[Instance]:
        return [
            i
            for i in self._instances.get(endpoint, [])
            if i.spec.fleet == config and (variant is None or i.spec.variant == variant)
        ]

    def _missing(self, endpoint: str, deployment: Deployment) -> bool:
        for variant in deployment.plans:
            have = [
                i for i in self._of(endpoint, deployment.fleet, variant.name)
                if i.state == InstanceState.HEALTHY
            ]  # fmt: skip
            if len(have) < variant.instance_count:
                return True
        return False

    def _serves(self, endpoint: str, deployment: Deployment) -> bool:
        """Whether every production variant has a healthy instance."""
        fleet = deployment.fleet
        return all(
            any(i.state == InstanceState.HEALTHY for i in self._of(endpoint, fleet, v.name))
            for v in deployment.variants
        )

    async def _launch(
        self, endpoint: str, fleet: str, variant: VariantPlan, model_uri: str
    ) -> Instance:
        spec = InstanceSpec(
            endpoint=endpoint,
            variant=variant.name,
            fleet=fleet,
            instance_id=new_instance_id(endpoint, variant.name),
            image=variant.image,
            model_path=model_uri,
            environment=variant.environment,
            startup_timeout_s=variant.startup_timeout_s,
            instance_type=variant.instance_type,
        )
        instance = await self._backend.launch(spec)
        self._instances.setdefault(endpoint, []).append(instance)
        # FAILED at launch: it never ran (no environment or image for it, no model to mount).
        started = instance.state is not InstanceState.FAILED
        await self._backend.wait_healthy(instance, spec.startup_timeout_s)
        if instance.state != InstanceState.HEALTHY:
            what = "did not pass its health check" if started else "could not start"
            raise LaunchFailed(
                f"Variant {spec.variant}: the instance {what}. {instance.failure or ''}".strip()
            )
        return instance

    async def _launch_variants(self, endpoint: str, deployment: Deployment) -> None:
        jobs = []
        fleet = deployment.fleet
        for variant in deployment.plans:  # shadow variants run instances too
            want = variant.instance_count
            have = self._of(endpoint, fleet, variant.name)
            if want <= len(have):
                continue
            if self._launches is not None:
                await self._launches.wait()
            try:
                model_uri = await self._model_uri(variant, have)
            except Exception as exc:  # the reason goes to FailureReason
                raise LaunchFailed(f"Variant {variant.name}: {exc}") from exc
            for _ in range(want - len(have)):
                jobs.append(self._launch(endpoint, fleet, variant, model_uri))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            raise first if isinstance(first, LaunchFailed) else LaunchFailed(str(first))

    async def _model_uri(self, variant: VariantPlan, running: list[Instance]) -> str:
        """What the variant's instances load. Resolved once per fleet: a registry alias
        (models:/name@champion) is pinned to its version when the fleet is created, and
        instances added later (scaling, healing) load that same version, as the running ones
        do; moving the alias takes an UpdateEndpoint, as on SageMaker."""
        if running:
            return running[0].spec.model_path
        return await asyncio.to_thread(self._resolve_model, variant.container)

    def _publish(self, endpoint: str, deployment: Deployment) -> None:
        """Route traffic to the deployment's healthy instances, with its data capture; its
        shadow variants get their share of copies."""

        def targets(variant: VariantPlan) -> list[Target]:
            return [
                Target(i.spec.instance_id, i.url, bundles=i.spec.image is None)
                for i in self._of(endpoint, deployment.fleet, variant.name)
                if i.state == InstanceState.HEALTHY
            ]

        variants = {v.name: VariantRoute(v.name, v.weight, targets(v)) for v in deployment.variants}
        capture = CaptureSettings.from_config(deployment.data_capture)
        shadows = self._shadows(endpoint, deployment)
        restoring = endpoint in self._restoring
        self._table.set(
            EndpointRoute(endpoint, variants, capture, shadows=shadows, restoring=restoring)
        )

    def _shadows(self, endpoint: str, deployment: Deployment) -> tuple[ShadowRoute, ...]:
        """The deployment's shadow variants with their healthy instances and share."""
        return tuple(
            ShadowRoute(
                v.name,
                deployment.shadow_share(v),
                [
                    Target(i.spec.instance_id, i.url, bundles=i.spec.image is None)
                    for i in self._of(endpoint, deployment.fleet, v.name)
                    if i.state == InstanceState.HEALTHY
                ],
            )
            for v in deployment.shadow_variants
        )

    def _routes(self, endpoint: str, deployment: Deployment) -> dict[str, VariantRoute]:
        return {
            variant.name: VariantRoute(
                variant.name,
                variant.weight,
                [
                    Target(i.spec.instance_id, i.url, bundles=i.spec.image is None)
                    for i in self._of(endpoint, deployment.fleet, variant.name)
                    if i.state == InstanceState.HEALTHY
                ],
            )
            for variant in deployment.variants
        }

    def _publish_split(self, endpoint: str, old: Deployment, new: Deployment, share: float) -> None:
        """Route `share` of the traffic to the new fleet, the rest to the old (whose data
        capture applies to both until the update ends)."""
        capture = CaptureSettings.from_config(old.data_capture)
        split = FleetSplit(share, self._routes(endpoint, new))
        shadows = self._shadows(endpoint, old)  # the old config's shadows keep their copies
        self._table.set(
            EndpointRoute(endpoint, self._routes(endpoint, old), capture, split, shadows=shadows)
        )

    async def _stop_instance(self, instance: Instance) -> None:
        group = self._instances.get(instance.spec.endpoint, [])
        if instance in group:
            group.remove(instance)
        with contextlib.suppress(Exception):
            await self._backend.stop(instance, self._stop_grace_s)

    async def _stop_config(self, endpoint: str, fleet: str) -> None:
        doomed = self._of(endpoint, fleet)
        await asyncio.gather(*(self._stop_instance(i) for i in doomed), return_exceptions=True)

    async def _stop_all(self, endpoint: str) -> None:
        doomed = list(self._instances.get(endpoint, []))
        await asyncio.gather(*(self._stop_instance(i) for i in doomed), return_exceptions=True)
        self._instances.pop(endpoint, None)

    async def _save(self, name: str, **changes: Any) -> None:
        def write() -> None:
            with self._store.begin() as tx:
                row = tx.endpoint(name)
                if row is None or row.status == EndpointStatus.DELETING:
                    return  # deleted meanwhile: the delete task owns it now
                for key, value in changes.items():
                    setattr(row, key, value)
                row.last_modified_at = _now()

        await asyncio.to_thread(write)

    # ------------------------------------------------------------------------ operations
    async def _create(self, endpoint: str, deployment: Deployment) -> None:
        try:
            await self._launch_variants(endpoint, deployment)
        except asyncio.CancelledError:
            await self._stop_all(endpoint)
            raise
        except Exception as exc:
            await self._stop_all(endpoint)
            await self._save(endpoint, status=EndpointStatus.FAILED, failure_reason=str(exc))
            return
        self._publish(endpoint, deployment)
        await self._save(endpoint, status=EndpointStatus.IN_SERVICE, failure_reason=None)

    async def _update_config(self, endpoint: str, old: Deployment, new: Deployment) -> None:
        """Blue/green: the new fleet comes up beside the old one, then takes the traffic."""
        try:
            await self._launch_variants(endpoint, new)
        except asyncio.CancelledError:
            await self._stop_config(endpoint, new.fleet)
            raise
        except Exception as exc:
            await self._stop_config(endpoint, new.fleet)
            reason = f"Update failed, still serving {old.config_name}: {exc}"
            await self._save(
                endpoint,
                status=EndpointStatus.IN_SERVICE,
                failure_reason=reason,
                **pending_columns(None),
            )
            await self._record(endpoint, new.generation, status="Failed", reason=reason, end=True)
            return
        await self._save(
            endpoint,
            status=EndpointStatus.IN_SERVICE,
            failure_reason=None,
            **deployed_columns(new),
            **pending_columns(None),
        )
        self._publish(endpoint, new)  # traffic moves
        await self._record(endpoint, new.generation, status="Succeeded", step=0, share=1.0,
                           end=True)  # fmt: skip
        await self._stop_config(endpoint, old.fleet)  # the old one drains and stops

    # ------------------------------------------------------------------ guarded updates
    async def _record(self, endpoint: str, generation: int, *, end: bool = False,
                      **changes: Any) -> None:  # fmt: skip
        """Write the progress or outcome of the endpoint's deployment `generation` to its
        history (a deployment the history does not hold, e.g. deleted meanwhile, is skipped)."""

        def write() -> None:
            with self._store.begin() as tx:
                row = tx.deployment(endpoint, generation)
                if row is None:
                    return
                for key, value in changes.items():
                    setattr(row, key, value)
                if end:
                    row.ended_at = _now()

        with contextlib.suppress(Exception):  # history is a record: it never stops an update
            await asyncio.to_thread(write)

    def _alarm_in_alarm(self, names: frozenset[str]) -> str | None:
        """The first watched alarm already in ALARM (SageMaker rolls back on it too)."""
        for name in sorted(names):
            alarm = self._alarm_store.get(name)
            if alarm is not None and alarm.state == "ALARM":
                return name
        return None

    async def _bake(self, endpoint: str, watch: _Watch, seconds: float) -> None:
        """Wait out the step's baking period, which ends at `watch.bake_ends` (set when the
        step's traffic shifted); RolledBack as soon as a watched alarm is in ALARM."""
        fired = (
            await asyncio.to_thread(self._alarm_in_alarm, watch.alarms) if watch.alarms else None
        )
        if fired is None:
            with contextlib.suppress(TimeoutError):
                left = max(0.0, min(seconds, watch.bake_ends - time.time()))
                fired = await asyncio.wait_for(asyncio.shield(watch.fired), left)
        if fired is not None:
            step = watch.step.label if watch.step is not None else "the update"
            raise RolledBack(
                f'the alarm "{fired}" went into ALARM while {step} baked '
                f"(step {watch.step_index + 1} of {watch.steps})"
            )

    async def _guarded_update(
        self, endpoint: str, old: Deployment, new: Deployment, steps: Plan
    ) -> None:
        """An update under deployment guardrails: see the module's docstring."""
        loop = asyncio.get_running_loop()
        watch = _Watch(frozenset(steps.alarms), loop.create_future(), steps=len(steps.steps))
        self._watches[endpoint] = watch
        try:
            async with asyncio.timeout(steps.timeout_s):
                await self._shift(endpoint, old, new, steps, watch)
        except RolledBack as exc:
            await self._roll_back(endpoint, old, new, steps, str(exc))
            return
        except TimeoutError:
            reason = (f"the update did not finish within MaximumExecutionTimeoutInSeconds "
                      f"({steps.timeout_s:g} s)")  # fmt: skip
            await self._roll_back(endpoint, old, new, steps, reason)
            return
        except LaunchFailed as exc:
            await self._roll_back(endpoint, old, new, steps, str(exc), failed=True)
            return
        except asyncio.CancelledError:
            await self._stop_config(endpoint, new.fleet)
            raise
        finally:
            self._watches.pop(endpoint, None)
        await self._save(
            endpoint,
            status=EndpointStatus.IN_SERVICE,
            failure_reason=None,
            **deployed_columns(new),
            **pending_columns(None),
        )
        await self._record(endpoint, new.generation, status="Succeeded", end=True)
        await self._stop_config(endpoint, old.fleet)  # what the rolling update left, if any

    async def _shift(
        self, endpoint: str, old: Deployment, new: Deployment, steps: Plan, watch: _Watch
    ) -> None:
        """Launch, then shift traffic step by step, baking after each; RolledBack or
        LaunchFailed end it early (the caller rolls back)."""
        rolling = steps.policy == Policy.ROLLING
        if not rolling:
            await self._launch_variants(endpoint, new)
        for index, step in enumerate(steps.steps):
            if rolling:
                batch = tuple(replace(v, instance_count=step.new_instances) for v in new.variants)
                await self._launch_variants(endpoint, new.with_variants(batch))
            watch.step, watch.step_index = step, index
            watch.bake_ends = time.time() + step.bake_s
            self._publish_split(endpoint, old, new, step.share)
            await self._record(endpoint, new.generation, step=index, share=step.share,
                               step_started_at=_now())  # fmt: skip
            await self._bake(endpoint, watch, step.bake_s)
            if rolling:
                await self._shrink(endpoint, old, new, step)
        watch.step = None
        self._publish(endpoint, new)  # all traffic on the new fleet; the old one waits
        if steps.termination_wait_s:
            await asyncio.sleep(steps.termination_wait_s)

    async def _shrink(self, endpoint: str, old: Deployment, new: Deployment, step: Step) -> None:
        """Rolling: stop the old instances past what the step keeps (routes first)."""
        extra = self._of(endpoint, old.fleet)[step.old_after :]
        if not extra:
            return
        for instance in extra:
            instance.state = InstanceState.STOPPED
        self._publish_split(endpoint, old, new, step.share)
        await asyncio.gather(*(self._stop_instance(i) for i in extra))

    async def _roll_back(
        self,
        endpoint: str,
        old: Deployment,
        new: Deployment,
        steps: Plan,
        why: str,
        *,
        failed: bool = False,
    ) -> None:
        """All traffic back to the old fleet (relaunching the old capacity a rolling update
        stopped, batch by batch), the new fleet stopped, the endpoint InService on its old
        config; UpdateRollbackFailed, serving what it can, when the old fleet cannot return."""
        old_count = sum(v.instance_count for v in old.variants)
        running = len([i for i in self._of(endpoint, old.fleet)
                       if i.state == InstanceState.HEALTHY])  # fmt: skip
        batch = steps.rollback_batch if steps.policy == Policy.ROLLING else None
        try:
            for size in rollback_batches(old_count, running, batch):
                grown = tuple(replace(v, instance_count=size) for v in old.variants)
                await self._launch_variants(endpoint, old.with_variants(grown))
                self._publish_split(endpoint, old, new, max(0.0, 1 - size / old_count))
            if self._missing(endpoint, old):  # an old instance died meanwhile
                await self._launch_variants(endpoint, old)
        except Exception as exc:
            reason = (f"Update to {new.config_name} failed ({why}) and the rollback to "
                      f"{old.config_name} failed too: {exc}")  # fmt: skip
            log.error("%s: %s", endpoint, reason)
            await self._save(endpoint, status=EndpointStatus.UPDATE_ROLLBACK_FAILED,
                             failure_reason=reason, **pending_columns(None))  # fmt: skip
            await self._record(endpoint, new.generation, status="RollbackFailed", reason=reason,
                               end=True)  # fmt: skip
            return
        self._publish(endpoint, old)  # every request on the old fleet from here
        log.warning("%s: update to %s rolled back: %s", endpoint, new.config_name, why)
        verb = "failed" if failed else "was rolled back"
        reason = f"Update to {new.config_name} {verb}, still serving {old.config_name}: {why}"
        await self._record(endpoint, new.generation, status="Failed" if failed else "RolledBack",
                           share=0.0, reason=reason, end=True)  # fmt: skip
        await self._save(endpoint, status=EndpointStatus.IN_SERVICE, failure_reason=reason,
                         **pending_columns(None))  # fmt: skip
        await self._stop_config(endpoint, new.fleet)  # drains what it still answers

    async def _update_capacity(self, endpoint: str, deployment: Deployment) -> None:
        try:
            await self._launch_variants(endpoint, deployment)
        except Exception as exc:
            self._publish(endpoint, deployment)
            await self._save(
                endpoint, status=EndpointStatus.IN_SERVICE, failure_reason=f"Update failed: {exc}"
            )
            return
        self._publish(endpoint, deployment)
        for variant in deployment.variants:
            extra = self._of(endpoint, deployment.fleet, variant.name)[variant.instance_count :]
            for instance in extra:
                instance.state = InstanceState.STOPPED
            if extra:
                self._publish(endpoint, deployment)
                await asyncio.gather(*(self._stop_instance(i) for i in extra))
        await self._save(endpoint, status=EndpointStatus.IN_SERVICE, failure_reason=None)

    async def _delete(self, endpoint: str) -> None:
        self._table.remove(endpoint)
        await self._stop_all(endpoint)

        def drop() -> None:
            with self._store.begin() as tx:
                current = tx.endpoint(endpoint)
                if current is not None:
                    tx.delete(current)
                    tx.drop_deployments(endpoint)

        await asyncio.to_thread(drop)

    async def _heal(self, endpoint: str, deployment: Deployment) -> None:
        await self._settle(endpoint, deployment)
        try:
            await self._launch_variants(endpoint, deployment)
        except Exception as exc:
            log.warning("could not replace an instance of %s: %s", endpoint, exc)
            self._restoring.discard(endpoint)  # it cannot serve: 429 and a FailureReason
            self._publish(endpoint, deployment)
            await self._report_heal(endpoint, f"{HEAL_FAILED}{exc}")
            await asyncio.sleep(5)  # do not hammer a model that keeps failing
            return
        self._publish(endpoint, deployment)
        await self._report_heal(endpoint, None)

    async def _settle(self, endpoint: str, deployment: Deployment) -> None:
        """Before healing, the deployment's instances that are not healthy: a Pending one
        (adopted while it was loading) gets what is left of its startup health check time, then
        serves or is stopped; failed ones are let go. What is let go is then replaced."""

        async def settle(instance: Instance) -> None:
            if instance.state == InstanceState.PENDING:
                started = instance.started_at
                if started.tzinfo is None:  # a record written without its zone: UTC
                    started = started.replace(tzinfo=UTC)
                age = (datetime.now(UTC) - started).total_seconds()
                left = max(_MIN_ADOPTED_WAIT_S, instance.spec.startup_timeout_s - age)
                checked = await self._backend.wait_healthy(instance, left)
                if checked.state == InstanceState.HEALTHY:
                    self._publish(endpoint, deployment)  # it serves from now
                    return
                log.warning("instance %s of %s never became healthy: replacing it (%s)",
                            instance.spec.instance_id, endpoint, instance.failure)  # fmt: skip
            await self._stop_instance(instance)

        waiting = [i for i in self._of(endpoint, deployment.fleet)
                   if i.state != InstanceState.HEALTHY]  # fmt: skip
        await asyncio.gather(*(settle(i) for i in waiting))

    async def _report_heal(self, endpoint: str, failure: str | None) -> None:
        """Say how healing went: a failure sets FailureReason, and OutOfService while no
        instance serves; a success clears what an earlier failure said. Written on change only."""
        serving = any(i.state == InstanceState.HEALTHY for i in self._instances.get(endpoint, []))

        def write() -> None:
            with self._store.begin() as tx:
                row = tx.endpoint(endpoint)
                if row is None or row.status not in _SERVING:
                    return
                status, reason = row.status, row.failure_reason
                if failure is not None:
                    status = EndpointStatus.IN_SERVICE if serving else EndpointStatus.OUT_OF_SERVICE
                    reason = failure
                elif reason is not None and reason.startswith(HEAL_FAILED):
                    status, reason = EndpointStatus.IN_SERVICE, None
                elif status == EndpointStatus.OUT_OF_SERVICE:
                    status = EndpointStatus.IN_SERVICE
                if (status, reason) != (row.status, row.failure_reason):
                    row.status, row.failure_reason = status, reason
                    row.last_modified_at = _now()

        await asyncio.to_thread(write)

    async def _check_health(self, rows: list[EndpointRow]) -> None:
        serving = {r.name: r for r in rows if r.status in _SERVING}
        for endpoint, group in list(self._instances.items()):
            row = serving.get(endpoint)
            if row is None or endpoint in self._tasks:
                continue
            for instance in list(group):
                if instance.state != InstanceState.HEALTHY:
                    continue
                if not await self._backend.health(instance):
                    log.warning("instance %s of %s is unhealthy: replacing it",
                                instance.spec.instance_id, endpoint)  # fmt: skip
                    instance.state = InstanceState.UNHEALTHY
                    self._publish(endpoint, deployed(row))
                    await self._stop_instance(instance)
        self._wakeup.set()

    async def _adopt(self) -> None:
        adopted = await self._backend.adopt()
        rows = await asyncio.to_thread(self._load)
        by_name = {r.name: r for r in rows}
        leftovers: list[Instance] = []
        for instance in adopted:
            row = by_name.get(instance.spec.endpoint)
            current = deployed(row) if row is not None else None
            keep = (
                row is not None
                and current is not None
                and row.status in _RESTORED
                and instance.spec.fleet == current.fleet
                and instance.spec.variant in {v.name for v in current.plans}
            )
            if keep:
                self._instances.setdefault(instance.spec.endpoint, []).append(instance)
                log.info("adopted instance %s", instance.spec.instance_id)
            else:
                leftovers.append(instance)
        for row in rows:
            current = deployed(row)
            if row.status in _RESTORED and current is not None:
                if not self._serves(row.name, current):
                    self._restoring.add(row.name)
                self._publish(row.name, current)
        if leftovers:
            # Drained concurrently and in the background: the API serves meanwhile.
            log.info("stopping %d leftover instance(s)", len(leftovers))
            self._leftovers = asyncio.create_task(self._stop_leftovers(leftovers))

    async def _stop_leftovers(self, instances: list[Instance]) -> None:
        async def stop(instance: Instance) -> None:
            with contextlib.suppress(Exception):
                await self._backend.stop(instance, self._stop_grace_s)

        await asyncio.gather(*(stop(i) for i in instances))


def _plan_of(row: EndpointRow, old: Deployment, new: Deployment) -> Plan:
    """How the row's pending update rolls out (UpdateEndpoint validated its DeploymentConfig;
    one that no longer plans, which cannot happen short of a hand-edited row, goes all at
    once)."""
    try:
        return plan(
            row.deployment_config,
            {v.name: v.instance_count for v in old.variants},
            {v.name: v.instance_count for v in new.variants},
        )
    except PlanError:
        log.exception("%s: the stored DeploymentConfig does not plan; updating all at once",
                      row.name)  # fmt: skip
        return plan(None, {}, {})
