"""`pier build` as a user runs it: a real `pier` process, a real Docker Engine, the image run
with `docker run` semantics (published on 127.0.0.1 only), compared with `pier serve` on the
same model; a registry URI through MLflow's own store; and each kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_serve_process import BIN, pier_serve
from tests.hosting.image_fixtures import (
    BASE_IMAGE,
    ROWS,
    docker_client,  # noqa: F401  # a fixture
    env_images,
    image_home,  # noqa: F401  # a fixture
    local_predictions,
    remove_images,
    running,
    save_pinned_model,
    split_json,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker]
TAG = "pier-test-cli"


def pier_build(*args: str, home: Path, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [str(BIN / "pier"), "build", *args],
        env={**os.environ, "PIER_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pinned_model(tmp_path_factory.mktemp("cli-model") / "m", 1.5, -2.0, 0.5)


@pytest.fixture(scope="session")
def built(docker_client: Any, image_home: Path, model: Path) -> Iterator[dict[str, Any]]:  # noqa: F811
    """`pier build` of the model (baked) and of its environment (--no-model)."""
    before = env_images(docker_client)
    out: dict[str, Any] = {}
    for name, extra in (("baked", []), ("bare", ["--no-model"])):
        result = pier_build(
            str(model), "-t", f"{TAG}:{name}", "--base-image", BASE_IMAGE, *extra, home=image_home
        )
        assert result.returncode == 0, result.stderr[-4000:]
        out[name] = result
    yield out
    remove_images(docker_client, f"{TAG}:baked", f"{TAG}:bare", f"{TAG}:registry")
    remove_images(docker_client, *(env_images(docker_client) - before))


def test_build_reports_tag_size_and_how_to_run(built: dict[str, Any]) -> None:
    err = built["baked"].stderr
    assert f"built {TAG}:baked" in err
    assert " MB) in " in err
    assert f"docker run --rm -p 127.0.0.1:8080:8080 {TAG}:baked serve" in err
    assert "Step 2/3 : COPY model /opt/ml/model" in err  # the build's own lines shown
    assert "Traceback" not in err


def test_built_image_answers_like_pier_serve(
    docker_client: Any,  # noqa: F811
    built: dict[str, Any],
    model: Path,
    tmp_path: Path,
) -> None:
    with running(docker_client, f"{TAG}:baked", command=["serve"]) as container:
        from_image = httpx.post(
            container.url + "/invocations",
            content=split_json(ROWS),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    server = pier_serve(model, tmp_path)
    try:
        server.first_ping_statuses()
        from_serve = httpx.post(
            server.url + "/invocations",
            content=split_json(ROWS),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    finally:
        assert server.stop() == 0
    assert from_image.status_code == from_serve.status_code == 200
    assert json.loads(from_image.content) == json.loads(from_serve.content)
    assert json.loads(from_image.content)["predictions"] == local_predictions(model)


def test_no_model_image_serves_the_mounted_model(
    docker_client: Any,  # noqa: F811
    built: dict[str, Any],
    model: Path,
) -> None:
    image = docker_client.images.get(f"{TAG}:bare")
    assert image.labels["org.pier.environment-of"] == str(model)
    assert "org.pier.model.uri" not in image.labels
    volumes = {str(model): {"bind": "/opt/ml/model", "mode": "ro"}}
    with running(docker_client, f"{TAG}:bare", command=["serve"], volumes=volumes) as container:
        assert container.invoke() == local_predictions(model)


def test_registry_uri_labels_version_and_run(
    docker_client: Any,  # noqa: F811
    built: dict[str, Any],
    image_home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """models:/name@alias: downloaded through MLflow (a SQLite tracking store), labelled with
    the registry version the alias points at and the run that logged it."""
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    script = tmp_path / "register.py"
    script.write_text(
        "import mlflow, sys\n"
        "from tests.hosting.image_fixtures import log_pinned_model\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "with mlflow.start_run() as run:\n"
        "    log_pinned_model('pier-build-e2e', 1.5, -2.0, 0.5)\n"
        "c = mlflow.MlflowClient()\n"
        "c.set_registered_model_alias('pier-build-e2e', 'champion', '1')\n"
        "print(run.info.run_id)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script), tracking],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = out.stdout.split()[-1]
    result = pier_build(
        "models:/pier-build-e2e@champion",
        "-t",
        f"{TAG}:registry",
        "--base-image",
        BASE_IMAGE,
        home=image_home,
        env={"MLFLOW_TRACKING_URI": tracking},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    labels = docker_client.images.get(f"{TAG}:registry").labels
    assert labels["org.pier.model.uri"] == "models:/pier-build-e2e@champion"
    assert labels["org.pier.model.version"] == "1"
    assert labels["org.pier.model.run-id"] == run_id


@pytest.mark.parametrize(
    ("case", "code", "expected"),
    [
        ("bad-tag", 2, "--tag: 'Not A Tag' is not a valid image name"),
        ("no-mlmodel", 1, "is not an MLflow model"),
        ("missing-dir", 1, "does not exist"),
        ("missing-base", 1, "Base image 'pier-test-missing:nope' is not on this Docker Engine"),
        ("no-engine", 1, "No Docker Engine answers"),
    ],
)
def test_bad_input_is_a_clear_error(
    case: str,
    code: int,
    expected: str,
    model: Path,
    tmp_path: Path,
    image_home: Path,  # noqa: F811
) -> None:
    args = [str(model), "-t", f"{TAG}:{case}", "--base-image", BASE_IMAGE]
    env: dict[str, str] = {}
    if case == "bad-tag":
        args[2] = "Not A Tag"
    elif case == "no-mlmodel":
        (tmp_path / "empty").mkdir()
        args[0] = str(tmp_path / "empty")
    elif case == "missing-dir":
        args[0] = str(tmp_path / "nowhere")
    elif case == "missing-base":
        args[4] = "pier-test-missing:nope"
    elif case == "no-engine":
        env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    result = pier_build(*args, home=image_home, env=env)
    assert result.returncode == code, result.stderr
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
