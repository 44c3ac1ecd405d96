"""Deployment guardrails, planned: an UpdateEndpoint's DeploymentConfig as a list of steps.

Pure (no I/O, no clock): the service validates a DeploymentConfig with `plan` when
UpdateEndpoint is called (a `PlanError` is the ValidationException's message), and the
reconciler executes the same plan. SageMaker's semantics, as its API reference states them:

- BlueGreenUpdatePolicy: the whole new fleet is launched beside the old one, then traffic
  shifts to it: ALL_AT_ONCE in one step; CANARY in two (the canary, then the rest); LINEAR in
  n steps of LinearStepSize. Each step is followed by a baking period of WaitIntervalInSeconds
  (alarms watched; the last one is SageMaker's "final baking period"). After the last step,
  TerminationWaitInSeconds pass before the old fleet stops.
- RollingUpdatePolicy (one variant only, as on SageMaker): batches of MaximumBatchSize new
  instances are launched, take their share of the traffic and bake; after each bake as many
  old instances stop. A rollback brings the old capacity back in batches of
  RollbackMaximumBatchSize (all at once when absent).
- Sizes: INSTANCE_COUNT is a number of the variant's instances; CAPACITY_PERCENT a percentage
  of them. A step's share of the traffic on the new fleet is the fraction of the capacity it
  activates: n / count for INSTANCE_COUNT, the percentage itself for CAPACITY_PERCENT (pier's
  router splits traffic by share, so a 1-instance fleet can still take a 10% canary).
- Limits (SageMaker's): CanarySize at most 50% of the variant's instances, LinearStepSize
  10-50%, MaximumBatchSize 5-50%; only one of the two policies; MaximumExecutionTimeoutInSeconds
  larger than the waits it must cover; the new config has the same variant names as the old.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Policy(StrEnum):
    """How an update shifts traffic."""

    ALL_AT_ONCE = "ALL_AT_ONCE"  # also what an update without DeploymentConfig does
    CANARY = "CANARY"
    LINEAR = "LINEAR"
    ROLLING = "ROLLING"


class PlanError(ValueError):
    """The DeploymentConfig cannot be run on this endpoint; the message says why and where."""


@dataclass(frozen=True)
class Step:
    """One traffic step. During its baking period `share` of the requests reach the new
    fleet, which runs `new_instances`; the old fleet runs `old_instances`, and keeps
    `old_after` once the bake passed (rolling updates stop old capacity batch by batch)."""

    share: float
    new_instances: int
    old_instances: int
    old_after: int
    bake_s: float
    label: str

    def to_json(self) -> dict[str, Any]:
        """The step as the deployment history stores it."""
        return {
            "Share": self.share,
            "NewInstances": self.new_instances,
            "OldInstances": self.old_instances,
            "OldAfter": self.old_after,
            "BakeSeconds": self.bake_s,
            "Label": self.label,
        }


@dataclass(frozen=True)
class Plan:
    """The steps of one update, what ends it, and what is watched meanwhile."""

    policy: Policy
    steps: tuple[Step, ...]
    termination_wait_s: float = 0.0
    timeout_s: float | None = None
    alarms: tuple[str, ...] = ()
    rollback_batch: int | None = None  # rolling: old instances relaunched per rollback batch
    guarded: bool = field(default=False)  # False: the plain all-at-once blue/green update

    def to_json(self) -> dict[str, Any]:
        """The plan as the deployment history stores it."""
        return {
            "Policy": str(self.policy),
            "Steps": [s.to_json() for s in self.steps],
            "TerminationWaitInSeconds": self.termination_wait_s,
            "MaximumExecutionTimeoutInSeconds": self.timeout_s,
            "Alarms": list(self.alarms),
            "RollbackBatchSize": self.rollback_batch,
        }


def plain(old_count: int, new_count: int) -> Plan:
    """The update without DeploymentConfig: all at once, no bake, nothing watched."""
    return Plan(Policy.ALL_AT_ONCE, (Step(1.0, new_count, old_count, 0, 0.0, "all at once"),))


def _instances(size: Mapping[str, Any], count: int) -> int:
    """Instances of a `count`-instance variant that a CapacitySize activates (at least 1)."""
    if size["Type"] == "INSTANCE_COUNT":
        return min(int(size["Value"]), count)
    return max(1, min(count, math.floor(count * int(size["Value"]) / 100)))


def _share(size: Mapping[str, Any], count: int) -> float:
    """The share of the traffic a CapacitySize moves to the new fleet in one step."""
    if size["Type"] == "INSTANCE_COUNT":
        return min(1.0, int(size["Value"]) / count)
    return min(1.0, int(size["Value"]) / 100)


def _check_size(
    size: Mapping[str, Any], count: int, where: str, low_percent: int, high_percent: int
) -> None:
    """SageMaker's bounds on a CapacitySize, as a percentage of the variant's instances."""
    value = int(size["Value"])
    if size["Type"] == "CAPACITY_PERCENT":
        if not low_percent <= value <= high_percent:
            raise PlanError(
                f"{where}: a CAPACITY_PERCENT of {value} is out of range: it must be between "
                f"{low_percent} and {high_percent} (percent of the variant's instances)."
            )
        return
    percent = 100 * value / count
    if not low_percent <= percent <= high_percent:
        raise PlanError(
            f"{where}: an INSTANCE_COUNT of {value} is {percent:g}% of the variant's {count} "
            f"instance(s); it must be {low_percent}-{high_percent}% of them "
            f"(use CAPACITY_PERCENT for a share of a small fleet)."
        )


def _timeout(policy: Mapping[str, Any], where: str, waits: float) -> float | None:
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout is None:
        return None
    if timeout <= waits:
        raise PlanError(
            f"{where}.MaximumExecutionTimeoutInSeconds ({timeout}) must be larger than the "
            f"total waiting time of the deployment ({waits:g} seconds)."
        )
    return float(timeout)


def plan(
    config: Mapping[str, Any] | None,
    old_variants: Mapping[str, int],
    new_variants: Mapping[str, int],
) -> Plan:
    """The plan of an update from a fleet of `old_variants` to one of `new_variants`
    ({variant name: instance count}, in config order) under `config` (UpdateEndpoint's
    DeploymentConfig, shape-validated; None: the plain update). PlanError when SageMaker
    would refuse it."""
    old_count, new_count = sum(old_variants.values()), sum(new_variants.values())
    if not config or not (config.get("BlueGreenUpdatePolicy") or config.get("RollingUpdatePolicy")):
        alarms = _alarms(config)
        if not alarms:
            return plain(old_count, new_count)
        # Alarms without a policy: SageMaker's default blue/green, all at once, watched.
        config = {
            **(config or {}),
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
            },
        }
    if "BlueGreenUpdatePolicy" in config and "RollingUpdatePolicy" in config:
        raise PlanError(
            "DeploymentConfig: give either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both."
        )
    if set(old_variants) != set(new_variants):
        raise PlanError(
            "DeploymentConfig: a guarded update needs the new endpoint configuration to have the "
            f"same variant names as the old one (old: {', '.join(old_variants)}; new: "
            f"{', '.join(new_variants)}); update without DeploymentConfig to change variants."
        )
    if config.get("RollingUpdatePolicy"):
        return _rolling(config, old_count, new_count, len(new_variants))
    return _blue_green(config, old_count, new_count, min(new_variants.values()))


def _alarms(config: Mapping[str, Any] | None) -> tuple[str, ...]:
    alarms = ((config or {}).get("AutoRollbackConfiguration") or {}).get("Alarms") or []
    names = [a["AlarmName"] for a in alarms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PlanError(
            f"DeploymentConfig.AutoRollbackConfiguration.Alarms lists {', '.join(dupes)} twice."
        )
    return tuple(names)


def _blue_green(config: Mapping[str, Any], old_count: int, new_count: int, smallest: int) -> Plan:
    where = "DeploymentConfig.BlueGreenUpdatePolicy"
    policy = config["BlueGreenUpdatePolicy"]
    routing = policy["TrafficRoutingConfiguration"]
    kind = Policy(routing["Type"])
    wait = float(routing["WaitIntervalInSeconds"])
    termination = float(policy.get("TerminationWaitInSeconds", 0))
    shares: list[tuple[float, str]]
    if kind == Policy.CANARY:
        size = routing.get("CanarySize")
        if size is None:
            raise PlanError(f"{where}.TrafficRoutingConfiguration: CANARY needs CanarySize.")
        _check_size(size, smallest, f"{where}.TrafficRoutingConfiguration.CanarySize", 0, 50)
        canary = _share(size, smallest)
        shares = [(canary, f"canary ({canary:.0%})"), (1.0, "the rest (100%)")]
    elif kind == Policy.LINEAR:
        size = routing.get("LinearStepSize")
        if size is None:
            raise PlanError(f"{where}.TrafficRoutingConfiguration: LINEAR needs LinearStepSize.")
        _check_size(size, smallest, f"{where}.TrafficRoutingConfiguration.LinearStepSize", 10, 50)
        step = _share(size, smallest)
        n = math.ceil(1 / step - 1e-9)
        shares = [(min(1.0, round(k * step, 6)), f"linear {k} of {n}") for k in range(1, n + 1)]
        shares = [(s if k < n else 1.0, label) for k, (s, label) in enumerate(shares, 1)]
    else:
        for extra in ("CanarySize", "LinearStepSize"):
            if extra in routing:
                raise PlanError(
                    f"{where}.TrafficRoutingConfiguration: {extra} is only for "
                    f"{'CANARY' if extra == 'CanarySize' else 'LINEAR'}, not {kind}."
                )
        shares = [(1.0, "all at once")]
    steps = tuple(Step(s, new_count, old_count, old_count, wait, label) for s, label in shares)
    waits = wait * len(steps) + termination
    return Plan(
        kind,
        steps,
        termination_wait_s=termination,
        timeout_s=_timeout(policy, where, waits),
        alarms=_alarms(config),
        guarded=True,
    )


def _rolling(config: Mapping[str, Any], old_count: int, new_count: int, variants: int) -> Plan:
    where = "DeploymentConfig.RollingUpdatePolicy"
    policy = config["RollingUpdatePolicy"]
    if variants != 1:
        raise PlanError(
            f"{where}: a rolling update needs an endpoint with one variant (this one has "
            f"{variants}); use BlueGreenUpdatePolicy."
        )
    size = policy["MaximumBatchSize"]
    _check_size(size, new_count, f"{where}.MaximumBatchSize", 5, 50)
    batch = _instances(size, new_count)
    wait = float(policy["WaitIntervalInSeconds"])
    rollback = policy.get("RollbackMaximumBatchSize")
    rollback_batch = None
    if rollback is not None:
        _check_size(rollback, old_count, f"{where}.RollbackMaximumBatchSize", 5, 100)
        rollback_batch = _instances(rollback, old_count)
    n = math.ceil(new_count / batch)
    steps = []
    old_up = old_count
    for k in range(1, n + 1):
        new_up = min(k * batch, new_count)
        share = new_up / new_count
        old_after = old_count - math.ceil(old_count * share - 1e-9)
        steps.append(Step(share, new_up, old_up, old_after, wait, f"batch {k} of {n}"))
        old_up = old_after
    return Plan(
        Policy.ROLLING,
        tuple(steps),
        timeout_s=_timeout(policy, where, wait * n),
        alarms=_alarms(config),
        rollback_batch=rollback_batch,
        guarded=True,
    )


def rollback_batches(old_count: int, running: int, batch: int | None) -> Sequence[int]:
    """Rolling rollback: the old fleet's size after each relaunch batch, from `running` back
    to `old_count` (one batch of everything when `batch` is None)."""
    if running >= old_count:
        return []
    step = batch or old_count
    return [min(old_count, n) for n in range(running + step, old_count + step, step)]
