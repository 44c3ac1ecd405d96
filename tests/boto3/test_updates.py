"""Endpoint updates through boto3, on ROLLING (then ROUTING): blue/green to model B under load,
to a broken model (rolled back), weights and capacities."""

from __future__ import annotations

from itertools import groupby
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import (
    PROBE,
    ROLLING,
    ROUTING,
    SHORT,
    Created,
    Load,
    Models,
    arn,
    describe_variants,
    error_of,
    invoke,
)
from tests.boto3.platform_fixtures import (
    Platform,
    endpoint_processes,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_update_endpoint_blue_green_keeps_serving(
    platform: Platform, sm: Any, models: Models, rolling: Created
) -> None:
    assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointConfigName"] == "cfg-a"
    with Load(platform, models, ROLLING) as load:
        load.wait_answers(5)
        out = sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-b")
        assert out["EndpointArn"] == arn("endpoint", ROLLING)
        d = sm.describe_endpoint(EndpointName=ROLLING)
        assert d["EndpointStatus"] == "Updating"
        assert d["EndpointConfigName"] == "cfg-a"  # until the new fleet takes over
        assert d["PendingDeploymentSummary"]["EndpointConfigName"] == "cfg-b"
        with pytest.raises(ClientError) as excinfo:  # one update at a time
            sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-a")
        assert error_of(excinfo)[0] == "ValidationException"
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
        # InService at once, while the old fleet may still drain: no variant says Updating.
        in_service = sm.describe_endpoint(EndpointName=ROLLING)["ProductionVariants"][0]
        assert "VariantStatus" not in in_service, in_service
        wait_for(lambda: load.answers[0][-5:] == ["B"] * 5, 20, what="answers from model B")
    assert load.errors == []
    runs = [label for label, _ in groupby(load.answers[0])]
    assert runs == ["A", "B"], [(k, len(list(g))) for k, g in groupby(load.answers[0])]
    d = sm.describe_endpoint(EndpointName=ROLLING)
    assert d["EndpointStatus"] == "InService"
    assert d["EndpointConfigName"] == "cfg-b"
    assert "FailureReason" not in d
    v = d["ProductionVariants"][0]
    assert (v["CurrentInstanceCount"], v["DesiredInstanceCount"]) == (1, 1)
    # the old instance drains and stops
    wait_for(
        lambda: len(endpoint_processes(platform.home, ROLLING)) == 1, 40, what="old fleet gone"
    )


def test_update_endpoint_to_broken_model_rolls_back(
    platform: Platform, sm: Any, models: Models, rolling: Created
) -> None:
    before = sm.describe_endpoint(EndpointName=ROLLING)
    assert before["EndpointConfigName"] == "cfg-b"
    assert "FailureReason" not in before  # so a FailureReason below is this update's
    with Load(platform, models, ROLLING) as load:
        load.wait_answers(5)
        sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-broken")
        d = sm.describe_endpoint(EndpointName=ROLLING)
        # Updating, or (on a fast host, when the broken instance fails at once) already rolled
        # back: InService again on cfg-b, saying why the update failed. Never InService without
        # a FailureReason: that would be an update pier ignored.
        if d["EndpointStatus"] != "Updating":
            assert d["EndpointStatus"] == "InService", d
            assert d["EndpointConfigName"] == "cfg-b", d
            assert "Could not load model" in d.get("FailureReason", ""), d
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
        load.wait_answers(5)
    assert load.errors == []
    assert set(load.answers[0]) == {"B"}
    d = sm.describe_endpoint(EndpointName=ROLLING)
    assert d["EndpointStatus"] == "InService"
    assert d["EndpointConfigName"] == "cfg-b"
    assert d.get("FailureReason")
    assert "Could not load model" in d["FailureReason"]
    wait_for(lambda: len(endpoint_processes(platform.home, ROLLING)) == 1, 20, what="one instance")


def test_update_endpoint_with_missing_config(sm: Any, rolling: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="Ghost-Config")
    assert error_of(excinfo) == (
        "ValidationException",
        f'Could not find endpoint configuration "{arn("endpoint-config", "ghost-config")}".',
        400,
    )
    assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointStatus"] == "InService"


def test_update_weights_and_capacities(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    out = sm.update_endpoint_weights_and_capacities(
        EndpointName=ROLLING,
        DesiredWeightsAndCapacities=[
            {"VariantName": "main", "DesiredWeight": 2.5, "DesiredInstanceCount": 2}
        ],
    )
    assert out["EndpointArn"] == arn("endpoint", ROLLING)
    d = sm.describe_endpoint(EndpointName=ROLLING)
    assert d["EndpointStatus"] == "Updating"
    v = d["ProductionVariants"][0]
    assert (v["DesiredWeight"], v["DesiredInstanceCount"]) == (2.5, 2)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    v = describe_variants(sm, ROLLING)["main"]
    assert (v["CurrentWeight"], v["DesiredWeight"]) == (2.5, 2.5)
    assert (v["CurrentInstanceCount"], v["DesiredInstanceCount"]) == (2, 2)
    assert len(endpoint_processes(platform.home, ROLLING)) == 2
    for _ in range(10):
        assert invoke(rt, ROLLING) == ("main", models.b.predict(PROBE))


def test_update_weights_and_capacities_errors(sm: Any, rolling: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ROLLING,
            DesiredWeightsAndCapacities=[{"VariantName": "nope", "DesiredWeight": 1.0}],
        )
    assert error_of(excinfo) == (
        "ValidationException",
        'The variant name(s) "nope" is/are not present within endpoint configuration "cfg-b".',
        400,
    )
    with pytest.raises(ClientError) as excinfo:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ROLLING,
            DesiredWeightsAndCapacities=[
                {"VariantName": "main", "DesiredWeight": 1.0},
                {"VariantName": "main", "DesiredInstanceCount": 1},
            ],
        )
    assert error_of(excinfo) == (
        "ValidationException",
        'The variant name "main" was non-unique within the request.',
        400,
    )
    assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointStatus"] == "InService"


def test_update_weights_on_two_variants_changes_routing(sm: Any, rt: Any, routing: Created) -> None:
    """Weights 0 and 1: every call goes to variant-b; then back to 0.8 / 0.2."""

    def set_weights(a: float, b: float) -> None:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ROUTING,
            DesiredWeightsAndCapacities=[
                {"VariantName": "variant-a", "DesiredWeight": a},
                {"VariantName": "variant-b", "DesiredWeight": b},
            ],
        )
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ROUTING, WaiterConfig=SHORT)

    set_weights(0.0, 1.0)
    try:
        variants = describe_variants(sm, ROUTING)
        assert variants["variant-a"]["CurrentWeight"] == 0.0
        assert variants["variant-b"]["CurrentWeight"] == 1.0
        assert {invoke(rt, ROUTING)[0] for _ in range(50)} == {"variant-b"}
        # TargetVariant still reaches a variant of weight 0
        assert invoke(rt, ROUTING, TargetVariant="variant-a")[0] == "variant-a"
    finally:
        set_weights(0.8, 0.2)
    assert describe_variants(sm, ROUTING)["variant-a"]["CurrentWeight"] == pytest.approx(0.8)
