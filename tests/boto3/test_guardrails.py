"""Deployment guardrails through boto3 (UpdateEndpoint's DeploymentConfig), on GUARDED: a
one-instance endpoint on model A, updated under steady load (three client threads) by a canary
to model B, a linear update back to A, a rolling update to B on two instances, and a canary
rolled back by a CloudWatch alarm set to ALARM. Each fleet answers with its own model, so the
share of the traffic on the new fleet is counted from the answers and checked with a binomial
test; no request may fail through any of it."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from scipy.stats import binomtest

from tests.boto3.hosting import (
    SHORT,
    Created,
    Models,
    arn,
    create_and_wait,
    error_of,
    invoke,
    variant,
)
from tests.boto3.platform_fixtures import Platform, endpoint_processes, wait_for

pytestmark = pytest.mark.slow

GUARDED = "guarded"
# The share on the new fleet must be within this of the step's share, and a binomial test must
# not reject the step's share at this level (a correct router fails it once in 10^4 runs).
SHARE_TOLERANCE = 0.1
ALPHA = 1e-4


@dataclass
class TimedLoad:
    """Invokes an endpoint from `threads` threads (a boto3 client each) until stopped; every
    answer is kept with the times its request was sent and answered."""

    platform: Platform
    models: Models
    endpoint: str
    threads: int = 3
    answers: list[tuple[float, float, str]] = field(default_factory=list)  # sent, got, A/B
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> TimedLoad:
        for _ in range(self.threads):
            client = self.platform.client("sagemaker-runtime")
            worker = threading.Thread(target=self._run, args=(client,))
            worker.start()
            self._workers.append(worker)
        wait_for(lambda: len(self.answers) >= 10, 30, 0.05, "the first answers")
        return self

    def _run(self, client: Any) -> None:
        while not self._stop.is_set():
            sent = time.time()
            try:
                _, got = invoke(client, self.endpoint)
                label = self.models.which(got[0])
                with self._lock:
                    self.answers.append((sent, time.time(), label))
            except Exception as exc:
                with self._lock:
                    self.errors.append(repr(exc))

    def between(self, start: float, end: float) -> list[str]:
        """The answers to requests sent and answered within [start, end]."""
        with self._lock:
            return [label for sent, got, label in self.answers if start <= sent and got <= end]

    def last(self, n: int) -> list[str]:
        with self._lock:
            return [label for _, _, label in self.answers[-n:]]

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(90)


def canary(percent: int, wait: int, *alarms: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": wait,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": percent},
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def baking(sm: Any, step: int, steps: int) -> dict[str, Any] | None:
    """The pending variant's Baking status when the update bakes step `step` of `steps`."""
    d = sm.describe_endpoint(EndpointName=GUARDED)
    pending = d.get("PendingDeploymentSummary", {}).get("ProductionVariants", [{}])[0]
    for status in pending.get("VariantStatus", []):
        if status["Status"] == "Baking" and status["StatusMessage"].startswith(
            f"step {step} of {steps}:"
        ):
            return {**status, "pending": pending}
    return None


def ended(sm: Any) -> dict[str, Any] | None:
    """DescribeEndpoint once the endpoint is no longer Updating."""
    d: dict[str, Any] = sm.describe_endpoint(EndpointName=GUARDED)
    return d if d["EndpointStatus"] != "Updating" else None


def check_share(load: TimedLoad, status: dict[str, Any], wait: float, share: float) -> None:
    """The answers of a step's bake came from the new fleet (model `new`) in proportion `share`."""
    start = status["StartTime"].timestamp()
    time.sleep(max(0.0, start + wait - time.time()))
    labels = load.between(start + 0.2, start + wait - 0.2)
    new, n = labels.count("B"), len(labels)
    assert n >= 100, f"too few answers in the step to test its share: {n}"
    test = binomtest(new, n, share)
    assert abs(new / n - share) <= SHARE_TOLERANCE, (new, n, share)
    assert test.pvalue >= ALPHA, (new, n, share, test.pvalue)


def alarm(cw: Any, name: str) -> None:
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Dimensions=[
            {"Name": "EndpointName", "Value": GUARDED},
            {"Name": "VariantName", "Value": "main"},
        ],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )


