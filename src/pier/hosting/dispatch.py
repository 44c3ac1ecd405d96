"""The process backend's companion: MLflow models as processes, every other image in Docker.

`pier up` (backend `process`, the default) runs an MLflow model (no image, or MLflow's
`mlflow-pyfunc` name, after the image map) as a `pier serve` process, and a Model whose image is
anything else as a container, when a Docker Engine answers. The decision is made per instance
from its image, through the platform's image map (pier.hosting.image_map), so one endpoint may
hold a process variant beside a container variant. Each instance stays with the backend that
launched (or adopted) it until it stops.

The Docker backend connects to the engine on first use: a platform serving only MLflow models
never needs one, and CreateModel with another image says precisely that no engine answers.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging

from pier.hosting.base import DEFAULT_STOP_GRACE_S, Backend, Instance, InstanceSpec
from pier.hosting.docker_backend import DockerBackend
from pier.hosting.image_map import is_mlflow_image
from pier.hosting.process import ProcessBackend

log = logging.getLogger("pier.hosting.dispatch")


class DispatchBackend:
    """`process` for MLflow models, `docker` for other images (see the module's docstring)."""

    name = "process"

    def __init__(self, process: ProcessBackend, docker: DockerBackend) -> None:
        self.process = process
        self.docker = docker
        self._owner: dict[str, Backend] = {}  # instance id -> the backend that runs it

    def _for(self, image: str | None) -> tuple[Backend, str | None]:
        """The backend for `image`, and the image it runs (after the image map)."""
        resolved = self.docker.images.resolve(image)
        if is_mlflow_image(resolved):
            return self.process, resolved
        return self.docker, resolved

    def _of(self, instance: Instance) -> Backend:
        return self._owner.get(instance.instance_id, self.process)

    def cannot_run(self, image: str | None) -> str | None:
        backend, resolved = self._for(image)
        return backend.cannot_run(resolved)

    def can_run(self, image: str | None) -> bool:
        return self.cannot_run(image) is None

    async def launch(self, spec: InstanceSpec) -> Instance:
        backend, resolved = self._for(spec.image)
        if backend is self.process and resolved != spec.image:
            spec = dataclasses.replace(spec, image=resolved)  # mapped to MLflow's image
        instance = await backend.launch(spec)
        self._owner[spec.instance_id] = backend
        return instance

    async def wait_healthy(self, instance: Instance, timeout_s: float | None = None) -> Instance:
        return await self._of(instance).wait_healthy(instance, timeout_s)

    async def health(self, instance: Instance) -> bool:
        return await self._of(instance).health(instance)

    async def stop(self, instance: Instance, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        await self._of(instance).stop(instance, grace_s)
        self._owner.pop(instance.instance_id, None)

    def list(self) -> list[Instance]:
        return [*self.process.list(), *self.docker.list()]

    async def adopt(self) -> builtins.list[Instance]:
        adopted = await self.process.adopt()
        for instance in adopted:
            self._owner[instance.instance_id] = self.process
        if any(self.docker.state_dir.glob("instances/*/instance.json")):
            containers = await self.docker.adopt()  # it says so when no engine answers
            for instance in containers:
                self._owner[instance.instance_id] = self.docker
            adopted += containers
        return adopted

    def log_tail(self, instance: Instance, lines: int = 40) -> str:
        return self._of(instance).log_tail(instance, lines)
