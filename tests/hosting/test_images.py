"""pier.hosting.images on a real Docker Engine: the environment image with a mounted model, the
model image on top of it (only the model layer new per version), labels, the wheelhouse's
packages and nothing else in the image, a non-root user, and bad input."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pier.errors import ValidationException
from pier.hosting import images, model_env, wheelhouse
from pier.hosting.model_env import ModelEnvironment
from tests.hosting.image_fixtures import (
    BASE_IMAGE,
    cache_dir,
    docker_client,  # noqa: F401  # a fixture
    env_images,
    image_home,  # noqa: F401  # a fixture
    local_predictions,
    remove_images,
    running,
    save_pinned_model,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker]
TAG = "pier-test-images"
TRICKY = 'a "quoted" $HOME \\ value'


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("image-models")
    return {
        "v1": save_pinned_model(root / "v1", 2.0, 3.0, 1.0),
        "v2": save_pinned_model(root / "v2", -1.0, 0.5, 4.0),
    }


@pytest.fixture(scope="session")
def env_image(docker_client: Any, image_home: Path, models: dict[str, Path]) -> Iterator[str]:  # noqa: F811
    """The environment image of the models (built here unless the engine has it), removed
    at the end if built here."""
    env = model_env.read(models["v1"])
    base = images.base_image(docker_client, BASE_IMAGE, cache_dir(image_home))
    tag = f"{images.ENV_REPOSITORY}:{images.environment_key(env, base)}"
    before = env_images(docker_client)
    built = images.serving_image(env, base_image=BASE_IMAGE, cache_dir=cache_dir(image_home))
    assert built == tag
    yield tag
    remove_images(docker_client, f"{TAG}:v1", f"{TAG}:v2", f"{TAG}:bare")
    remove_images(docker_client, *(env_images(docker_client) - before))


@pytest.fixture(scope="session")
def model_images(
    docker_client: Any,  # noqa: F811
    image_home: Path,  # noqa: F811
    models: dict[str, Path],
    env_image: str,
) -> dict[str, Any]:
    """v1 then v2 built on the environment image; each build's progress lines kept."""
    out: dict[str, Any] = {}
    for version in ("v1", "v2"):
        lines: list[str] = []
        built = images.build_image(
            models[version],
            model_env.read(models[version]),
            f"{TAG}:{version}",
            base_image=BASE_IMAGE,
            labels={"org.pier.model.uri": str(models[version]), "org.pier.test": TRICKY},
            progress=lines.append,
            cache_dir=cache_dir(image_home),
        )
        out[version] = (built, lines)
    return out


def _layers(client: Any, tag: str) -> list[str]:
    return list(client.images.get(tag).attrs["RootFS"]["Layers"])


# ----------------------------------------------------------------------------- pure parts
def test_image_requirements_install_mlflow_skinny_at_the_models_version() -> None:
    env = ModelEnvironment("3.11.7", ("mlflow==3.1.0", "scikit-learn==1.5.2", "pandas<3"))
    reqs = wheelhouse.image_requirements(env)
    assert reqs[:3] == ("mlflow-skinny==3.1.0", "scikit-learn==1.5.2", "pandas<3")
    assert "numpy" in reqs
    assert "pandas" not in reqs
    assert any(r.startswith("uvicorn") for r in reqs)
    extras = ModelEnvironment("3.11.7", ("mlflow[gateway]==3.1.0",))
    assert wheelhouse.image_requirements(extras)[0] == "mlflow[gateway]==3.1.0"


def test_target_platform_tags_stop_at_the_images_glibc() -> None:
    tags = wheelhouse.Target("3.11.2", "x86_64", "2.36").platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_37_x86_64" not in tags
    assert "manylinux2014_x86_64" in tags
    assert tags[-1] == "linux_x86_64"


@pytest.mark.parametrize("tag", ["Upper:1", "has space", "a:b:c", ":1", "x:" + "t" * 200])
def test_bad_tags_are_refused(tag: str) -> None:
    with pytest.raises(ValidationException, match="not a valid image name"):
        images.check_tag(tag)


def test_good_tags_pass() -> None:
    for tag in ("m", "my-model:1", "registry.local:5000/team/model:v1.2", "a_b/c"):
        assert images.check_tag(tag) == tag


def test_label_names_are_checked() -> None:
    with pytest.raises(ValidationException, match="not a valid label name"):
        images.label_instruction({"bad name": "x"})


