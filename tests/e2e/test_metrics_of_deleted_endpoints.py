"""/metrics on a real `pier up` names only endpoints that exist: endpoints created, invoked
(with data capture) and deleted leave no series behind, while a live endpoint keeps its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    Platform,
    running_platform,
    save_linear_model,
    split_json,
    wait_for,
)
from tests.e2e.test_endpoint_metrics import scrape

pytestmark = pytest.mark.slow
DELETED = ("gone-a", "gone-b")


def captured_endpoints(p: Platform) -> set[str]:
    return {
        dict(labels)["endpoint"]
        for name, labels in scrape(p)
        if name == "pier_capture_records_total"
    }


def test_deleted_endpoints_leave_no_series(tmp_path: Path) -> None:
    save_linear_model(tmp_path / "model", 1.0, 2.0, 3.0)
    with running_platform(tmp_path / "home") as p:
        sm, rt = p.client("sagemaker"), p.client("sagemaker-runtime")
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(tmp_path / "model")})
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[variant("primary", "m")],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": (tmp_path / "captured").as_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )
        names = ("live", *DELETED)
        for name in names:
            sm.create_endpoint(EndpointName=name, EndpointConfigName="c")
        for name in names:
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)
            rt.invoke_endpoint(
                EndpointName=name, Body=split_json([[1.0, 2.0]]), ContentType="application/json"
            )
        # Every endpoint's capture counted (its batch written) before the deletes.
        wait_for(lambda: captured_endpoints(p) >= set(names), 30, what="every capture counted")
        for name in DELETED:
            sm.delete_endpoint(EndpointName=name)
        for name in DELETED:
            sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=SHORT)
        values = scrape(p)
        named = {dict(labels).get("endpoint") for _, labels in values}
        assert named & set(DELETED) == set()
        live = {name for name, labels in values if dict(labels).get("endpoint") == "live"}
        assert "pier_endpoint_invocations_total" in live
        assert "pier_capture_records_total" in live
