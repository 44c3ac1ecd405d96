"""Container images for MLflow models: `pier build`, and the model-less serving image per
environment that the Docker backend runs with the model mounted.

An image honours SageMaker's container contract: `docker run IMAGE serve` (or plain
`docker run IMAGE`) runs pier's model server (pier.serving, the `serve` entry point) on
0.0.0.0:${SAGEMAKER_BIND_TO_PORT:-8080}, answering /ping and /invocations, with the model at
/opt/ml/model: baked into the image by `build_image`, or mounted there (read-only is fine) for
the model-less image, like SageMaker's MLflow image.

Layers, so that a new model version with the same environment rebuilds only its last layer:
1. the base image (`--base-image`, default python:3.11-slim; any local image with python3);
2. the environment image `pier-env:<key>` (`serving_image`): a user `pier` (non-root) and one
   virtualenv at /opt/pier/env holding the model's requirements and pier's server. A
   multi-stage build installs it from a wheelhouse gathered on the host (pier.hosting.
   wheelhouse); only the virtualenv is copied into the final stage, so neither the wheels nor
   pip stay in the image, nor the packages' own test suites (`<package>/.../tests`
   directories: about 110 MB for numpy, pandas, scipy and scikit-learn, never imported when
   serving). `mlflow` is installed as `mlflow-skinny` at the same version.
   The key hashes the model's declared environment, pier's serving requirements and source,
   and the base image's id: built once, found by tag afterwards;
3. the model (`build_image`): `FROM pier-env:<key>`, `COPY model /opt/ml/model`, and labels
   naming the model (LABEL_PREFIX: uri, registry version, run id, signature).

The base image's Python must have the model's minor version (wheels and pickles are built for
it): it is found by running the base image once (`python3 -c ...`), cached by image id.
The docker SDK drives the engine's classic builder (no BuildKit), whose layer cache keeps steps
whose inputs are unchanged. Images are only built here; nothing here pulls from a registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pier.errors import PierError, ValidationException
from pier.hosting import docker_engine, wheelhouse
from pier.hosting.model_env import ModelEnvironment
from pier.hosting.model_source import LABEL_PREFIX
from pier.hosting.serving_install import (
    SERVE_SCRIPT,
    SERVING_REQUIREMENTS,
    copy_package,
    source_digest,
)
from pier.settings import BuildSettings

if TYPE_CHECKING:
    import docker

DEFAULT_BASE_IMAGE = "python:3.11-slim"
ENV_REPOSITORY = "pier-env"
ENV_DIR = "/opt/pier/env"
MODEL_DIR = "/opt/ml/model"
USER = "pier"
IMAGE_FORMAT = "3"  # part of every key: bump when the Dockerfiles or their contexts change
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROBE = (
    "import json, platform, sys; libc = platform.libc_ver(); print(json.dumps({"
    "'python': platform.python_version(), 'machine': platform.machine(), "
    "'glibc': libc[1] if libc[0] == 'glibc' else None, 'executable': sys.executable}))"
)
# Docker's reference grammar (distribution/reference), the parts a local tag uses.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG_RE = re.compile(
    rf"^(?:(?:[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)

Progress = Callable[[str], None]


class ImageBuildError(PierError):
    """The engine refused or failed a build: the message carries the step's own output."""

    status = 500
    code = "ImageBuildFailed"


@dataclass(frozen=True)
class BuiltImage:
    """An image `build_image` made: its tag, id (sha256:...), size in bytes, and the seconds
    the build took (wheelhouse included)."""

    tag: str
    id: str
    size: int
    seconds: float


@dataclass(frozen=True)
class BaseImage:
    """A local base image and the interpreter inside it."""

    name: str
    id: str
    target: wheelhouse.Target
    executable: str  # its python3, e.g. /usr/local/bin/python3


def check_tag(tag: str) -> str:
    """`tag` as docker takes it (NAME[:TAG], lower-case name); ValidationException otherwise."""
    if len(tag) > 255 or not _TAG_RE.match(tag):
        raise ValidationException(
            f"{tag!r} is not a valid image name: use NAME[:TAG] with a lower-case name of "
            "letters, digits and . _ - / (e.g. my-model:1)."
        )
    return tag


