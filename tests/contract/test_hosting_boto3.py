"""SageMaker hosting through unmodified boto3, against a real `pier up` process.

Every test talks to pier the way users' code does: `boto3.client("sagemaker")` and
`boto3.client("sagemaker-runtime")` with an endpoint_url and the platform's keys (clients make
no retries, so a failed request is seen failing). The whole module runs twice, on SQLite and on
a fresh database of the local PostgreSQL; at the end the platform gets SIGTERM and must exit 0
leaving no `pier serve` behind.

Endpoints are expensive (each instance is a `pier serve` process), so the module creates few:
- ROUTING: two variants (model A weight 0.8, model B weight 0.2), for the read-only checks;
- ROLLING: one variant, updated to model B, to a broken model, to two instances, back to model
  A retaining its capacity; one of its instances is SIGKILLed under load;
- LIFECYCLE, HASTY, MISSING, BROKEN: short-lived, deleted by their tests;
- the platform itself is then SIGKILLed and restarted on the same home and port, twice (the
  second time while PHOENIX is Creating and ROLLING Updating).
The tests run in file order; the later ROLLING, ROUTING and PHOENIX tests build on the earlier."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

from pier.hosting import model_env
from pier.hosting.docker_engine import connect
from pier.hosting.images import serving_image
from tests.contract.platform_fixtures import (
    ACCOUNT,
    BACKENDS,
    BASE_IMAGE,
    BIN,
    REGION,
    LinearModel,
    Platform,
    endpoint_processes,
    free_port,
    kill_leftovers,
    pid_alive,
    platform_env,
    postgres_database,
    predictions,
    save_broken_model,
    save_linear_model,
    serve_processes,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow

SHORT = {"Delay": 1, "MaxAttempts": 120}  # AWS's waiters poll every 30 s; pier is faster
ROUTING = "routing"
ROLLING = "rolling"
LIFECYCLE = "lifecycle"
MISSING = "missing-model"
BROKEN = "broken-model"
HASTY = "hasty"
PHOENIX = "phoenix"
GREETING = "hello from the container definition"
PROBE = [[1.0, 2.0]]  # model A answers 15.0, model B 98.0
WEIGHT_TOLERANCE = 0.08  # 500 draws at p=0.8: one standard deviation is 0.018


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], response["Error"]["Message"], status


# ---------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Models:
    a: LinearModel
    b: LinearModel
    broken: Path
    missing: Path

    def which(self, prediction: float) -> str:
        """'A' or 'B': which model gave this answer to PROBE."""
        for label, model in (("A", self.a), ("B", self.b)):
            if abs(model.predict(PROBE)[0] - prediction) < 1e-6:
                return label
        raise AssertionError(f"{prediction} is neither model's answer to {PROBE}")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    return Models(
        a=save_linear_model(root / "model-a", 1.0, 2.0, 10.0),
        b=save_linear_model(root / "model-b", -3.0, 0.5, 100.0),
        broken=save_broken_model(root / "broken"),
        missing=root / "does-not-exist",
    )


@pytest.fixture(
    scope="module",
    params=[("sqlite", "process"), ("postgresql", "docker")],
    ids=["sqlite-process", "postgresql-docker"],
)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, models: Models
) -> Any:
    """A `pier up` on a free port and a fresh home; SIGTERM at the end must exit 0 and leave
    no instance running. Two runs cover both state stores and both instance backends
    (store and backend are independent: pairing them keeps the suite's time). On Docker, the
    models' serving image is built first (once: the engine keeps it), so that no endpoint
    test waits minutes for it."""
    backend, hosting = request.param
    if hosting == "docker":
        connect()  # no engine: the docker variant fails here, saying how to start one
        serving_image(
            model_env.read(models.a.path),
            base_image=BASE_IMAGE,
            cache_dir=tmp_path_factory.mktemp("image-cache"),
        )
    root = tmp_path_factory.mktemp(f"pier-{backend}-{hosting}")
    options, env = BACKENDS[hosting]
    with contextlib.ExitStack() as stack:
        state_url = stack.enter_context(postgres_database()) if backend == "postgresql" else None
        p = Platform(
            root / "home", free_port(), state_url, f"{backend}-{hosting}",
            options=("--no-mlflow", *options), env=env,
        )  # fmt: skip
        started = time.monotonic()
        code: int | None = None
        left: list[Any] = []
        try:
            p.start()
            yield p
            code = p.terminate()
            left = serve_processes(p.home)
        finally:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
            kill_leftovers(p.home)
        print(f"\n[{backend}-{hosting}] platform up for {time.monotonic() - started:.1f} s")
        assert code == 0, f"pier up exited {code} after SIGTERM:\n{p.log_tail()}"
        assert left == [], f"pier serve processes outlived the platform: {left}"


@pytest.fixture(scope="module")
def sm(platform: Platform) -> Any:
    return platform.client("sagemaker")


@pytest.fixture(scope="module")
def rt(platform: Platform) -> Any:
    return platform.client("sagemaker-runtime")


def variant(name: str, model: str, weight: float = 1.0, count: int = 1) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


@pytest.fixture(scope="module")
def resources(sm: Any, models: Models) -> None:
    """The models and endpoint configurations the endpoint tests deploy."""
    for name, path in (
        ("model-a", models.a.path),
        ("model-b", models.b.path),
        ("model-broken", models.broken),
        ("model-missing", models.missing),
    ):
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(path)})
    sm.create_model(
        ModelName="model-env",
        PrimaryContainer={
            "ModelDataUrl": str(models.a.path),
            "Environment": {"GREETING": GREETING},
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="cfg-env", ProductionVariants=[variant("main", "model-env")]
    )
    sm.create_endpoint_config(
        EndpointConfigName="cfg-ab",
        ProductionVariants=[
            variant("variant-a", "model-a", weight=0.8),
            variant("variant-b", "model-b", weight=0.2),
        ],
    )
    for suffix in ("a", "b", "broken", "missing"):
        sm.create_endpoint_config(
            EndpointConfigName=f"cfg-{suffix}",
            ProductionVariants=[variant("main", f"model-{suffix}")],
        )


@dataclass
class Created:
    arn: str
    first: dict[str, Any]  # DescribeEndpoint right after CreateEndpoint


def create_and_wait(sm: Any, name: str, config: str) -> Created:
    endpoint_arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=config)["EndpointArn"]
    first = sm.describe_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)
    return Created(endpoint_arn, first)


@pytest.fixture(scope="module")
def routing(sm: Any, resources: None) -> Created:
    return create_and_wait(sm, ROUTING, "cfg-ab")


@pytest.fixture(scope="module")
def rolling(sm: Any, resources: None) -> Created:
    return create_and_wait(sm, ROLLING, "cfg-a")


def invoke(rt: Any, endpoint: str, rows: list[list[float]] = PROBE, **kw: Any) -> Any:
    response = rt.invoke_endpoint(
        EndpointName=endpoint, Body=split_json(rows), ContentType="application/json", **kw
    )
    return response["InvokedProductionVariant"], predictions(response["Body"].read())


@dataclass
class Load:
    """Invokes an endpoint from `threads` threads (one boto3 client each) until stopped."""

    platform: Platform
    models: Models
    endpoint: str
    threads: int = 1
    answers: list[list[str]] = field(default_factory=list)  # per thread: 'A' / 'B' in order
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for i in range(self.threads):
            self.answers.append([])
            client = self.platform.client("sagemaker-runtime")
            worker = threading.Thread(target=self._run, args=(client, self.answers[i]))
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, client: Any, answers: list[str]) -> None:
        while not self._stop.is_set():
            try:
                _, got = invoke(client, self.endpoint)
                answers.append(self.models.which(got[0]))
            except Exception as exc:
                with self._lock:
                    self.errors.append(repr(exc))

    def ok(self) -> int:
        return sum(len(a) for a in self.answers)

    def wait_answers(self, more: int, timeout: float = 20) -> None:
        target = self.ok() + more
        wait_for(lambda: self.ok() >= target, timeout, 0.02, f"{more} more answers")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(90)


def describe_variants(sm: Any, name: str) -> dict[str, dict[str, Any]]:
    d = sm.describe_endpoint(EndpointName=name)
    return {v["VariantName"]: v for v in d["ProductionVariants"]}


# ------------------------------------------------------------------------------ models (API)


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


# -------------------------------------------------------------------- endpoint configs (API)


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


# --------------------------------------------------------------------------- endpoints (API)


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


# ---------------------------------------------------------------------------- invocations


@pytest.mark.parametrize(("target", "label"), [("variant-a", "a"), ("variant-b", "b")])
def test_invoke_prediction_equals_local_model(
    rt: Any, models: Models, routing: Created, target: str, label: str
) -> None:
    rows = [[1.0, 2.0], [0.0, 0.0], [-4.5, 3.25], [1e3, -2e3]]
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(rows),
        ContentType="application/json",
        Accept="application/json",
        TargetVariant=target,
    )
    assert response["InvokedProductionVariant"] == target
    assert response["ContentType"].startswith("application/json")
    model: LinearModel = getattr(models, label)
    assert predictions(response["Body"].read()) == pytest.approx(model.predict(rows), rel=1e-9)


def test_invoke_csv_in_csv_out(rt: Any, models: Models, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=b"a,b\n1.0,2.0\n3.0,-1.0\n",
        ContentType="text/csv",
        Accept="text/csv",
        TargetVariant="variant-b",
    )
    assert response["ContentType"].startswith("text/csv")
    got = [float(x) for x in response["Body"].read().decode().split()]
    assert got == pytest.approx(models.b.predict([[1.0, 2.0], [3.0, -1.0]]), rel=1e-9)


def test_invoke_with_custom_attributes(rt: Any, models: Models, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(PROBE),
        ContentType="application/json",
        CustomAttributes="trace-id=abc123,tenant=7",
        TargetVariant="variant-a",
    )
    assert predictions(response["Body"].read()) == models.a.predict(PROBE)
    # the MLflow server sets no custom attributes of its own: none come back
    assert "CustomAttributes" not in response
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-invoked-production-variant"] == (
        "variant-a"
    )


def test_invoke_with_inference_id(rt: Any, models: Models, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(PROBE),
        ContentType="application/json",
        InferenceId="inference-0001",
        TargetVariant="variant-b",
    )
    assert predictions(response["Body"].read()) == models.b.predict(PROBE)


def test_weighted_routing_follows_weights(
    platform: Platform, models: Models, routing: Created
) -> None:
    """500 calls without TargetVariant (from 4 threads): variant-a's share is 0.8 ± 0.08, and
    every answer comes from the model of the variant the response names."""

    def calls(n: int) -> list[tuple[str, str]]:
        client = platform.client("sagemaker-runtime")
        out = []
        for _ in range(n):
            name, got = invoke(client, ROUTING)
            out.append((name, models.which(got[0])))
        return out

    with ThreadPoolExecutor(4) as pool:
        results = [r for chunk in pool.map(calls, [125] * 4) for r in chunk]
    assert len(results) == 500
    assert set(results) <= {("variant-a", "A"), ("variant-b", "B")}
    share = sum(name == "variant-a" for name, _ in results) / len(results)
    assert abs(share - 0.8) <= WEIGHT_TOLERANCE, share


@pytest.mark.parametrize(("target", "label"), [("variant-a", "A"), ("variant-b", "B")])
def test_target_variant_routes_every_call(
    rt: Any, models: Models, routing: Created, target: str, label: str
) -> None:
    for _ in range(40):
        name, got = invoke(rt, ROUTING, TargetVariant=target)
        assert (name, models.which(got[0])) == (target, label)


def test_invoke_unknown_variant(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(rt, ROUTING, TargetVariant="variant-z")
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationError", 400)
    assert "variant-z" in message


def test_invoke_unknown_endpoint(rt: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(rt, "no-such-endpoint")
    assert error_of(excinfo) == (
        "ValidationError",
        f"Endpoint no-such-endpoint of account {ACCOUNT} not found.",
        400,
    )


def test_model_error_for_bad_payload(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        rt.invoke_endpoint(
            EndpointName=ROUTING,
            Body=split_json([[1.0]], columns=("a",)),  # column b is missing
            ContentType="application/json",
            TargetVariant="variant-a",
        )
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ModelError", 424)
    assert message.startswith('Received client error (400) from primary with message "'), message
    response = excinfo.value.response
    assert response["OriginalStatusCode"] == 400
    assert response["OriginalMessage"]
    assert "b" in response["OriginalMessage"]


def test_model_error_for_malformed_json(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        rt.invoke_endpoint(EndpointName=ROUTING, Body=b"{not json", ContentType="application/json")
    code, _, status = error_of(excinfo)
    assert (code, status) == ("ModelError", 424)
    assert excinfo.value.response["OriginalStatusCode"] == 400


def _padded_json(size: int) -> bytes:
    body = split_json([[1.0, 2.0]] * 1000)
    return body + b" " * (size - len(body))  # whitespace after the value is still JSON


def test_invoke_payload_of_exactly_6_mib_is_accepted(rt: Any, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=_padded_json(6 * 1024 * 1024),
        ContentType="application/json",
        TargetVariant="variant-a",
    )
    assert len(predictions(response["Body"].read())) == 1000


def test_invoke_payload_over_6_mib_is_validation_error(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        rt.invoke_endpoint(
            EndpointName=ROUTING,
            Body=_padded_json(6 * 1024 * 1024 + 1),
            ContentType="application/json",
        )
    code, _, status = error_of(excinfo)
    assert code == "ValidationError"
    assert status in (400, 413)


# --------------------------------------------------------------------------------- SigV4


def _call(platform: Platform, service: str, **overrides: Any) -> None:
    client = platform.client(service, **overrides)
    if service == "sagemaker":
        client.list_models()
    else:
        client.invoke_endpoint(
            EndpointName=ROUTING, Body=split_json(PROBE), ContentType="application/json"
        )


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_unsigned_request_is_refused(platform: Platform, routing: Created, service: str) -> None:
    unsigned = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service, config=unsigned)
    code, _, status = error_of(excinfo)
    assert status == 403
    assert code in ("MissingAuthenticationTokenException", "MissingAuthenticationToken")


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_wrong_secret_is_invalid_signature(
    platform: Platform, routing: Created, service: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service, aws_secret_access_key="not-the-secret-" + "x" * 25)
    code, _, status = error_of(excinfo)
    assert (code, status) == ("InvalidSignatureException", 403)


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_unknown_access_key_is_unrecognized_client(
    platform: Platform, routing: Created, service: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service, aws_access_key_id="AKIAUNKNOWNKEY000000")
    code, _, status = error_of(excinfo)
    assert (code, status) == ("UnrecognizedClientException", 403)


@pytest.mark.parametrize("skew_minutes", [-20, 20])
@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_request_signed_with_clock_skew_over_15_minutes_is_refused(
    platform: Platform,
    routing: Created,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    skew_minutes: int,
) -> None:
    import botocore.auth

    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(
        botocore.auth,
        "get_current_datetime",
        lambda *a, **kw: real(*a, **kw) + timedelta(minutes=skew_minutes),
    )
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service)
    code, _, status = error_of(excinfo)
    assert status == 403
    assert code == "InvalidSignatureException"


# -------------------------------------------------------------------------------------- tags


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


# --------------------------------------------------------------------------------- updates


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
    assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointConfigName"] == "cfg-b"
    with Load(platform, models, ROLLING) as load:
        load.wait_answers(5)
        sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-broken")
        assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointStatus"] == "Updating"
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


# ---------------------------------------------------------------------- crashes and restarts


def test_sigkill_of_an_instance_under_load(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    threads = 4
    if describe_variants(sm, ROLLING)["main"]["DesiredInstanceCount"] < 2:  # run alone
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ROLLING,
            DesiredWeightsAndCapacities=[{"VariantName": "main", "DesiredInstanceCount": 2}],
        )
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    procs = wait_for(
        lambda: [p] if len(p := endpoint_processes(platform.home, ROLLING)) == 2 else None,
        20,
        what="two instances",
    )
    victim = procs[0][0].pid

    def recovered() -> bool:
        v = describe_variants(sm, ROLLING)["main"]
        pids = {p.pid for p in endpoint_processes(platform.home, ROLLING)}
        return (
            sm.describe_endpoint(EndpointName=ROLLING)["EndpointStatus"] == "InService"
            and v["CurrentInstanceCount"] == v["DesiredInstanceCount"] == 2
            and len(pids) == 2
            and victim not in pids
        )

    with Load(platform, models, ROLLING, threads=threads) as load:
        load.wait_answers(40)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(recovered, 30, 0.25, "the killed instance to be replaced")
        replaced_in = time.monotonic() - killed_at
        load.wait_answers(40)
    assert not pid_alive(victim)
    # only requests in flight on the killed instance may fail: at most one per thread
    assert len(load.errors) <= threads, load.errors
    assert all(set(a) == {"B"} for a in load.answers)
    print(f"\ninstance replaced in {replaced_in:.1f} s; failures {len(load.errors)}")
    assert invoke(rt, ROLLING) == ("main", models.b.predict(PROBE))


def test_update_endpoint_retaining_variant_properties(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    """RetainAllVariantProperties keeps the running weights and counts, except the excluded."""
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ROLLING,
        DesiredWeightsAndCapacities=[
            {"VariantName": "main", "DesiredWeight": 2.5, "DesiredInstanceCount": 2}
        ],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    sm.update_endpoint(
        EndpointName=ROLLING,
        EndpointConfigName="cfg-a",  # weight 1.0, one instance
        RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    d = sm.describe_endpoint(EndpointName=ROLLING)
    assert d["EndpointConfigName"] == "cfg-a"
    assert "FailureReason" not in d
    v = d["ProductionVariants"][0]
    assert (v["DesiredWeight"], v["CurrentWeight"]) == (1.0, 1.0)
    assert (v["DesiredInstanceCount"], v["CurrentInstanceCount"]) == (2, 2)
    wait_for(lambda: len(endpoint_processes(platform.home, ROLLING)) == 2, 40, what="2 instances")
    assert invoke(rt, ROLLING) == ("main", models.a.predict(PROBE))


def test_model_not_ready_while_the_only_instance_is_down(
    platform: Platform, sm: Any, rt: Any, models: Models, routing: Created
) -> None:
    """The only instance of variant-b dies: a call made after its death cannot reach a model,
    so it is ModelNotReadyException (429), not a ModelError; variant-a keeps serving; the
    instance is replaced."""
    [victim] = [
        p
        for p in endpoint_processes(platform.home, ROUTING)
        if p.instance_dir.name.startswith(f"{ROUTING}-variant-b-")
    ]

    def replaced() -> bool:
        v = describe_variants(sm, ROUTING)["variant-b"]
        procs = endpoint_processes(platform.home, ROUTING)
        return v["CurrentInstanceCount"] == 1 and len(procs) == 2 and victim not in procs

    os.kill(victim.pid, signal.SIGKILL)
    try:
        wait_for(lambda: not pid_alive(victim.pid), 5, 0.01, "the instance to die")
        with pytest.raises(ClientError) as excinfo:
            invoke(rt, ROUTING, TargetVariant="variant-b")
        code, message, status = error_of(excinfo)
        if platform.backend.endswith("-docker") and code == "ModelError":
            # Docker's port proxy still holds the router's keep-alive connection to a container
            # that has just died, and closes it once the request is on it: from the outside
            # that is a model that dropped the connection (docs/containers.md, Stop, crashes).
            assert "connection to the model container was lost" in message, message
        else:
            assert (code, status) == ("ModelNotReadyException", 429), message
        assert invoke(rt, ROUTING, TargetVariant="variant-a") == (
            "variant-a",
            models.a.predict(PROBE),
        )
    finally:  # the later tests need variant-b back
        wait_for(replaced, 30, 0.25, "variant-b's instance to be replaced")
    assert invoke(rt, ROUTING, TargetVariant="variant-b") == ("variant-b", models.b.predict(PROBE))


def test_instance_records_match_running_processes(
    platform: Platform, routing: Created, rolling: Created
) -> None:
    """Each running instance has its record (instance.json, with its pid) in its directory."""
    procs = serve_processes(platform.home)
    assert len(procs) >= 4
    for proc in procs:
        record = json.loads((proc.instance_dir / "instance.json").read_text())
        assert record["pid"] == proc.pid


def test_credentials_file_is_private(platform: Platform) -> None:
    path = platform.home / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    creds = platform.credentials()
    assert creds["access_key_id"]
    assert len(creds["secret_access_key"]) >= 20


def test_second_platform_refuses_clearly(platform: Platform, tmp_path: Path) -> None:
    def up(home: Path, port: int) -> tuple[int, str]:
        args = [str(BIN / "pier"), "up", "--home", str(home), "--port", str(port), "--no-mlflow"]
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=90, env=platform_env(), check=False
        )
        return done.returncode, done.stdout + done.stderr

    code, output = up(tmp_path / "other-home", platform.port)  # the port is taken
    assert code != 0
    assert f":{platform.port}" in output
    code, output = up(platform.home, free_port())  # the home is in use
    assert code != 0
    assert "already running" in output
    assert httpx.get(platform.url + "/ping", timeout=5).status_code == 200  # still up


def test_unmodified_boto3_configured_by_pier_env(
    platform: Platform, models: Models, routing: Created, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval $(pier env)`, then boto3 code that names no endpoint, key or region."""
    import boto3

    done = subprocess.run(
        [str(BIN / "pier"), "env", "--home", str(platform.home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=platform_env(),
        check=True,
    )
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in done.stdout.splitlines()
        if line.startswith("export ")
    )
    assert exported["AWS_ENDPOINT_URL_SAGEMAKER"] == platform.url
    assert exported["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == platform.url
    assert exported["AWS_DEFAULT_REGION"] == REGION
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    session = boto3.Session()
    names = [e["EndpointName"] for e in session.client("sagemaker").list_endpoints()["Endpoints"]]
    assert ROUTING in names
    response = session.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(PROBE),
        ContentType="application/json",
        TargetVariant="variant-a",
    )
    assert predictions(response["Body"].read()) == models.a.predict(PROBE)


def _back_in_service(sm: Any, name: str) -> bool:
    d = sm.describe_endpoint(EndpointName=name)
    counts = [
        (v["CurrentInstanceCount"], v["DesiredInstanceCount"]) for v in d["ProductionVariants"]
    ]
    return d["EndpointStatus"] == "InService" and all(c == w for c, w in counts)


def _desired_instances(sm: Any, name: str) -> int:
    return sum(v["DesiredInstanceCount"] for v in describe_variants(sm, name).values())


def test_platform_restart_adopts_instances_and_replaces_a_dead_one(
    platform: Platform, sm: Any, rt: Any, models: Models, routing: Created, rolling: Created
) -> None:
    """SIGKILL the platform (its instances live on), SIGKILL one of ROLLING's instances while
    no platform runs, start a new `pier up` on the same home and port: both endpoints come
    back InService with exactly the desired instances; nothing is duplicated or leaked."""
    desired = {name: _desired_instances(sm, name) for name in (ROUTING, ROLLING)}
    assert desired == {ROUTING: 2, ROLLING: 2}
    before = {name: {p.pid for p in endpoint_processes(platform.home, name)} for name in desired}
    assert {name: len(pids) for name, pids in before.items()} == desired
    answer = invoke(rt, ROLLING)
    platform.kill()
    assert all(pid_alive(pid) for pids in before.values() for pid in pids)
    victim = min(before[ROLLING])
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), 5, 0.01, "the instance to die")
    platform.start()

    def back(name: str) -> bool:
        pids = {p.pid for p in endpoint_processes(platform.home, name)}
        return _back_in_service(sm, name) and len(pids) == desired[name] and victim not in pids

    for name in desired:
        wait_for(lambda name=name: back(name), 60, 0.25, f"{name} back in service")
    assert invoke(rt, ROUTING, TargetVariant="variant-a") == ("variant-a", models.a.predict(PROBE))
    assert invoke(rt, ROUTING, TargetVariant="variant-b") == ("variant-b", models.b.predict(PROBE))
    for _ in range(10):
        assert invoke(rt, ROLLING) == answer
    time.sleep(2)  # a few reconcile passes (one a second): nothing is launched twice
    for name, want in desired.items():
        now = {p.pid for p in endpoint_processes(platform.home, name)}
        assert len(now) == want, (name, before[name], now)
        leaked = {pid for pid in before[name] - now if pid_alive(pid)}
        assert leaked == set()
        assert _back_in_service(sm, name)


