"""The models API through boto3: create, describe, delete, names, images; and ListModels'
paging, sorting and filters, also while models are created and deleted."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import (
    SHORT,
    Models,
    arn,
    error_of,
    variant,
)
from tests.boto3.platform_fixtures import (
    ACCOUNT,
    Platform,
)

pytestmark = pytest.mark.slow


def test_create_model_returns_arn_with_lower_cased_name(sm: Any, models: Models) -> None:
    out = sm.create_model(
        ModelName="Mixed-Case-Model", PrimaryContainer={"ModelDataUrl": str(models.a.path)}
    )
    assert out["ModelArn"] == arn("model", "Mixed-Case-Model")
    assert out["ModelArn"].endswith(":model/mixed-case-model")


def test_describe_model(sm: Any, models: Models) -> None:
    before = datetime.now(UTC)
    container = {
        "Image": "pier/mlflow-pyfunc",
        "ModelDataUrl": str(models.a.path),
        "Environment": {"GREETING": "hello"},
    }
    role = f"arn:aws:iam::{ACCOUNT}:role/pier-test"
    sm.create_model(ModelName="described", PrimaryContainer=container, ExecutionRoleArn=role)
    d = sm.describe_model(ModelName="described")
    assert d["ModelName"] == "described"
    assert d["ModelArn"] == arn("model", "described")
    assert d["PrimaryContainer"]["ModelDataUrl"] == str(models.a.path)
    assert d["PrimaryContainer"]["Environment"] == {"GREETING": "hello"}
    assert d["PrimaryContainer"]["Image"] == "pier/mlflow-pyfunc"
    assert d["ExecutionRoleArn"] == role
    assert (
        before - timedelta(seconds=5)
        <= d["CreationTime"]
        <= datetime.now(UTC) + timedelta(seconds=5)
    )


def test_create_model_duplicate_is_validation_exception(sm: Any, models: Models) -> None:
    sm.create_model(ModelName="Twice", PrimaryContainer={"ModelDataUrl": str(models.a.path)})
    with pytest.raises(ClientError) as excinfo:
        sm.create_model(ModelName="Twice", PrimaryContainer={"ModelDataUrl": str(models.b.path)})
    assert error_of(excinfo) == (
        "ValidationException",
        f'Cannot create already existing model "{arn("model", "Twice")}".',
        400,
    )
    # the first one stands
    assert sm.describe_model(ModelName="Twice")["PrimaryContainer"]["ModelDataUrl"] == str(
        models.a.path
    )


@pytest.mark.parametrize("kind", ["model", "endpoint-config", "endpoint"])
def test_names_differing_only_in_case_are_one_resource(
    platform: Platform, sm: Any, models: Models, resources: None, kind: str
) -> None:
    """AWS lower-cases the name inside the ARN, the resource's unique id: `Case-Twin` and
    `case-twin` would share one ARN, so the second create is a duplicate."""
    create = {
        "model": lambda name: sm.create_model(
            ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)}
        ),
        "endpoint-config": lambda name: sm.create_endpoint_config(
            EndpointConfigName=name, ProductionVariants=[variant("main", "model-a")]
        ),
        "endpoint": lambda name: sm.create_endpoint(EndpointName=name, EndpointConfigName="cfg-a"),
    }[kind]
    delete = {
        "model": lambda name: sm.delete_model(ModelName=name),
        "endpoint-config": lambda name: sm.delete_endpoint_config(EndpointConfigName=name),
        "endpoint": lambda name: sm.delete_endpoint(EndpointName=name),
    }[kind]
    first, second = f"Case-Twin-{kind}", f"case-twin-{kind}"
    noun = {"model": "model", "endpoint-config": "endpoint configuration"}.get(kind, kind)
    create(first)
    try:
        try:
            create(second)
        except ClientError as exc:
            response = exc.response
        else:
            delete(second)
            pytest.fail(f"pier created {second} beside {first}: both are {arn(kind, first)}")
        assert (response["Error"]["Code"], response["Error"]["Message"]) == (
            "ValidationException",
            f'Cannot create already existing {noun} "{arn(kind, second)}".',
        )
    finally:
        delete(first)
        if kind == "endpoint":
            for name in (first, second):
                sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=SHORT)


def test_concurrent_creates_of_one_name(platform: Platform, models: Models) -> None:
    """Eight clients create the same model at once: one wins, the others get the duplicate
    error (never an internal failure)."""
    clients = [platform.client("sagemaker") for _ in range(8)]
    barrier = threading.Barrier(len(clients))

    def create(client: Any) -> str:
        barrier.wait()
        try:
            client.create_model(
                ModelName="contested", PrimaryContainer={"ModelDataUrl": str(models.a.path)}
            )
        except ClientError as exc:
            return f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
        return "created"

    with ThreadPoolExecutor(len(clients)) as pool:
        outcomes = list(pool.map(create, clients))
    duplicate = (
        f'ValidationException: Cannot create already existing model "{arn("model", "contested")}".'
    )
    assert sorted(outcomes) == sorted(["created"] + [duplicate] * 7), outcomes


def test_describe_missing_model_is_validation_exception(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.describe_model(ModelName="No-Such-Model")
    assert error_of(excinfo) == (
        "ValidationException",
        'Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/no-such-model".',
        400,
    )


def test_delete_model(sm: Any, models: Models) -> None:
    sm.create_model(ModelName="doomed-model", PrimaryContainer={"ModelDataUrl": str(models.a.path)})
    sm.delete_model(ModelName="doomed-model")
    missing = f'Could not find model "{arn("model", "doomed-model")}".'
    with pytest.raises(ClientError) as excinfo:
        sm.describe_model(ModelName="doomed-model")
    assert error_of(excinfo) == ("ValidationException", missing, 400)
    with pytest.raises(ClientError) as excinfo:
        sm.delete_model(ModelName="doomed-model")
    assert error_of(excinfo) == ("ValidationException", missing, 400)
    names = [
        m["ModelName"] for m in sm.list_models(NameContains="doomed", MaxResults=100)["Models"]
    ]
    assert names == []


@pytest.mark.parametrize(
    ("name", "constraint"),
    [
        ("under_score", "Member must satisfy regular expression pattern: "),
        ("-leading-hyphen", "Member must satisfy regular expression pattern: "),
        ("trailing-hyphen-", "Member must satisfy regular expression pattern: "),
        ("dot.ted", "Member must satisfy regular expression pattern: "),
        ("x" * 64, "Member must have length less than or equal to 63"),
    ],
)
def test_create_model_invalid_name(sm: Any, models: Models, name: str, constraint: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)})
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(
        f"1 validation error detected: Value '{name}' at 'modelName' failed to satisfy "
        f"constraint: {constraint}"
    ), message


def test_create_model_63_character_name_is_valid(sm: Any, models: Models) -> None:
    name = "m" * 63
    out = sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)})
    assert out["ModelArn"] == arn("model", name)


def test_create_model_with_another_image_is_accepted(sm: Any, models: Models) -> None:
    """Any image may run in a container (built or mapped before an endpoint launches it: a
    missing image fails the endpoint, not CreateModel, as on SageMaker). Without a Docker
    Engine it is refused: tests/hosting/test_docker_backend.py."""
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"
    out = sm.create_model(
        ModelName="foreign-image",
        PrimaryContainer={"Image": image, "ModelDataUrl": str(models.a.path)},
    )
    assert out["ModelArn"] == arn("model", "foreign-image")
    assert sm.describe_model(ModelName="foreign-image")["PrimaryContainer"]["Image"] == image


def test_create_model_any_mlflow_pyfunc_image_is_accepted(sm: Any, models: Models) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-mlflow-pyfunc:2.17"
    out = sm.create_model(
        ModelName="pyfunc-image",
        PrimaryContainer={"Image": image, "ModelDataUrl": str(models.a.path)},
    )
    assert out["ModelArn"] == arn("model", "pyfunc-image")


def test_create_model_missing_required_member(sm: Any) -> None:
    """boto3 checks ModelName itself; a container without model data is pier's to refuse."""
    with pytest.raises(ClientError) as excinfo:
        sm.create_model(ModelName="no-model-data", PrimaryContainer={"Image": "pier/mlflow-pyfunc"})
    assert error_of(excinfo)[0] == "ValidationException"