def base_image(client: docker.DockerClient, name: str, cache_dir: Path) -> BaseImage:
    """The local image `name` and its python3 (run once per image id, then cached as
    cache_dir/base-images/<id>.json). ValidationException when the image is not local or has
    no python3."""
    from docker.errors import ContainerError, ImageNotFound

    try:
        image = client.images.get(name)
    except ImageNotFound:
        raise ValidationException(
            f"Base image {name!r} is not on this Docker Engine (pier does not pull). Get it "
            f"with `docker pull {name}` where a registry is reachable, or build one (the "
            "project's `scripts/docker-engine up` makes pier-base:bookworm from Debian's "
            "packages) and pass it with --base-image."
        ) from None
    image_id = str(image.id)
    cached = Path(cache_dir) / "base-images" / f"{image_id.replace(':', '-')}.json"
    if cached.is_file():
        info = json.loads(cached.read_text())
    else:
        try:
            out = client.containers.run(
                image_id,
                ["-c", _PROBE],
                entrypoint="python3",
                remove=True,
                network_disabled=True,
                user="0",
            )
        except (ContainerError, docker_errors().APIError) as exc:
            raise ValidationException(
                f"Base image {name!r} has no working python3 ({_first_line(exc)}): pier "
                "installs the model's packages with the base image's Python. Use an image "
                "with python3 (and its venv module), e.g. python:3.11-slim."
            ) from None
        info = json.loads(bytes(out).decode().strip().splitlines()[-1])
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(info))
    target = wheelhouse.Target(str(info["python"]), str(info["machine"]), info.get("glibc"))
    return BaseImage(name, image_id, target, str(info["executable"]))


def docker_errors() -> Any:
    import docker.errors

    return docker.errors


def check_python(env: ModelEnvironment, base: BaseImage) -> None:
    """ValidationException when the model was logged with another Python minor version than
    the base image has (its wheels and pickles are made for the model's version)."""
    if env.python_minor is not None and env.python_minor != base.target.minor:
        raise ValidationException(
            f"The model was logged with Python {env.python} but base image {base.name!r} has "
            f"Python {base.target.python}: pass a base image with Python {env.python_minor} "
            f"(e.g. --base-image python:{env.python_minor}-slim)."
        )


def environment_key(env: ModelEnvironment, base: BaseImage) -> str:
    """The key of the environment image for `env` on `base` (see the module docstring)."""
    return env.key(
        *SERVING_REQUIREMENTS,
        f"pier={source_digest()}",
        f"base={base.id}",
        f"format={IMAGE_FORMAT}",
    )


def serving_image(
    env: ModelEnvironment,
    *,
    base_image: str,
    cache_dir: Path,
    progress: Progress | None = None,
) -> str:
    """The model-less serving image for `env`, `pier-env:<key>`, built when the engine does
    not have it yet; returns its tag. Run it with the model mounted at /opt/ml/model.
    Raises DockerUnavailable, ValidationException (base image missing or with another Python
    minor version), WheelhouseError (packages cannot be gathered), ImageBuildError."""
    client = docker_engine.connect()
    try:
        return _serving_image(client, env, base_image, Path(cache_dir), progress or _quiet)
    finally:
        client.close()


