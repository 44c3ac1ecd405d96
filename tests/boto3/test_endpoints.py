"""Endpoints through boto3: create, describe, the waiters, ListEndpoints (paging, filters), an
endpoint's life from Creating to deleted, and endpoints whose model cannot serve (Failed)."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.boto3.hosting import (
    BROKEN,
    GREETING,
    HASTY,
    LIFECYCLE,
    MISSING,
    PROBE,
    ROLLING,
    ROUTING,
    SHORT,
    Created,
    Models,
    arn,
    error_of,
    invoke,
)
from tests.boto3.platform_fixtures import (
    Platform,
    endpoint_processes,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_create_endpoint_starts_creating(routing: Created) -> None:
    assert routing.arn == arn("endpoint", ROUTING)
    first = routing.first
    assert first["EndpointName"] == ROUTING
    assert first["EndpointArn"] == routing.arn
    assert first["EndpointConfigName"] == "cfg-ab"
    assert first["EndpointStatus"] == "Creating"
    assert isinstance(first["CreationTime"], datetime)


def test_describe_endpoint_in_service(sm: Any, routing: Created) -> None:
    d = sm.describe_endpoint(EndpointName=ROUTING)
    assert d["EndpointStatus"] == "InService"
    assert d["EndpointArn"] == arn("endpoint", ROUTING)
    assert d["EndpointConfigName"] == "cfg-ab"
    assert "FailureReason" not in d
    assert d["LastModifiedTime"] >= d["CreationTime"]
    variants = {v["VariantName"]: v for v in d["ProductionVariants"]}
    assert set(variants) == {"variant-a", "variant-b"}
    for name, weight in (("variant-a", 0.8), ("variant-b", 0.2)):
        v = variants[name]
        assert v["CurrentWeight"] == pytest.approx(weight)
        assert v["DesiredWeight"] == pytest.approx(weight)
        assert v["CurrentInstanceCount"] == 1
        assert v["DesiredInstanceCount"] == 1
        [image] = v["DeployedImages"]
        assert "mlflow-pyfunc" in image["SpecifiedImage"]
        assert image["ResolvedImage"]
        assert isinstance(image["ResolutionTime"], datetime)


def test_endpoint_in_service_waiter_default_config_returns_at_once(
    sm: Any, routing: Created
) -> None:
    """AWS's own waiter config (30 s delay): its first poll is immediate, so an endpoint that is
    already InService returns at once."""
    started = time.monotonic()
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ROUTING)
    assert time.monotonic() - started < 5


def test_endpoint_in_service_waiter_fails_for_missing_endpoint(sm: Any) -> None:
    started = time.monotonic()
    with pytest.raises(WaiterError) as excinfo:
        sm.get_waiter("endpoint_in_service").wait(EndpointName="never-created", WaiterConfig=SHORT)
    assert time.monotonic() - started < 5  # ValidationException is a failure state
    assert "Could not find endpoint" in str(excinfo.value.last_response)


def test_create_endpoint_duplicate(sm: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint(EndpointName=ROUTING, EndpointConfigName="cfg-a")
    assert error_of(excinfo) == (
        "ValidationException",
        f'Cannot create already existing endpoint "{arn("endpoint", ROUTING)}".',
        400,
    )
    assert sm.describe_endpoint(EndpointName=ROUTING)["EndpointConfigName"] == "cfg-ab"


def test_create_endpoint_with_missing_config(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint(EndpointName="no-config-endpoint", EndpointConfigName="Ghost-Config")
    assert error_of(excinfo) == (
        "ValidationException",
        f'Could not find endpoint configuration "{arn("endpoint-config", "ghost-config")}".',
        400,
    )
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName="no-config-endpoint")


@pytest.mark.parametrize(
    ("name", "errors"),
    [
        ("bad_endpoint", ["Member must satisfy regular expression pattern: "]),
        ("-bad", ["Member must satisfy regular expression pattern: "]),
        ("bad-", ["Member must satisfy regular expression pattern: "]),
        # the pattern itself allows at most 63 characters: both constraints fail
        (
            "x" * 64,
            [
                "Member must have length less than or equal to 63",
                "Member must satisfy regular expression pattern: ",
            ],
        ),
    ],
)
def test_create_endpoint_invalid_name(
    sm: Any, resources: None, name: str, errors: list[str]
) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint(EndpointName=name, EndpointConfigName="cfg-a")
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
    assert message.startswith(count), message
    parts = message[len(count) :].split("; ")
    assert len(parts) == len(errors), message
    for part, constraint in zip(parts, errors, strict=True):
        prefix = f"Value '{name}' at 'endpointName' failed to satisfy constraint: {constraint}"
        assert part.startswith(prefix), message


def test_describe_missing_endpoint(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.describe_endpoint(EndpointName="Never-Created")
    assert error_of(excinfo) == (
        "ValidationException",
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:000000000000:endpoint/'
        'never-created".',
        400,
    )


@pytest.mark.parametrize("operation", ["delete_endpoint", "update_endpoint", "update_weights"])
def test_operations_on_missing_endpoint(sm: Any, resources: None, operation: str) -> None:
    calls = {
        "delete_endpoint": lambda: sm.delete_endpoint(EndpointName="Ghost"),
        "update_endpoint": lambda: sm.update_endpoint(
            EndpointName="Ghost", EndpointConfigName="cfg-a"
        ),
        "update_weights": lambda: sm.update_endpoint_weights_and_capacities(
            EndpointName="Ghost",
            DesiredWeightsAndCapacities=[{"VariantName": "main", "DesiredWeight": 1.0}],
        ),
    }
    with pytest.raises(ClientError) as excinfo:
        calls[operation]()
    assert error_of(excinfo) == (
        "ValidationException",
        f'Could not find endpoint "{arn("endpoint", "ghost")}".',
        400,
    )


def test_list_endpoints(sm: Any, routing: Created, rolling: Created) -> None:
    every = sm.list_endpoints(MaxResults=100)["Endpoints"]
    by_name = {e["EndpointName"]: e for e in every}
    assert {ROUTING, ROLLING} <= set(by_name)
    e = by_name[ROUTING]
    assert e["EndpointArn"] == arn("endpoint", ROUTING)
    assert e["EndpointStatus"] == "InService"
    assert isinstance(e["CreationTime"], datetime)
    assert isinstance(e["LastModifiedTime"], datetime)
    # default order: newest first
    times = [x["CreationTime"] for x in every]
    assert times == sorted(times, reverse=True)


def test_list_endpoints_paging(sm: Any, routing: Created, rolling: Created) -> None:
    expected = [e["EndpointName"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]]
    seen: list[str] = []
    token: str | None = None
    for _ in range(len(expected) + 1):
        kwargs: dict[str, Any] = {"MaxResults": 1}
        if token:
            kwargs["NextToken"] = token
        out = sm.list_endpoints(**kwargs)
        assert len(out["Endpoints"]) <= 1
        seen += [e["EndpointName"] for e in out["Endpoints"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == expected
    pages = list(sm.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": 1}))
    assert [e["EndpointName"] for p in pages for e in p["Endpoints"]] == expected
    assert len(pages) == len(expected)


def test_list_endpoints_filters(sm: Any, routing: Created, rolling: Created) -> None:
    def names(**kw: Any) -> list[str]:
        return [e["EndpointName"] for e in sm.list_endpoints(MaxResults=100, **kw)["Endpoints"]]

    assert ROUTING in names(StatusEquals="InService")
    assert ROUTING not in names(StatusEquals="Failed")
    assert names(NameContains="routin") == [ROUTING]
    by_name = names(SortBy="Name", SortOrder="Ascending")
    assert by_name == sorted(by_name)
    created = sm.describe_endpoint(EndpointName=ROUTING)["CreationTime"]
    assert ROUTING in names(CreationTimeAfter=created - timedelta(seconds=1))
    assert ROUTING not in names(CreationTimeBefore=created - timedelta(seconds=1))
    assert names(CreationTimeAfter=datetime.now(UTC) + timedelta(hours=1)) == []
    assert names(LastModifiedTimeAfter=datetime.now(UTC) + timedelta(hours=1)) == []
    assert ROUTING in names(LastModifiedTimeBefore=datetime.now(UTC) + timedelta(hours=1))
    assert ROUTING not in names(LastModifiedTimeBefore=created - timedelta(seconds=1))
    statuses = [
        e["EndpointStatus"]
        for e in sm.list_endpoints(SortBy="Status", SortOrder="Ascending")["Endpoints"]
    ]
    assert statuses == sorted(statuses)


def test_list_endpoints_status_enum_error(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.list_endpoints(StatusEquals="Sleeping")
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(
        "1 validation error detected: Value 'Sleeping' at 'statusEquals' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    ), message
    assert "InService" in message


def test_endpoint_lifecycle_create_in_service_delete(
    platform: Platform, sm: Any, rt: Any, models: Models, resources: None
) -> None:
    out = sm.create_endpoint(EndpointName=LIFECYCLE, EndpointConfigName="cfg-env")
    assert out["EndpointArn"] == arn("endpoint", LIFECYCLE)
    assert sm.describe_endpoint(EndpointName=LIFECYCLE)["EndpointStatus"] == "Creating"
    sm.get_waiter("endpoint_in_service").wait(EndpointName=LIFECYCLE, WaiterConfig=SHORT)
    d = sm.describe_endpoint(EndpointName=LIFECYCLE)
    assert d["EndpointStatus"] == "InService"
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    [instance] = endpoint_processes(platform.home, LIFECYCLE)
    assert invoke(rt, LIFECYCLE) == ("main", models.a.predict(PROBE))
    # the container definition's Environment reaches the instance's process
    environ = Path(f"/proc/{instance.pid}/environ").read_bytes().split(b"\0")
    assert f"GREETING={GREETING}".encode() in environ

    sm.delete_endpoint(EndpointName=LIFECYCLE)
    with contextlib.suppress(ClientError):  # it may already be gone
        assert sm.describe_endpoint(EndpointName=LIFECYCLE)["EndpointStatus"] == "Deleting"
    sm.get_waiter("endpoint_deleted").wait(EndpointName=LIFECYCLE, WaiterConfig=SHORT)
    with pytest.raises(ClientError) as excinfo:
        sm.describe_endpoint(EndpointName=LIFECYCLE)
    assert error_of(excinfo) == (
        "ValidationException",
        f'Could not find endpoint "{arn("endpoint", LIFECYCLE)}".',
        400,
    )
    assert LIFECYCLE not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert endpoint_processes(platform.home, LIFECYCLE) == []
    with pytest.raises(ClientError) as excinfo:
        invoke(rt, LIFECYCLE)
    assert error_of(excinfo)[0] == "ValidationError"
    # the configuration is still there
    assert sm.describe_endpoint_config(EndpointConfigName="cfg-env")["EndpointConfigName"] == (
        "cfg-env"
    )


def test_delete_endpoint_while_creating(platform: Platform, sm: Any, resources: None) -> None:
    sm.create_endpoint(EndpointName=HASTY, EndpointConfigName="cfg-a")
    assert sm.describe_endpoint(EndpointName=HASTY)["EndpointStatus"] == "Creating"
    sm.delete_endpoint(EndpointName=HASTY)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=HASTY, WaiterConfig=SHORT)
    wait_for(lambda: not endpoint_processes(platform.home, HASTY), 15, what="no instance left")
    time.sleep(2)  # nothing launched late either
    assert endpoint_processes(platform.home, HASTY) == []
    with pytest.raises(ClientError) as excinfo:
        sm.describe_endpoint(EndpointName=HASTY)
    assert error_of(excinfo)[0] == "ValidationException"


def _wait_failed(sm: Any, name: str) -> dict[str, Any]:
    with pytest.raises(WaiterError) as excinfo:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)
    assert "Failed" in str(excinfo.value)
    d: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
    assert d["EndpointStatus"] == "Failed"
    return d


def _delete_and_wait(platform: Platform, sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=SHORT)
    assert endpoint_processes(platform.home, name) == []


def test_endpoint_with_missing_model_dir_fails(
    platform: Platform, sm: Any, models: Models, resources: None
) -> None:
    sm.create_endpoint(EndpointName=MISSING, EndpointConfigName="cfg-missing")
    d = _wait_failed(sm, MISSING)
    assert str(models.missing) in d["FailureReason"]
    assert MISSING in [
        e["EndpointName"] for e in sm.list_endpoints(StatusEquals="Failed")["Endpoints"]
    ]
    assert endpoint_processes(platform.home, MISSING) == []
    # a Failed endpoint cannot be updated, only deleted
    with pytest.raises(ClientError) as excinfo:
        sm.update_endpoint(EndpointName=MISSING, EndpointConfigName="cfg-a")
    assert error_of(excinfo)[0] == "ValidationException"
    _delete_and_wait(platform, sm, MISSING)


def test_endpoint_with_broken_model_fails_quoting_instance_log(
    platform: Platform, sm: Any, models: Models, resources: None
) -> None:
    sm.create_endpoint(EndpointName=BROKEN, EndpointConfigName="cfg-broken")
    d = _wait_failed(sm, BROKEN)
    reason = d["FailureReason"]
    assert "Could not load model" in reason  # what `pier serve` logged
    assert str(models.broken) in reason
    logs = list((platform.home / "instances").glob(f"**/{BROKEN}-*/serve.log"))
    for log in logs:  # the tail of the instance's own log is quoted
        last = [line for line in log.read_text().splitlines() if line.strip()][-1]
        assert last in reason
    assert endpoint_processes(platform.home, BROKEN) == []
    _delete_and_wait(platform, sm, BROKEN)