@pytest.fixture(scope="module")
def paging_models(sm: Any, models: Models) -> list[str]:
    names = [f"paging-{i}" for i in range(5)]
    for name in names:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)})
        time.sleep(0.02)  # distinct creation times, far apart at boto3's millisecond precision
    return names


def test_list_models_paging_with_next_token(sm: Any, paging_models: list[str]) -> None:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"NameContains": "paging-", "MaxResults": 2}
        if token:
            kwargs["NextToken"] = token
        out = sm.list_models(**kwargs)
        pages.append([m["ModelName"] for m in out["Models"]])
        token = out.get("NextToken")
        if not token:
            break
        assert len(pages) < 10, "NextToken never ends"
    # default order: CreationTime, Descending
    assert pages == [["paging-4", "paging-3"], ["paging-2", "paging-1"], ["paging-0"]]
    first = sm.list_models(NameContains="paging-", MaxResults=1)["Models"][0]
    assert first["ModelArn"] == arn("model", "paging-4")
    assert isinstance(first["CreationTime"], datetime)


def test_list_models_paginator(sm: Any, paging_models: list[str]) -> None:
    paginator = sm.get_paginator("list_models")
    pages = [
        [m["ModelName"] for m in page["Models"]]
        for page in paginator.paginate(NameContains="paging-", PaginationConfig={"PageSize": 2})
    ]
    assert pages == [["paging-4", "paging-3"], ["paging-2", "paging-1"], ["paging-0"]]
    capped = paginator.paginate(
        NameContains="paging-", PaginationConfig={"PageSize": 2, "MaxItems": 3}
    ).build_full_result()
    assert [m["ModelName"] for m in capped["Models"]] == ["paging-4", "paging-3", "paging-2"]
    assert "NextToken" in capped


