"""ShadowProductionVariants: callers get only production answers, the shadow gets its share of
copies, its answers and errors are counted and captured, paired with the production's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import PROBE, Created, Models, error_of, invoke, variant
from tests.boto3.platform_fixtures import Platform, wait_for
from tests.shadow.conftest import FAILING, SHADOW_WEIGHT, SHADOWED
from tests.shadow.observe import metric, records, settled

REQUESTS = 400
# Copies are Binomial(400, 0.5): one standard deviation is 10 copies (2.5 %). 8 % is 3.2 sd:
# a correct mirror fails it about once in 700 runs; a mirror copying none or all fails always.
SHARE_TOLERANCE = 0.08


def test_callers_get_only_production_answers_and_the_shadow_its_share(
    platform: Platform, rt: Any, models: Models, shadowed: Created
) -> None:
    before_shadow = metric(
        platform, "pier_endpoint_invocations_total", endpoint=SHADOWED, variant="shadow"
    )
    for _ in range(REQUESTS):
        answered_by, got = invoke(rt, SHADOWED)
        assert answered_by == "production"
        assert models.which(got[0]) == "A"  # the shadow (model B) answers 98.0, never seen
    settled(platform)
    production = metric(
        platform, "pier_endpoint_invocations_total", endpoint=SHADOWED, variant="production"
    )
    copies = (
        metric(platform, "pier_endpoint_invocations_total", endpoint=SHADOWED, variant="shadow")
        - before_shadow
    )
    assert production >= REQUESTS
    assert metric(platform, "pier_shadow_dropped_requests_total", endpoint=SHADOWED) == 0
    assert abs(copies / REQUESTS - SHADOW_WEIGHT) <= SHARE_TOLERANCE, copies
    # ModelLatency is measured for the shadow like for any variant.
    assert (
        metric(
            platform,
            "pier_endpoint_model_latency_seconds_count",
            endpoint=SHADOWED,
            variant="shadow",
        )
        == copies + before_shadow
    )


def test_both_halves_of_a_copied_request_are_captured_with_one_event_id(
    platform: Platform, rt: Any, models: Models, shadowed: Created, capture_dir: Path
) -> None:
    for i in range(40):
        invoke(rt, SHADOWED, InferenceId=f"req-{i}")
    settled(platform)

    def shadow_records() -> list[dict[str, Any]] | None:
        """At least 10 shadow records, each with its production half on disk too (the two
        halves may reach the files in different flushes of the capture writer)."""
        found = records(capture_dir, SHADOWED, "shadow")
        ids = {r["eventMetadata"]["eventId"] for r in records(capture_dir, SHADOWED, "production")}
        paired = all(r["eventMetadata"]["eventId"] in ids for r in found)
        return found if len(found) >= 10 and paired else None

    wait_for(shadow_records, 30, 0.2, "the shadow's capture records, each with its pair")
    production = {
        r["eventMetadata"]["eventId"]: r for r in records(capture_dir, SHADOWED, "production")
    }
    shadow = records(capture_dir, SHADOWED, "shadow")
    expected_b = models.b.predict(PROBE)[0]
    for record in shadow:
        meta = record["eventMetadata"]
        pair = production.get(meta["eventId"])
        assert pair is not None, f"no production record pairs with {meta['eventId']}"
        assert pair["eventMetadata"].get("inferenceId") == meta.get("inferenceId")
        assert record["captureData"]["endpointInput"] == pair["captureData"]["endpointInput"]
        answer = json.loads(record["captureData"]["endpointOutput"]["data"])["predictions"][0]
        assert abs(answer - expected_b) < 1e-6
        assert meta["pierStatus"] == 200
        assert meta["pierModelLatencyMicros"] > 0


def test_shadow_errors_never_reach_the_caller_and_are_recorded(
    platform: Platform, rt: Any, models: Models, failing: Created, capture_dir: Path
) -> None:
    labels = {"endpoint": FAILING, "variant": "shadow"}
    production = {"endpoint": FAILING, "variant": "production"}
    counted = ("pier_endpoint_invocations_total", "pier_endpoint_invocation_4xx_errors_total")
    before = {name: metric(platform, name, **labels) for name in counted}
    for _ in range(30):
        answered_by, got = invoke(rt, FAILING)
        assert answered_by == "production"
        assert models.which(got[0]) == "A"
    settled(platform)
    for name in counted:  # every copy was sent, and every one failed
        assert metric(platform, name, **labels) - before[name] == 30
    assert metric(platform, "pier_endpoint_invocation_4xx_errors_total", **production) == 0

    def failed() -> list[dict[str, Any]] | None:
        found = records(capture_dir, FAILING, "shadow")
        return found if len(found) >= 30 + before[counted[0]] else None

    for record in wait_for(failed, 20, 0.2, "the failing shadow's capture records"):
        assert 400 <= record["eventMetadata"]["pierStatus"] < 500


def test_describe_endpoint_lists_the_shadow_variant(sm: Any, shadowed: Created) -> None:
    d = sm.describe_endpoint(EndpointName=SHADOWED)
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["production"]
    (shadow,) = d["ShadowProductionVariants"]
    assert shadow["VariantName"] == "shadow"
    assert shadow["CurrentInstanceCount"] == 1
    assert shadow["DesiredWeight"] == SHADOW_WEIGHT


@pytest.mark.parametrize(
    ("production", "shadows"),
    [
        ([variant("p1", "model-a"), variant("p2", "model-a")], [variant("s", "model-b")]),
        ([variant("p1", "model-a")], [variant("s1", "model-b"), variant("s2", "model-b")]),
    ],
    ids=["two-production-variants", "two-shadows"],
)
def test_a_config_with_a_shadow_has_one_production_variant_and_one_shadow(
    sm: Any, resources: None, production: list[Any], shadows: list[Any]
) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(
            EndpointConfigName="cfg-bad-shadow",
            ProductionVariants=production,
            ShadowProductionVariants=shadows,
        )
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert "exactly one production variant" in message
