"""Shared by the image tests (tests/hosting/test_images.py, tests/e2e/test_build_cli.py): a
Docker client that fails (never skips) without an engine, a model whose requirements pin this
interpreter's versions (so the image runs the same packages and predicts the same numbers), a
pier home shared by the session (one wheelhouse, one environment image), and containers run
on 127.0.0.1 only and removed afterwards."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pier.hosting import docker_engine

BASE_IMAGE = os.environ.get("PIER_BASE_IMAGE", "pier-base:bookworm")
TEST_PREFIX = "pier-test-"
ROWS = [[1.0, 2.0], [3.0, 4.0], [-1.5, 0.25]]
PINNED = ("mlflow", "scikit-learn", "cloudpickle", "numpy", "pandas")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The engine's client: DockerUnavailable fails the test that needs it."""
    client = docker_engine.connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def image_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PIER_HOME for the session's image tests: its cache holds the wheelhouse and the
    base image's facts, so the environment is gathered and built once."""
    home = tmp_path_factory.getbasetemp() / "pier-image-home"
    home.mkdir(exist_ok=True)
    return home


def cache_dir(home: Path) -> Path:
    return home / "cache" / "images"


def _pinned(coef_a: float, coef_b: float, intercept: float) -> tuple[Any, dict[str, Any]]:
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 5.0], "b": [1.0, 0.0, 1.0, 2.0, -1.0]})
    y = X["a"] * coef_a + X["b"] * coef_b + intercept
    model = LinearRegression().fit(X, y)
    return model, {
        "signature": infer_signature(X, model.predict(X)),
        "serialization_format": "cloudpickle",
        "pip_requirements": [f"{name}=={metadata.version(name)}" for name in PINNED],
    }


def save_pinned_model(path: Path, coef_a: float, coef_b: float, intercept: float) -> Path:
    """y = a*coef_a + b*coef_b + intercept as an MLflow sklearn model in `path`, whose
    requirements pin this interpreter's versions."""
    import mlflow.sklearn

    model, options = _pinned(coef_a, coef_b, intercept)
    mlflow.sklearn.save_model(model, str(path), **options)
    return path


def log_pinned_model(registered: str, coef_a: float, coef_b: float, intercept: float) -> None:
    """The same model logged into the active run and registered as `registered`."""
    import mlflow.sklearn

    model, options = _pinned(coef_a, coef_b, intercept)
    mlflow.sklearn.log_model(model, name="model", registered_model_name=registered, **options)


def local_predictions(model_dir: Path) -> list[float]:
    """What MLflow in this interpreter predicts for ROWS."""
    import mlflow.pyfunc

    frame = pd.DataFrame(ROWS, columns=["a", "b"])
    return [float(v) for v in mlflow.pyfunc.load_model(str(model_dir)).predict(frame)]


def split_json(rows: list[list[float]]) -> bytes:
    import json

    return json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}}).encode()


@dataclass
class Running:
    """A container serving on 127.0.0.1:port; `first_ping_s`: start to the first /ping 200."""

    container: Any
    url: str
    first_ping_s: float

    def invoke(self, rows: list[list[float]] = ROWS) -> list[float]:
        response = httpx.post(
            self.url + "/invocations",
            content=split_json(rows),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return [float(p) for p in response.json()["predictions"]]


@contextlib.contextmanager
def running(
    client: Any,
    image: str,
    *,
    command: list[str] | None = None,
    environment: dict[str, str] | None = None,
    volumes: dict[str, dict[str, str]] | None = None,
    port: int = 8080,
    timeout: float = 60,
) -> Iterator[Running]:
    """Run `image` detached, published on 127.0.0.1 (a free port), until /ping answers 200;
    removed afterwards whatever happens."""
    started = time.monotonic()
    container = client.containers.run(
        image,
        command,
        detach=True,
        environment=environment or {},
        volumes=volumes or {},
        ports={f"{port}/tcp": ("127.0.0.1", None)},
    )
    try:
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{host_port}"
        deadline = started + timeout
        while True:
            try:
                if httpx.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                logs = container.logs().decode(errors="replace")[-3000:]
                raise AssertionError(f"{image} not healthy ({container.status}): {logs}")
            time.sleep(0.05)
        yield Running(container, url, time.monotonic() - started)
    finally:
        container.remove(force=True)


def env_images(client: Any) -> set[str]:
    """The engine's pier-env:<key> tags: what a fixture built is what is new at its end."""
    return {t for image in client.images.list(name="pier-env") for t in image.tags}


def remove_images(client: Any, *tags: str) -> None:
    """Remove the images tagged `tags` that exist (never the base image)."""
    from docker.errors import ImageNotFound

    for tag in tags:
        if tag == BASE_IMAGE:
            continue
        with contextlib.suppress(ImageNotFound):
            client.images.remove(tag, force=True)
