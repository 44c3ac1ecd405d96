"""Tags through boto3: at creation, add, list (pages of 50), delete, on models, endpoint
configurations and endpoints, and gone with their resource."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import (
    Created,
    Models,
    arn,
    error_of,
)

pytestmark = pytest.mark.slow


def test_tags_at_creation_then_add_list_delete(sm: Any, models: Models) -> None:
    model_arn = sm.create_model(
        ModelName="Tagged-Model",
        PrimaryContainer={"ModelDataUrl": str(models.a.path)},
        Tags=[{"Key": "team", "Value": "ml"}],
    )["ModelArn"]
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    sm.add_tags(
        ResourceArn=model_arn,
        Tags=[{"Key": "team", "Value": "platform"}, {"Key": "cost-center", "Value": "42"}],
    )
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model_arn)["Tags"]}
    assert tags == {"team": "platform", "cost-center": "42"}
    sm.delete_tags(ResourceArn=model_arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "cost-center", "Value": "42"}]


def test_tags_on_endpoint_and_endpoint_config(sm: Any, routing: Created) -> None:
    for resource in (routing.arn, arn("endpoint-config", "cfg-ab")):
        sm.add_tags(ResourceArn=resource, Tags=[{"Key": "stage", "Value": "test"}])
        assert sm.list_tags(ResourceArn=resource)["Tags"] == [{"Key": "stage", "Value": "test"}]
        sm.delete_tags(ResourceArn=resource, TagKeys=["stage"])
        assert sm.list_tags(ResourceArn=resource)["Tags"] == []


def test_list_tags_pages_of_50(sm: Any, models: Models) -> None:
    """ListTags pages hold 50 tags (boto3 allows no smaller MaxResults), a resource at most 50."""
    tags = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50)]
    model_arn = sm.create_model(
        ModelName="many-tags", PrimaryContainer={"ModelDataUrl": str(models.a.path)}, Tags=tags
    )["ModelArn"]
    out = sm.list_tags(ResourceArn=model_arn, MaxResults=50)
    assert sorted(out["Tags"], key=lambda t: t["Key"]) == tags
    assert "NextToken" not in out
    pages = list(sm.get_paginator("list_tags").paginate(ResourceArn=model_arn))
    assert sorted((t for p in pages for t in p["Tags"]), key=lambda t: t["Key"]) == tags


@pytest.mark.parametrize("operation", ["add_tags", "list_tags", "delete_tags"])
def test_tags_on_missing_resource(sm: Any, operation: str) -> None:
    ghost = arn("model", "ghost-model")
    calls = {
        "add_tags": lambda: sm.add_tags(ResourceArn=ghost, Tags=[{"Key": "k", "Value": "v"}]),
        "list_tags": lambda: sm.list_tags(ResourceArn=ghost),
        "delete_tags": lambda: sm.delete_tags(ResourceArn=ghost, TagKeys=["k"]),
    }
    with pytest.raises(ClientError) as excinfo:
        calls[operation]()
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert ghost in message


def test_tags_removed_with_their_resource(sm: Any, models: Models) -> None:
    tagged = {"ModelDataUrl": str(models.a.path)}
    model_arn = sm.create_model(
        ModelName="reborn", PrimaryContainer=tagged, Tags=[{"Key": "k", "Value": "v"}]
    )["ModelArn"]
    sm.delete_model(ModelName="reborn")
    sm.create_model(ModelName="reborn", PrimaryContainer=tagged)
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == []
