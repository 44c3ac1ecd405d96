"""The endpoint configurations API through boto3: create, describe, duplicates, validation,
delete, list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import (
    arn,
    error_of,
    variant,
)

pytestmark = pytest.mark.slow


def test_create_and_describe_endpoint_config(sm: Any, resources: None) -> None:
    out = sm.create_endpoint_config(
        EndpointConfigName="Described-Config",
        ProductionVariants=[variant("first", "model-a", 2.0, 1), variant("second", "model-b", 1.0)],
    )
    assert out["EndpointConfigArn"] == arn("endpoint-config", "Described-Config")
    d = sm.describe_endpoint_config(EndpointConfigName="Described-Config")
    assert d["EndpointConfigName"] == "Described-Config"
    assert d["EndpointConfigArn"] == arn("endpoint-config", "described-config")
    assert isinstance(d["CreationTime"], datetime)
    got = [
        (v["VariantName"], v["ModelName"], v["InitialInstanceCount"], v["InstanceType"])
        for v in d["ProductionVariants"]
    ]
    assert got == [("first", "model-a", 1, "ml.m5.large"), ("second", "model-b", 1, "ml.m5.large")]
    assert [v["InitialVariantWeight"] for v in d["ProductionVariants"]] == [2.0, 1.0]


def test_create_endpoint_config_duplicate(sm: Any, resources: None) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(
            EndpointConfigName="cfg-a", ProductionVariants=[variant("main", "model-b")]
        )
    assert error_of(excinfo) == (
        "ValidationException",
        'Cannot create already existing endpoint configuration "'
        f'{arn("endpoint-config", "cfg-a")}".',
        400,
    )


def test_create_endpoint_config_with_missing_model(sm: Any, resources: None) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(
            EndpointConfigName="cfg-orphan", ProductionVariants=[variant("main", "Ghost-Model")]
        )
    assert error_of(excinfo) == (
        "ValidationException",
        f'Could not find model "{arn("model", "ghost-model")}".',
        400,
    )


def test_create_endpoint_config_instance_type_enum(sm: Any, resources: None) -> None:
    bad = {**variant("main", "model-a"), "InstanceType": "ml.bogus.large"}
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(EndpointConfigName="cfg-enum", ProductionVariants=[bad])
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(
        "1 validation error detected: Value 'ml.bogus.large' at "
        "'productionVariants.1.member.instanceType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ml.t2.medium, "
    ), message


def test_create_endpoint_config_invalid_name(sm: Any, resources: None) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(
            EndpointConfigName="bad_config", ProductionVariants=[variant("main", "model-a")]
        )
    code, message, _ = error_of(excinfo)
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'bad_config' at 'endpointConfigName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
    ), message


def test_create_endpoint_config_duplicate_variant_names(sm: Any, resources: None) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_endpoint_config(
            EndpointConfigName="cfg-dup-variants",
            ProductionVariants=[variant("same", "model-a"), variant("same", "model-b")],
        )
    assert error_of(excinfo)[0] == "ValidationException"


def test_describe_missing_endpoint_config(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.describe_endpoint_config(EndpointConfigName="No-Such-Config")
    assert error_of(excinfo) == (
        "ValidationException",
        'Could not find endpoint configuration "arn:aws:sagemaker:us-east-1:000000000000:'
        'endpoint-config/no-such-config".',
        400,
    )


def test_delete_endpoint_config(sm: Any, resources: None) -> None:
    sm.create_endpoint_config(
        EndpointConfigName="cfg-doomed", ProductionVariants=[variant("main", "model-a")]
    )
    sm.delete_endpoint_config(EndpointConfigName="cfg-doomed")
    missing = f'Could not find endpoint configuration "{arn("endpoint-config", "cfg-doomed")}".'
    for call in (sm.describe_endpoint_config, sm.delete_endpoint_config):
        with pytest.raises(ClientError) as excinfo:
            call(EndpointConfigName="cfg-doomed")
        assert error_of(excinfo) == ("ValidationException", missing, 400)


def test_list_endpoint_configs(sm: Any, resources: None) -> None:
    out = sm.list_endpoint_configs(NameContains="cfg-", SortBy="Name", SortOrder="Ascending")
    names = [c["EndpointConfigName"] for c in out["EndpointConfigs"]]
    assert names == sorted(names)
    assert {"cfg-a", "cfg-ab", "cfg-b", "cfg-broken", "cfg-missing"} <= set(names)
    by_name = {c["EndpointConfigName"]: c for c in out["EndpointConfigs"]}
    assert by_name["cfg-ab"]["EndpointConfigArn"] == arn("endpoint-config", "cfg-ab")
    pages = list(
        sm.get_paginator("list_endpoint_configs").paginate(
            NameContains="cfg-",
            SortBy="Name",
            SortOrder="Ascending",
            PaginationConfig={"PageSize": 2},
        )
    )
    assert all(len(p["EndpointConfigs"]) <= 2 for p in pages)
    assert [c["EndpointConfigName"] for p in pages for c in p["EndpointConfigs"]] == names
    after = sm.list_endpoint_configs(CreationTimeAfter=datetime.now(UTC) + timedelta(hours=1))
    assert after["EndpointConfigs"] == []
