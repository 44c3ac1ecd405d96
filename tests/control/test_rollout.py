"""The rollout planner on its own: DeploymentConfig + fleet sizes -> steps, and SageMaker's
limits as ValidationException messages (pier.control.rollout)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pier.control.rollout import PlanError, Policy, plan, rollback_batches


def blue_green(kind: str, wait: int = 2, **routing: Any) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": kind, "WaitIntervalInSeconds": wait, **routing}
        }
    }


def size(kind: str, value: int) -> dict[str, Any]:
    return {"Type": kind, "Value": value}


def test_no_config_is_the_plain_all_at_once_update() -> None:
    p = plan(None, {"main": 1}, {"main": 2})
    assert not p.guarded
    assert p.policy == Policy.ALL_AT_ONCE
    assert [(s.share, s.bake_s) for s in p.steps] == [(1.0, 0.0)]
    # variants may change without guardrails
    assert not plan({}, {"a": 1}, {"b": 1}).guarded


def test_canary_then_the_rest_each_baking() -> None:
    p = plan(blue_green("CANARY", 5, CanarySize=size("INSTANCE_COUNT", 1)), {"m": 4}, {"m": 4})
    assert p.guarded
    assert p.policy == Policy.CANARY
    assert [(s.share, s.bake_s, s.new_instances) for s in p.steps] == [(0.25, 5, 4), (1.0, 5, 4)]
    percent = plan(blue_green("CANARY", 1, CanarySize=size("CAPACITY_PERCENT", 20)), {"m": 1},
                   {"m": 1})  # fmt: skip
    assert [s.share for s in percent.steps] == [0.2, 1.0]


def test_linear_steps_reach_all_the_traffic() -> None:
    p = plan(blue_green("LINEAR", 1, LinearStepSize=size("CAPACITY_PERCENT", 30)), {"m": 1},
             {"m": 1})  # fmt: skip
    assert [s.share for s in p.steps] == [0.3, 0.6, 0.9, 1.0]
    assert [s.label for s in p.steps][-1] == "linear 4 of 4"


def test_rolling_batches_launch_new_and_stop_old() -> None:
    config = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": size("INSTANCE_COUNT", 2),
            "WaitIntervalInSeconds": 3,
            "RollbackMaximumBatchSize": size("INSTANCE_COUNT", 1),
        }
    }
    p = plan(config, {"m": 4}, {"m": 4})
    assert p.policy == Policy.ROLLING
    assert p.rollback_batch == 1
    got = [(s.share, s.new_instances, s.old_instances, s.old_after) for s in p.steps]
    assert got == [(0.5, 2, 4, 2), (1.0, 4, 2, 0)]
    assert list(rollback_batches(4, 1, 1)) == [2, 3, 4]
    assert list(rollback_batches(4, 2, None)) == [4]
    assert list(rollback_batches(4, 4, 1)) == []


@pytest.mark.parametrize(
    ("config", "old", "new", "message"),
    [
        (
            blue_green("CANARY", CanarySize=size("INSTANCE_COUNT", 2)),
            {"m": 2},
            {"m": 2},
            "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize: an "
            "INSTANCE_COUNT of 2 is 100% of the variant's 2 instance(s); it must be 0-50% of them",
        ),
        (
            blue_green("CANARY", CanarySize=size("CAPACITY_PERCENT", 60)),
            {"m": 1},
            {"m": 1},
            "CanarySize: a CAPACITY_PERCENT of 60 is out of range: it must be between 0 and 50",
        ),
        (blue_green("CANARY"), {"m": 1}, {"m": 1}, "CANARY needs CanarySize."),
        (blue_green("LINEAR"), {"m": 1}, {"m": 1}, "LINEAR needs LinearStepSize."),
        (
            blue_green("LINEAR", LinearStepSize=size("CAPACITY_PERCENT", 5)),
            {"m": 1},
            {"m": 1},
            "LinearStepSize: a CAPACITY_PERCENT of 5 is out of range: it must be between 10 and 50",
        ),
        (
            blue_green("ALL_AT_ONCE", CanarySize=size("INSTANCE_COUNT", 1)),
            {"m": 1},
            {"m": 1},
            "CanarySize is only for CANARY, not ALL_AT_ONCE.",
        ),
        (
            {
                **blue_green("ALL_AT_ONCE"),
                "RollingUpdatePolicy": {
                    "MaximumBatchSize": size("INSTANCE_COUNT", 1),
                    "WaitIntervalInSeconds": 1,
                },
            },
            {"m": 1},
            {"m": 1},
            "give either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both.",
        ),
        (
            blue_green("ALL_AT_ONCE"),
            {"a": 1},
            {"b": 1},
            "the same variant names as the old one (old: a; new: b)",
        ),
        (
            {
                "RollingUpdatePolicy": {
                    "MaximumBatchSize": size("CAPACITY_PERCENT", 50),
                    "WaitIntervalInSeconds": 1,
                }
            },
            {"a": 1, "b": 1},
            {"a": 1, "b": 1},
            "a rolling update needs an endpoint with one variant (this one has 2)",
        ),
        (
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR",
                        "WaitIntervalInSeconds": 300,
                        "LinearStepSize": size("CAPACITY_PERCENT", 50),
                    },
                    "TerminationWaitInSeconds": 60,
                    "MaximumExecutionTimeoutInSeconds": 600,
                }
            },
            {"m": 1},
            {"m": 1},
            "MaximumExecutionTimeoutInSeconds (600) must be larger than the total waiting time "
            "of the deployment (660 seconds).",
        ),
        (
            {
                **blue_green("ALL_AT_ONCE"),
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "x"}, {"AlarmName": "x"}]},
            },
            {"m": 1},
            {"m": 1},
            "Alarms lists x twice.",
        ),
    ],
)
def test_what_sagemaker_refuses_is_refused_saying_where(
    config: dict[str, Any], old: dict[str, int], new: dict[str, int], message: str
) -> None:
    with pytest.raises(PlanError) as excinfo:
        plan(config, old, new)
    assert message in str(excinfo.value)


def test_alarms_alone_watch_an_all_at_once_update() -> None:
    p = plan({"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]}}, {"m": 1},
             {"m": 1})  # fmt: skip
    assert p.guarded
    assert p.policy == Policy.ALL_AT_ONCE
    assert p.alarms == ("errors",)


capacity = st.one_of(
    st.builds(size, st.just("CAPACITY_PERCENT"), st.integers(1, 100)),
    st.builds(size, st.just("INSTANCE_COUNT"), st.integers(1, 20)),
)


@given(
    kind=st.sampled_from(["ALL_AT_ONCE", "CANARY", "LINEAR"]),
    step=capacity,
    count=st.integers(1, 20),
    new_count=st.integers(1, 20),
    wait=st.integers(0, 3600),
)
def test_blue_green_plans_shift_monotonically_to_all_the_traffic(
    kind: str, step: dict[str, Any], count: int, new_count: int, wait: int
) -> None:
    key = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}.get(kind)
    config = blue_green(kind, wait, **({key: step} if key else {}))
    try:
        p = plan(config, {"m": count}, {"m": new_count})
    except PlanError as exc:
        message = str(exc)
        p = None
    if p is None:
        assert "DeploymentConfig.BlueGreenUpdatePolicy" in message
        return
    shares = [s.share for s in p.steps]
    assert shares[-1] == 1.0
    assert all(0 < a < b for a, b in itertools.pairwise(shares))
    assert all(s.bake_s == wait and s.new_instances == new_count for s in p.steps)
    assert all(s.old_instances == count for s in p.steps)  # blue/green keeps the old fleet
    if kind == "CANARY":
        assert len(shares) == 2
        assert shares[0] <= 0.5
    if kind == "LINEAR":
        assert all(round(b - a, 6) <= 0.5 for a, b in zip([0.0, *shares], shares, strict=False))


@given(batch=capacity, old=st.integers(1, 20), new=st.integers(1, 20), wait=st.integers(0, 60))
def test_rolling_plans_trade_old_for_new_capacity(
    batch: dict[str, Any], old: int, new: int, wait: int
) -> None:
    config = {"RollingUpdatePolicy": {"MaximumBatchSize": batch, "WaitIntervalInSeconds": wait}}
    try:
        p = plan(config, {"m": old}, {"m": new})
    except PlanError as exc:
        message = str(exc)
        p = None
    if p is None:
        assert "MaximumBatchSize" in message
        return
    steps = p.steps
    assert steps[-1].share == 1.0
    assert steps[-1].new_instances == new
    assert steps[-1].old_after == 0
    assert steps[0].old_instances == old
    for a, b in itertools.pairwise(steps):
        assert a.new_instances < b.new_instances
        assert a.old_after == b.old_instances  # what one step keeps, the next starts with
    for s in steps:
        assert 0 <= s.old_after <= s.old_instances
        assert s.share == s.new_instances / new
        # capacity never drops below the old fleet's share of what still runs on it
        assert s.old_after + s.new_instances >= 1
