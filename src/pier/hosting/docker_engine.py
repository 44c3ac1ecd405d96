"""The Docker Engine, through the `docker` SDK: one place that connects and says why it cannot.

`pier build` (pier.hosting.images) and the Docker backend (pier.hosting.docker_backend) both
start here. The SDK reads DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH like the docker
CLI (default: the local socket).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pier.errors import PierError

if TYPE_CHECKING:
    import docker

START_HINT = (
    "Install and start a Docker Engine (Debian: `apt-get install docker.io`, then start "
    "`dockerd`; the project's `scripts/docker-engine up` does both), or set DOCKER_HOST."
)


class DockerUnavailable(PierError):
    """No Docker Engine answers: the message says how to get one."""

    status = 503
    code = "DockerUnavailable"


def connect(timeout_s: float = 120.0) -> docker.DockerClient:
    """A client of the engine that answered a ping; DockerUnavailable when none does."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - a dependency of pier
        raise DockerUnavailable(f"the docker Python SDK is not installed: {exc}") from None
    client = None
    failure = None
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        failure = _short(exc)
    if failure is not None:  # out of the except block: its traceback holds the socket
        if client is not None:
            client.close()
        _drop_failed_sockets()
        raise DockerUnavailable(f"No Docker Engine answers ({failure}). {START_HINT}")
    return client


def _drop_failed_sockets() -> None:
    """The SDK's version probe (in from_env) leaks the socket of a failed connection inside
    urllib3, where nothing can close it: collect it now, quietly, not at a random later time
    with a ResourceWarning."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
