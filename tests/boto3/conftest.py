"""SageMaker hosting through unmodified boto3, against a real `pier up` process.

Every test talks to pier the way users' code does: `boto3.client("sagemaker")` and
`boto3.client("sagemaker-runtime")` with an endpoint_url and the platform's keys (clients make
no retries, so a failed request is seen failing). The whole package runs twice, on SQLite and
on a fresh database of the local PostgreSQL, against one platform each (the fixtures below are
package-scoped, and pytest runs every test of one parameter before the other's); at the end the
platform gets SIGTERM and must exit 0 leaving no `pier serve` behind.

Endpoints are expensive (each instance is a `pier serve` process), so the package creates few:
- ROUTING: two variants (model A weight 0.8, model B weight 0.2), for the read-only checks;
- ROLLING: one variant, updated to model B, to a broken model, to two instances, back to model
  A retaining its capacity; one of its instances is SIGKILLed under load;
- LIFECYCLE, HASTY, MISSING, BROKEN: short-lived, deleted by their tests;
- the platform itself is then SIGKILLed and restarted on the same home and port, twice (the
  second time while PHOENIX is Creating and ROLLING Updating).
The files run in lifecycle order (LIFECYCLE below), each in file order; the later ROLLING,
ROUTING and PHOENIX tests build on the earlier. Each file also passes when run alone: its
first test of ROLLING or PHOENIX finds them as the fixtures or its own earlier tests left them."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from pier.hosting import model_env
from pier.hosting.docker_engine import connect
from pier.hosting.images import serving_image
from tests.boto3.hosting import (
    GREETING,
    ROLLING,
    ROUTING,
    Created,
    Models,
    create_and_wait,
    variant,
)
from tests.boto3.platform_fixtures import (
    BACKENDS,
    BASE_IMAGE,
    Platform,
    free_port,
    kill_leftovers,
    postgres_database,
    save_broken_model,
    save_linear_model,
    serve_processes,
)


@pytest.fixture(scope="package")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    return Models(
        a=save_linear_model(root / "model-a", 1.0, 2.0, 10.0),
        b=save_linear_model(root / "model-b", -3.0, 0.5, 100.0),
        broken=save_broken_model(root / "broken"),
        missing=root / "does-not-exist",
    )


@pytest.fixture(
    scope="package",
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


@pytest.fixture(scope="package")
def sm(platform: Platform) -> Any:
    return platform.client("sagemaker")


@pytest.fixture(scope="package")
def rt(platform: Platform) -> Any:
    return platform.client("sagemaker-runtime")


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def routing(sm: Any, resources: None) -> Created:
    return create_and_wait(sm, ROUTING, "cfg-ab")


@pytest.fixture(scope="package")
def rolling(sm: Any, resources: None) -> Created:
    return create_and_wait(sm, ROLLING, "cfg-a")


# The test files, in the order of an endpoint's life. pytest would run them in alphabetical
# order, and crashes_and_restarts (which restarts the platform and leaves ROLLING on model B)
# would then run before the updates that expect ROLLING as created. A new file goes in here
# (LIFECYCLE.index fails loudly on a file it does not name).
LIFECYCLE = (
    "test_models.py",
    "test_endpoint_configs.py",
    "test_endpoints.py",
    "test_invocations.py",
    "test_tags.py",
    "test_updates.py",
    "test_guardrails.py",
    "test_crashes_and_restarts.py",
)


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by the platform parameter
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put this package's tests in (platform parameter, LIFECYCLE) order, each file's tests in
    their order, in the places the package's tests hold in the session; leave the others be."""
    here = Path(__file__).parent
    places = [i for i, item in enumerate(items) if item.path.parent == here]

    def key(item: pytest.Item) -> tuple[int, int]:
        callspec = getattr(item, "callspec", None)
        parameter = callspec.indices.get("platform", -1) if callspec else -1
        return parameter, LIFECYCLE.index(item.path.name)

    ordered = sorted((items[i] for i in places), key=key)  # stable: file order within a file
    for place, item in zip(places, ordered, strict=True):
        items[place] = item