def test_list_models_sort_by_and_sort_order(sm: Any, paging_models: list[str]) -> None:
    def names(**kw: Any) -> list[str]:
        return [m["ModelName"] for m in sm.list_models(NameContains="paging-", **kw)["Models"]]

    assert names(SortBy="CreationTime", SortOrder="Ascending") == paging_models
    assert names(SortBy="CreationTime", SortOrder="Descending") == paging_models[::-1]
    assert names(SortBy="Name", SortOrder="Ascending") == sorted(paging_models)
    assert names(SortBy="Name", SortOrder="Descending") == sorted(paging_models, reverse=True)


def test_list_models_name_contains(sm: Any, paging_models: list[str]) -> None:
    out = sm.list_models(NameContains="ging-3", MaxResults=100)["Models"]
    assert [m["ModelName"] for m in out] == ["paging-3"]
    assert sm.list_models(NameContains="nothing-like-this")["Models"] == []


def test_list_models_creation_time_filters(sm: Any, paging_models: list[str]) -> None:
    t2 = sm.describe_model(ModelName="paging-2")["CreationTime"]
    t3 = sm.describe_model(ModelName="paging-3")["CreationTime"]
    assert t3 - t2 >= timedelta(milliseconds=10)
    middle = t2 + (t3 - t2) / 2

    def names(**kw: Any) -> list[str]:
        out = sm.list_models(NameContains="paging-", SortOrder="Ascending", **kw)["Models"]
        return [m["ModelName"] for m in out]

    assert names(CreationTimeAfter=middle) == ["paging-3", "paging-4"]
    assert names(CreationTimeBefore=middle) == ["paging-0", "paging-1", "paging-2"]
    assert names(CreationTimeAfter=datetime.now(UTC) + timedelta(hours=1)) == []


def test_list_models_default_page_is_10(sm: Any, models: Models) -> None:
    names = [f"default-page-{i:02d}" for i in range(11)]
    for name in names:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)})
    first = sm.list_models(NameContains="default-page-", SortBy="Name", SortOrder="Ascending")
    assert [m["ModelName"] for m in first["Models"]] == names[:10]
    rest = sm.list_models(
        NameContains="default-page-",
        SortBy="Name",
        SortOrder="Ascending",
        NextToken=first["NextToken"],
    )
    assert [m["ModelName"] for m in rest["Models"]] == names[10:]
    assert "NextToken" not in rest


def test_deleting_while_paginating_visits_every_model(sm: Any, models: Models) -> None:
    """The common clean-up loop: page through, delete what each page holds."""
    names = [f"sweep-{i}" for i in range(6)]
    for name in names:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)})
    visited = []
    paginator = sm.get_paginator("list_models")
    for page in paginator.paginate(NameContains="sweep-", PaginationConfig={"PageSize": 2}):
        for m in page["Models"]:
            visited.append(m["ModelName"])
            sm.delete_model(ModelName=m["ModelName"])
    left = [m["ModelName"] for m in sm.list_models(NameContains="sweep-")["Models"]]
    for name in left:  # leave nothing behind for the other tests
        sm.delete_model(ModelName=name)
    assert sorted(visited) == names, f"visited {visited}, skipped {left}"


def test_creating_while_paginating_repeats_nothing(sm: Any, models: Models) -> None:
    def create(name: str) -> None:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(models.a.path)})
        time.sleep(0.02)

    for i in range(4):
        create(f"grow-{i}")
    first = sm.list_models(NameContains="grow-", MaxResults=2)
    seen = [m["ModelName"] for m in first["Models"]]
    assert seen == ["grow-3", "grow-2"]
    create("grow-4")  # newer than everything listed: it belongs before the first page
    token = first["NextToken"]
    while token:
        page = sm.list_models(NameContains="grow-", MaxResults=2, NextToken=token)
        seen += [m["ModelName"] for m in page["Models"]]
        token = page.get("NextToken")
    assert len(seen) == len(set(seen)), seen
    assert {"grow-0", "grow-1", "grow-2", "grow-3"} <= set(seen)


def test_list_models_enum_and_range_errors(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.list_models(SortOrder="Sideways")
    assert error_of(excinfo) == (
        "ValidationException",
        "1 validation error detected: Value 'Sideways' at 'sortOrder' failed to satisfy "
        "constraint: Member must satisfy enum value set: [Ascending, Descending]",
        400,
    )
    with pytest.raises(ClientError) as excinfo:
        sm.list_models(SortBy="Size")
    code, message, _ = error_of(excinfo)
    assert code == "ValidationException"
    assert "Value 'Size' at 'sortBy' failed to satisfy constraint: Member must satisfy enum" in (
        message
    )
    with pytest.raises(ClientError) as excinfo:
        sm.list_models(MaxResults=101)
    assert error_of(excinfo) == (
        "ValidationException",
        "1 validation error detected: Value '101' at 'maxResults' failed to satisfy constraint: "
        "Member must have value less than or equal to 100",
        400,
    )


def test_list_models_invalid_next_token(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.list_models(NextToken="not-a-token-pier-issued")
    assert error_of(excinfo)[0] == "ValidationException"


def test_operation_pier_does_not_implement(sm: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.list_training_jobs()
    code, message, status = error_of(excinfo)
    assert code == "UnknownOperationException"
    assert status == 400
    assert message