def test_restart_during_a_create_and_an_update_neither_duplicates_nor_leaks(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    """SIGKILL the platform while PHOENIX is Creating and ROLLING is Updating (their new
    instances already started): the new platform finishes both, with exactly the desired
    instances, and nothing of the interrupted work survives."""
    assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointConfigName"] == "cfg-a"
    old = {p.pid for p in endpoint_processes(platform.home, ROLLING)}
    sm.create_endpoint(EndpointName=PHOENIX, EndpointConfigName="cfg-a")
    sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-b")  # one instance

    def both_launching() -> bool:
        return (
            len(endpoint_processes(platform.home, ROLLING)) > len(old)
            and len(endpoint_processes(platform.home, PHOENIX)) >= 1
        )

    wait_for(both_launching, 20, 0.01, "the new instances to start")
    platform.kill()
    platform.start()

    def done() -> bool:
        d = sm.describe_endpoint(EndpointName=ROLLING)
        return (
            d["EndpointConfigName"] == "cfg-b"
            and _back_in_service(sm, ROLLING)
            and _back_in_service(sm, PHOENIX)
        )

    wait_for(done, 60, 0.25, "the create and the update to finish after the restart")
    for name in (ROLLING, PHOENIX):
        wait_for(lambda name=name: len(endpoint_processes(platform.home, name)) == 1, 40)
    assert invoke(rt, ROLLING) == ("main", models.b.predict(PROBE))
    assert invoke(rt, PHOENIX) == ("main", models.a.predict(PROBE))
    time.sleep(2)  # a few reconcile passes
    assert len(endpoint_processes(platform.home, ROLLING)) == 1
    assert len(endpoint_processes(platform.home, PHOENIX)) == 1
    assert [pid for pid in old if pid_alive(pid)] == []


def test_delete_endpoint_while_updating(platform: Platform, sm: Any) -> None:
    """PHOENIX (InService on cfg-a after the previous test) is deleted mid-update: both
    fleets stop."""
    [old] = endpoint_processes(platform.home, PHOENIX)
    sm.update_endpoint(EndpointName=PHOENIX, EndpointConfigName="cfg-b")
    wait_for(
        lambda: len(endpoint_processes(platform.home, PHOENIX)) == 2,
        20,
        0.01,
        "the new fleet's instance to start",
    )
    sm.delete_endpoint(EndpointName=PHOENIX)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=PHOENIX, WaiterConfig=SHORT)
    wait_for(lambda: not endpoint_processes(platform.home, PHOENIX), 15, what="no instance left")
    time.sleep(1)
    assert endpoint_processes(platform.home, PHOENIX) == []
    assert not pid_alive(old.pid)


def test_secret_never_reaches_a_log(platform: Platform) -> None:
    secret = platform.credentials()["secret_access_key"]
    files = [
        *platform.logs,
        *(platform.home / "logs").glob("*"),
        *(platform.home / "instances").rglob("serve.log"),
    ]
    assert len(files) >= 3
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
