"""pier.control.deployment: a deployment built from the requests, stored as JSON and read back
typed; rows written before it (the whole EndpointConfig request under "config") read the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pier.control.deployment import (
    Deployment,
    deployed,
    deployed_columns,
    pending,
    pending_columns,
)
from pier.store.tables import EndpointRow

CONFIG: dict[str, Any] = {
    "EndpointConfigName": "cfg",
    "ProductionVariants": [
        {
            "VariantName": "a",
            "ModelName": "model-a",
            "InitialInstanceCount": 2,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": 0.8,
        },
        {
            "VariantName": "b",
            "ModelName": "model-b",
            "InitialInstanceCount": 1,
            "ContainerStartupHealthCheckTimeoutInSeconds": 60,
        },
    ],
    "ShadowProductionVariants": [
        {"VariantName": "s", "ModelName": "model-a", "InitialInstanceCount": 1}
    ],
    "DataCaptureConfig": {"InitialSamplingPercentage": 100, "DestinationS3Uri": "file:///c"},
}
MODELS: dict[str, Any] = {
    "model-a": {"ModelName": "model-a", "PrimaryContainer": {"ModelDataUrl": "/m/a"}},
    "model-b": {
        "ModelName": "model-b",
        "Containers": [{"Image": "r-image:1", "Environment": {"K": "V"}}],
    },
}


def row(**columns: Any) -> EndpointRow:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    return EndpointRow(
        name="e", arn="arn", status="InService", created_at=now, last_modified_at=now, **columns
    )


def test_from_requests_types_every_variant() -> None:
    d = Deployment.from_requests("cfg", 3, CONFIG, MODELS)
    assert d.fleet == "cfg@3"
    a, b = d.variants
    assert (a.name, a.weight, a.instance_count, a.instance_type) == ("a", 0.8, 2, "ml.m5.large")
    assert a.container == {"ModelDataUrl": "/m/a"}
    assert a.image is None
    assert a.startup_timeout_s == 240.0
    assert (b.weight, b.startup_timeout_s, b.image, b.environment) == (
        1.0, 60.0, "r-image:1", {"K": "V"},
    )  # fmt: skip
    assert [s.name for s in d.shadow_variants] == ["s"]
    assert d.data_capture == CONFIG["DataCaptureConfig"]


def test_stored_and_read_back_unchanged() -> None:
    d = Deployment.from_requests("cfg", 3, CONFIG, MODELS)
    assert deployed(row(generation=5, **deployed_columns(d))) == d
    update = Deployment.from_requests("cfg", 5, CONFIG, MODELS)
    assert pending(row(generation=5, **deployed_columns(d), **pending_columns(update))) == update


def test_a_row_written_before_the_typed_deployment_reads_the_same() -> None:
    old = row(
        config_name="cfg",
        fleet="cfg@2",
        generation=4,
        deployed={"config": CONFIG, "models": MODELS},
        desired={
            "a": {"DesiredWeight": 0.5, "DesiredInstanceCount": 3},
            "b": {"DesiredWeight": 0.5, "DesiredInstanceCount": 1},
        },
    )
    d = deployed(old)
    assert d.fleet == "cfg@2"
    assert [(v.weight, v.instance_count) for v in d.variants] == [(0.5, 3), (0.5, 1)]
    assert d.variants[1].image == "r-image:1"
    assert pending(old) is None