def build_image(
    model_dir: Path | None,
    env: ModelEnvironment,
    tag: str,
    *,
    base_image: str = DEFAULT_BASE_IMAGE,
    labels: dict[str, str],
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> BuiltImage:
    """Build `tag`: the serving image for `env` with the model in `model_dir` copied to
    /opt/ml/model (or, when `model_dir` is None, without a model: mount one there), labelled
    with `labels` (see model_source.labels). Only the model layer is new when the environment
    image exists. `cache_dir` defaults to BuildSettings' ($PIER_HOME/cache/images). Raises like
    `serving_image`, and ValidationException for a bad tag."""
    check_tag(tag)
    cache = Path(cache_dir) if cache_dir is not None else BuildSettings().cache_dir
    say = progress or _quiet
    started = time.monotonic()
    client = docker_engine.connect()
    try:
        env_tag = _serving_image(client, env, base_image, cache, say)
        with _context() as context:
            lines = [f"FROM {env_tag}"]
            if model_dir is not None:
                _copy_model(Path(model_dir), context / "model")
                lines.append(f"COPY model {MODEL_DIR}")
            lines.append(label_instruction(labels))
            (context / "Dockerfile").write_text("\n".join(lines) + "\n")
            say(f"building {tag}")
            image_id = _build(client, context, tag, say)
        image = client.images.get(image_id)
        size = int(image.attrs.get("Size") or 0)
    finally:
        client.close()
    return BuiltImage(tag, image_id, size, time.monotonic() - started)


def _quiet(_line: str) -> None:
    return None


def _serving_image(
    client: docker.DockerClient,
    env: ModelEnvironment,
    base_name: str,
    cache_dir: Path,
    say: Progress,
) -> str:
    from docker.errors import ImageNotFound

    base = base_image(client, base_name, cache_dir)
    check_python(env, base)
    key = environment_key(env, base)
    tag = f"{ENV_REPOSITORY}:{key}"
    try:
        client.images.get(tag)
        say(f"environment image {tag}: cached")
        return tag
    except ImageNotFound:
        pass
    requirements = wheelhouse.image_requirements(env)
    target = base.target
    house_key = env.key(
        *requirements, target.minor, target.machine, target.glibc or "", f"format={IMAGE_FORMAT}"
    )
    house = wheelhouse.ensure(
        requirements, env.constraints, target, house_key, cache_dir, progress=say
    )
    with _context() as context:
        _link_tree(house, context / "wheelhouse")
        serving_context(context)
        pip_wheel = next((house / wheelhouse.PIP_DIR).glob("pip-*.whl")).name
        labels = {
            f"{LABEL_PREFIX}environment": key,
            f"{LABEL_PREFIX}base-image": base.name,
            f"{LABEL_PREFIX}python": target.python,
        }
        dockerfile = _env_dockerfile(base, pip_wheel) + label_instruction(labels) + "\n"
        (context / "Dockerfile").write_text(dockerfile)
        say(f"building environment image {tag} on {base.name} (Python {target.python})")
        _build(client, context, tag, say)
    return tag


def serving_context(context: Path) -> None:
    """Put pier's serving source and the `serve` entry point into the build `context`, readable
    by the image's non-root user: the builder copies modes as they are, and the platform runs
    under umask 077 (pier.platform.server.run), which would leave them 0600 and unimportable.
    The wheelhouse needs no such care: the build stage reads it as root and pip installs it
    with the image's own umask."""
    copy_package(context / "src")
    (context / "serve").write_text(SERVE_SCRIPT)
    _readable(context / "src")
    _readable(context / "serve")


def _env_dockerfile(base: BaseImage, pip_wheel: str) -> str:
    python = base.executable
    site = f"{ENV_DIR}/lib/python{base.target.minor}/site-packages"
    wheels = "/tmp/wheelhouse"  # noqa: S108  # a build stage's own directory, not the host's
    return f"""\
FROM {base.id} AS env
COPY wheelhouse {wheels}
RUN {python} -m venv --without-pip {ENV_DIR} \\
 && {ENV_DIR}/bin/python {wheels}/{wheelhouse.PIP_DIR}/{pip_wheel}/pip install \\
      --no-index --no-deps --no-cache-dir --disable-pip-version-check --quiet \\
      {wheels}/wheels/*.whl \\
 && find {ENV_DIR}/lib -depth -type d -name tests -path '*/site-packages/*/tests' \\
      -exec rm -rf {{}} +
COPY src/pier {site}/pier
COPY serve {ENV_DIR}/bin/serve
RUN chmod 0755 {ENV_DIR}/bin/serve && {ENV_DIR}/bin/python -m compileall -q {site}/pier

FROM {base.id}
RUN (useradd --system --user-group --create-home --home-dir /home/{USER} {USER} \\
     || adduser -S -D -h /home/{USER} {USER}) \\
 && mkdir -p {MODEL_DIR}
COPY --from=env {ENV_DIR} {ENV_DIR}
ENV PATH={ENV_DIR}/bin:{_PATH} VIRTUAL_ENV={ENV_DIR} PYTHONUNBUFFERED=1
USER {USER}
WORKDIR /home/{USER}
EXPOSE 8080
ENTRYPOINT ["{ENV_DIR}/bin/serve"]
"""


def label_instruction(labels: dict[str, str]) -> str:
    """One Dockerfile LABEL instruction for all `labels` (one step, not one per label as the
    build API's `labels` makes): values double-quoted, with quote, backslash and `$` escaped
    (the builder expands variables in LABEL) and line breaks as spaces."""
    parts = []
    for key, value in labels.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", key):
            raise ValidationException(f"{key!r} is not a valid label name.")
        text = " ".join(str(value).splitlines())
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        parts.append(f'{key}="{escaped}"')
    return "LABEL " + " ".join(parts) if parts else ""


def _build(client: docker.DockerClient, context: Path, tag: str, say: Progress) -> str:
    """Build `context` with the classic builder, each output line to `say`; the image id."""
    image_id = None
    tail: list[str] = []
    try:
        stream = client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True)
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise ImageBuildError(
                    f"Building {tag} failed: {str(detail).strip()}"
                    + (f" (after: {' | '.join(tail[-4:])})" if tail else "")
                )
            text = chunk.get("stream")
            if text:
                for line in str(text).splitlines():
                    if line.strip():
                        say(line.rstrip())
                        tail = [*tail[-7:], line.strip()]
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
    except docker_errors().APIError as exc:
        raise ImageBuildError(f"Building {tag} failed: {_first_line(exc)}") from None
    if image_id is None:
        raise ImageBuildError(f"Building {tag} ended without an image: {' | '.join(tail[-4:])}")
    return image_id


@contextmanager
def _context() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pier-build-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) a cached wheelhouse into a build context."""

    def link(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(source, target, copy_function=link)


def _copy_model(source: Path, target: Path) -> None:
    """The model's files, readable by the image's non-root user whatever their mode here."""
    if not (source / "MLmodel").is_file():
        raise ValidationException(f"{source} is not an MLflow model: it has no MLmodel file.")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    _readable(target)


def _readable(path: Path) -> None:
    """Make `path` (a file, or a tree) in a build context readable by the image's user."""
    if path.is_file():
        os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)
        return
    os.chmod(path, 0o755)  # noqa: S103  # a build context: readable by the image user
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)  # noqa: S103  # a build context: readable by the image user
        for name in files:
            file = os.path.join(root, name)
            os.chmod(file, 0o755 if os.access(file, os.X_OK) else 0o644)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