@pytest.fixture(scope="package")
def guarded(sm: Any, resources: None) -> Created:
    sm.create_endpoint_config(
        EndpointConfigName="cfg-b-two", ProductionVariants=[variant("main", "model-b", count=2)]
    )
    return create_and_wait(sm, GUARDED, "cfg-a")


@pytest.fixture(scope="package")
def cw(platform: Platform) -> Any:
    return platform.client("cloudwatch")


def refused(call: Any, **request: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as excinfo:
        call(**request)
    return error_of(excinfo)


def test_deployment_configs_sagemaker_refuses_are_refused(
    sm: Any, cw: Any, guarded: Created
) -> None:
    one_instance_canary = canary(25, 1)
    one_instance_canary["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["CanarySize"] = {
        "Type": "INSTANCE_COUNT",
        "Value": 1,
    }
    rolling_and_blue_green = {
        **canary(25, 1),
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            "WaitIntervalInSeconds": 1,
        },
    }
    cases = [
        (
            "cfg-b",
            one_instance_canary,
            "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.CanarySize: an "
            "INSTANCE_COUNT of 1 is 100% of the variant's 1 instance(s); it must be 0-50% of "
            "them (use CAPACITY_PERCENT for a share of a small fleet).",
        ),
        (
            "cfg-b",
            rolling_and_blue_green,
            "DeploymentConfig: give either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both.",
        ),
        (
            "cfg-b",
            canary(25, 1, "no-such-alarm"),
            "DeploymentConfig.AutoRollbackConfiguration.Alarms: no CloudWatch alarm named "
            "'no-such-alarm': create it with PutMetricAlarm first.",
        ),
        (
            "cfg-ab",
            canary(25, 1),
            "DeploymentConfig: a guarded update needs the new endpoint configuration to have the "
            "same variant names as the old one (old: main; new: variant-a, variant-b); update "
            "without DeploymentConfig to change variants.",
        ),
    ]
    for config, deployment, message in cases:
        got = refused(sm.update_endpoint, EndpointName=GUARDED, EndpointConfigName=config,
                      DeploymentConfig=deployment)  # fmt: skip
        assert got == ("ValidationException", message, 400)
    # the shapes themselves are botocore's: a WaitIntervalInSeconds past 3600 is refused
    too_long = canary(25, 3601)
    got = refused(sm.update_endpoint, EndpointName=GUARDED, EndpointConfigName="cfg-b",
                  DeploymentConfig=too_long)  # fmt: skip
    assert got == (
        "ValidationException",
        "1 validation error detected: Value '3601' at 'deploymentConfig.blueGreenUpdatePolicy."
        "trafficRoutingConfiguration.waitIntervalInSeconds' failed to satisfy constraint: "
        "Member must have value less than or equal to 3600",
        400,
    )
    d = sm.describe_endpoint(EndpointName=GUARDED)  # nothing changed
    assert (d["EndpointStatus"], d["EndpointConfigName"]) == ("InService", "cfg-a")
    assert "LastDeploymentConfig" not in d


def test_canary_shifts_the_canary_share_then_all_with_no_failed_request(
    platform: Platform, sm: Any, cw: Any, models: Models, guarded: Created
) -> None:
    alarm(cw, "guarded-canary-errors")
    config = canary(25, 8, "guarded-canary-errors")
    with TimedLoad(platform, models, GUARDED) as load:
        sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-b",
                           DeploymentConfig=config)  # fmt: skip
        d = sm.describe_endpoint(EndpointName=GUARDED)
        assert d["EndpointStatus"] == "Updating"
        assert d["LastDeploymentConfig"] == config
        assert d["PendingDeploymentSummary"]["EndpointConfigName"] == "cfg-b"
        status = wait_for(lambda: baking(sm, 1, 2), 120, 0.1, "the canary's bake")
        assert "25% of the traffic on the new fleet" in status["StatusMessage"]
        assert status["pending"]["CurrentWeight"] == pytest.approx(0.25)
        assert status["pending"]["CurrentInstanceCount"] == 1
        check_share(load, status, 8, 0.25)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=GUARDED, WaiterConfig=SHORT)
        wait_for(lambda: load.last(10) == ["B"] * 10, 20, what="answers from model B only")
    assert load.errors == []
    d = sm.describe_endpoint(EndpointName=GUARDED)
    assert d["EndpointConfigName"] == "cfg-b"
    assert "FailureReason" not in d
    assert "PendingDeploymentSummary" not in d
    assert d["LastDeploymentConfig"] == config
    wait_for(lambda: len(endpoint_processes(platform.home, GUARDED)) == 1, 40, what="old gone")