# ---------------------------------------------------------------- the environment image
def test_environment_image_serves_a_mounted_model_on_the_sagemaker_port(
    docker_client: Any,  # noqa: F811
    env_image: str,
    models: dict[str, Path],
) -> None:
    with running(
        docker_client,
        env_image,
        command=["serve"],
        environment={"SAGEMAKER_BIND_TO_PORT": "9090"},
        volumes={str(models["v1"]): {"bind": "/opt/ml/model", "mode": "ro"}},
        port=9090,
    ) as server:
        assert server.invoke() == local_predictions(models["v1"])


def test_environment_image_runs_as_non_root_without_wheels_or_pip(
    docker_client: Any,  # noqa: F811
    env_image: str,
) -> None:
    config = docker_client.images.get(env_image).attrs["Config"]
    assert config["User"] == images.USER
    assert config["Entrypoint"] == [f"{images.ENV_DIR}/bin/serve"]
    script = (
        "import importlib.util as u, os, sys; "
        "print(os.getuid(), u.find_spec('pip') is None, os.path.exists('/tmp/wheelhouse'))"
    )
    out = docker_client.containers.run(
        env_image, ["-c", script], entrypoint="python", remove=True
    ).decode()
    uid, no_pip, wheels_left = out.split()
    assert int(uid) != 0
    assert no_pip == "True"
    assert wheels_left == "False"


def test_environment_image_holds_exactly_the_wheelhouse(
    docker_client: Any,  # noqa: F811
    env_image: str,
    image_home: Path,  # noqa: F811
) -> None:
    """The same key installs the same files: every distribution in the image is a wheel of the
    manifest, at the manifest's version, and the other way round."""
    houses = [
        p for p in (cache_dir(image_home) / "wheelhouses").iterdir() if not p.name.startswith(".")
    ]
    manifests = [set((h / wheelhouse.MANIFEST).read_text().split()) for h in houses]
    script = (
        "import importlib.metadata as m, re; "
        "print(' '.join(sorted(re.sub(r'[-_.]+', '_', d.metadata['Name']).lower() + '==' "
        "+ d.version for d in m.distributions())))"
    )
    out = docker_client.containers.run(
        env_image, ["-c", script], entrypoint="python", remove=True
    ).decode()
    installed = set(out.split())
    wheels = {
        "{}=={}".format(*name.split("-")[:2]).lower() for manifest in manifests for name in manifest
    }
    assert installed <= wheels
    assert any(i.startswith("mlflow_skinny==") for i in installed)
    assert not any(i.startswith("mlflow==") for i in installed)
    assert len(installed) == max(len(m) for m in manifests)


def test_a_second_request_for_the_environment_image_is_cached(
    env_image: str,
    image_home: Path,  # noqa: F811
    models: dict[str, Path],
) -> None:
    lines: list[str] = []
    tag = images.serving_image(
        model_env.read(models["v2"]),
        base_image=BASE_IMAGE,
        cache_dir=cache_dir(image_home),
        progress=lines.append,
    )
    assert tag == env_image
    assert lines == [f"environment image {env_image}: cached"]


# ----------------------------------------------------------------------- the model image
def test_a_new_model_version_adds_only_its_model_layer(
    docker_client: Any,  # noqa: F811
    env_image: str,
    model_images: dict[str, Any],
) -> None:
    env_layers = _layers(docker_client, env_image)
    v1, v2 = _layers(docker_client, f"{TAG}:v1"), _layers(docker_client, f"{TAG}:v2")
    assert v1[:-1] == env_layers
    assert v2[:-1] == env_layers
    assert len(v1) == len(env_layers) + 1
    assert v1[-1] != v2[-1]
    _built, lines = model_images["v2"]
    assert f"environment image {env_image}: cached" in lines
    assert not any("pip" in line.lower() for line in lines)


def test_rebuilding_the_same_model_uses_the_cache(
    docker_client: Any,  # noqa: F811
    image_home: Path,  # noqa: F811
    models: dict[str, Path],
    model_images: dict[str, Any],
) -> None:
    first, _lines = model_images["v1"]
    lines: list[str] = []
    again = images.build_image(
        models["v1"],
        model_env.read(models["v1"]),
        f"{TAG}:v1",
        base_image=BASE_IMAGE,
        labels={"org.pier.model.uri": str(models["v1"]), "org.pier.test": TRICKY},
        progress=lines.append,
        cache_dir=cache_dir(image_home),
    )
    assert again.id == first.id
    copy = lines.index(f"Step 2/3 : COPY model {images.MODEL_DIR}")
    assert lines[copy + 1].strip() == "---> Using cache"