def test_linear_steps_shift_by_their_share_and_retain_the_config(
    platform: Platform, sm: Any, models: Models, guarded: Created
) -> None:
    config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 6,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            }
        }
    }
    # back to model A: A is the new fleet now, so count A's answers
    with TimedLoad(platform, models, GUARDED) as load:
        sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-a",
                           DeploymentConfig=config)  # fmt: skip
        status = wait_for(lambda: baking(sm, 1, 2), 120, 0.1, "the first linear step")
        start = status["StartTime"].timestamp()
        time.sleep(max(0.0, start + 6 - time.time()))
        labels = load.between(start + 0.2, start + 5.8)
        assert len(labels) >= 100, len(labels)
        assert abs(labels.count("A") / len(labels) - 0.5) <= SHARE_TOLERANCE
        assert binomtest(labels.count("A"), len(labels), 0.5).pvalue >= ALPHA
        status = wait_for(lambda: baking(sm, 2, 2), 30, 0.1, "the last linear step")
        assert "100% of the traffic on the new fleet" in status["StatusMessage"]
        sm.get_waiter("endpoint_in_service").wait(EndpointName=GUARDED, WaiterConfig=SHORT)
    assert load.errors == []
    assert sm.describe_endpoint(EndpointName=GUARDED)["EndpointConfigName"] == "cfg-a"
    # RetainDeploymentConfig: the next update, given none, runs under the last one
    sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-b",
                       RetainDeploymentConfig=True)  # fmt: skip
    d = sm.describe_endpoint(EndpointName=GUARDED)
    assert d["LastDeploymentConfig"] == config
    wait_for(lambda: baking(sm, 1, 2), 120, 0.1, "a linear step of the retained config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=GUARDED, WaiterConfig=SHORT)
    # ...and without RetainDeploymentConfig an update goes all at once again
    sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-a")
    assert "LastDeploymentConfig" not in sm.describe_endpoint(EndpointName=GUARDED)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=GUARDED, WaiterConfig=SHORT)


def test_rolling_update_trades_instances_batch_by_batch(
    platform: Platform, sm: Any, models: Models, guarded: Created
) -> None:
    config = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 3,
        }
    }
    with TimedLoad(platform, models, GUARDED) as load:
        sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-b-two",
                           DeploymentConfig=config)  # fmt: skip
        first = wait_for(lambda: baking(sm, 1, 2), 120, 0.1, "the first batch")
        assert first["pending"]["CurrentInstanceCount"] == 1
        second = wait_for(lambda: baking(sm, 2, 2), 120, 0.1, "the second batch")
        assert second["pending"]["CurrentInstanceCount"] == 2
        sm.get_waiter("endpoint_in_service").wait(EndpointName=GUARDED, WaiterConfig=SHORT)
        wait_for(lambda: load.last(10) == ["B"] * 10, 20, what="answers from model B only")
    assert load.errors == []
    d = sm.describe_endpoint(EndpointName=GUARDED)
    assert d["EndpointConfigName"] == "cfg-b-two"
    v = d["ProductionVariants"][0]
    assert (v["CurrentInstanceCount"], v["DesiredInstanceCount"]) == (2, 2)
    wait_for(lambda: len(endpoint_processes(platform.home, GUARDED)) == 2, 40, what="2 instances")