def test_model_image_labels_and_size(
    docker_client: Any,  # noqa: F811
    models: dict[str, Path],
    model_images: dict[str, Any],
) -> None:
    built, _lines = model_images["v1"]
    image = docker_client.images.get(built.tag)
    assert built.id == image.id
    assert built.size == image.attrs["Size"] > 0
    labels = image.labels
    assert labels["org.pier.model.uri"] == str(models["v1"])
    assert labels["org.pier.test"] == TRICKY
    assert labels["org.pier.python"].startswith("3.11")


def test_model_image_serves_its_model_with_or_without_the_serve_argument(
    docker_client: Any,  # noqa: F811
    models: dict[str, Path],
    model_images: dict[str, Any],
) -> None:
    for command in (["serve"], None):
        with running(docker_client, f"{TAG}:v2", command=command) as server:
            assert server.invoke() == local_predictions(models["v2"])


# --------------------------------------------------------------------------------- errors
def test_a_model_logged_with_another_python_is_refused_before_any_build(
    docker_client: Any,  # noqa: F811
    image_home: Path,  # noqa: F811
    env_image: str,
) -> None:
    env = ModelEnvironment("3.9.18", ("scikit-learn==1.5.2",))
    with pytest.raises(ValidationException) as info:
        images.serving_image(env, base_image=BASE_IMAGE, cache_dir=cache_dir(image_home))
    message = info.value.message
    assert "Python 3.9.18" in message
    assert BASE_IMAGE in message
    assert "--base-image python:3.9-slim" in message


def test_a_missing_base_image_says_how_to_get_one(
    docker_client: Any,  # noqa: F811
    image_home: Path,  # noqa: F811
) -> None:
    env = ModelEnvironment("3.11.7", ())
    with pytest.raises(ValidationException) as info:
        images.serving_image(
            env, base_image="pier-test-missing:nope", cache_dir=cache_dir(image_home)
        )
    message = info.value.message
    assert "pier-test-missing:nope" in message
    assert "docker pull" in message
    assert "scripts/docker-engine up" in message


def test_a_directory_without_mlmodel_is_refused(
    docker_client: Any,  # noqa: F811
    image_home: Path,  # noqa: F811
    env_image: str,
    models: dict[str, Path],
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationException, match="no MLmodel"):
        images.build_image(
            tmp_path,
            model_env.read(models["v1"]),
            f"{TAG}:bare",
            base_image=BASE_IMAGE,
            labels={},
            progress=None,
            cache_dir=cache_dir(image_home),
        )
    assert not docker_client.images.list(name=f"{TAG}:bare")


def test_signature_label_is_json(tmp_path: Path) -> None:
    from pier.hosting import model_source

    path = save_pinned_model(tmp_path / "m", 1.0, 1.0, 0.0)
    labels = model_source.labels(model_source.fetch(str(path), tmp_path / "dl"))
    signature = json.loads(labels["org.pier.model.signature"])
    assert [c["name"] for c in signature["inputs"]] == ["a", "b"]
    assert labels["org.pier.model.flavors"] == "python_function,sklearn"
    assert "org.pier.model.version" not in labels
    assert "org.pier.model.run-id" not in labels


def test_serving_context_is_readable_by_the_image_user_under_the_platforms_umask(
    tmp_path: Path,
) -> None:
    """The platform builds under umask 077; the builder copies modes as they are, so pier's
    source in the environment image must not be left 0600 (the image's user could not import
    it: every container of an MLflow model exited at start)."""
    context = tmp_path / "context"
    previous = os.umask(0o077)
    try:
        context.mkdir()
        images.serving_context(context)
    finally:
        os.umask(previous)
    paths = [context / "serve", *(context / "src").rglob("*")]
    assert any(p.name == "__init__.py" for p in paths)
    for path in [context / "src", *paths]:
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH, f"{path} is not readable by others: {oct(mode)}"
        if path.is_dir():
            assert mode & stat.S_IXOTH, f"{path} cannot be entered by others: {oct(mode)}"