def test_an_alarm_rolls_the_canary_back_to_the_old_fleet(
    platform: Platform, sm: Any, cw: Any, models: Models, guarded: Created
) -> None:
    alarm(cw, "guarded-rollback-errors")
    config = canary(50, 120, "guarded-rollback-errors")
    with TimedLoad(platform, models, GUARDED) as load:
        sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-a",
                           DeploymentConfig=config)  # fmt: skip
        wait_for(lambda: baking(sm, 1, 2), 120, 0.1, "the canary's bake")
        wait_for(lambda: "A" in load.last(20), 20, what="answers from the canary (model A)")
        cw.set_alarm_state(AlarmName="guarded-rollback-errors", StateValue="ALARM",
                           StateReason="errors seen by the test")  # fmt: skip
        fired = time.time()
        wait_for(lambda: sm.describe_endpoint(EndpointName=GUARDED)["EndpointStatus"]
                 == "InService", 60, what="InService after the rollback")  # fmt: skip
        back = time.time()
        assert back > fired
        time.sleep(1)
        after = load.between(back, time.time())
    assert load.errors == []
    assert after, "no answer after the rollback"
    assert set(after) == {"B"}, after  # all traffic back on the old fleet
    d = sm.describe_endpoint(EndpointName=GUARDED)
    assert d["EndpointConfigName"] == "cfg-b-two"
    assert "PendingDeploymentSummary" not in d
    assert d["FailureReason"].startswith("Update to cfg-a was rolled back, still serving cfg-b-two")
    assert '"guarded-rollback-errors" went into ALARM' in d["FailureReason"]
    wait_for(lambda: len(endpoint_processes(platform.home, GUARDED)) == 2, 40, what="new gone")


def test_a_rollback_that_cannot_relaunch_the_old_fleet_is_update_rollback_failed(
    platform: Platform, sm: Any, cw: Any, models: Models, guarded: Created, tmp_path: Path
) -> None:
    # The old fleet: two instances of a copy of model A, whose files then go away, so the old
    # instances a rolling update stops cannot come back.
    doomed = tmp_path / "doomed-model"
    shutil.copytree(models.a.path, doomed)
    sm.create_model(ModelName="model-doomed", PrimaryContainer={"ModelDataUrl": str(doomed)})
    two = [variant("main", "model-doomed", count=2)]
    sm.create_endpoint_config(EndpointConfigName="cfg-doomed-two", ProductionVariants=two)
    sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-doomed-two")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=GUARDED, WaiterConfig=SHORT)
    shutil.rmtree(doomed)
    alarm(cw, "guarded-doomed-errors")
    config = {
        "RollingUpdatePolicy": {
            "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": 4,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "guarded-doomed-errors"}]},
    }
    with TimedLoad(platform, models, GUARDED) as load:
        sm.update_endpoint(EndpointName=GUARDED, EndpointConfigName="cfg-b-two",
                           DeploymentConfig=config)  # fmt: skip
        # in the second batch's bake one old instance has stopped: the rollback must relaunch it
        wait_for(lambda: baking(sm, 2, 2), 120, 0.05, "the second batch")
        cw.set_alarm_state(AlarmName="guarded-doomed-errors", StateValue="ALARM",
                           StateReason="errors seen by the test")  # fmt: skip
        d = wait_for(lambda: ended(sm), 120, what="the rollback's end")
        load_after = len(load.answers)
        wait_for(lambda: len(load.answers) >= load_after + 20, 30, what="answers after it")
    assert d["EndpointStatus"] == "UpdateRollbackFailed", d
    assert d["EndpointConfigName"] == "cfg-doomed-two"
    assert d["FailureReason"].startswith(
        'Update to cfg-b-two failed (the alarm "guarded-doomed-errors" went into ALARM while '
        "batch 2 of 2 baked (step 2 of 2)) and the rollback to cfg-doomed-two failed too: "
        "Variant main: the instance"
    ), d["FailureReason"]
    assert load.errors == []  # what still runs keeps serving
    # an endpoint in UpdateRollbackFailed cannot be updated; it can be deleted (next test)
    got = refused(sm.update_endpoint, EndpointName=GUARDED, EndpointConfigName="cfg-a")
    assert got == (
        "ValidationException",
        f'Cannot update endpoint "{arn("endpoint", GUARDED)}" in UpdateRollbackFailed (its last '
        "update could not be rolled back: see FailureReason); delete it and create it again.",
        400,
    )


def test_delete_guarded(sm: Any, guarded: Created) -> None:
    sm.delete_endpoint(EndpointName=GUARDED)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=GUARDED, WaiterConfig=SHORT)
    refused_update = refused(sm.describe_endpoint, EndpointName=GUARDED)
    assert refused_update[1] == f'Could not find endpoint "{arn("endpoint", GUARDED)}".'
