"""The hosting backend interface: where instances of a production variant run.

A backend launches, watches and stops *instances*: one model server (`pier serve` or a
SageMaker-style container) serving one model for one variant of one endpoint. All side effects
on processes or external systems live in backends; the reconciler calls them and nothing else
does. Backends run on the platform's event loop, so every call that waits is async.
"""

from __future__ import annotations

import builtins
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from pier.errors import ValidationException

__all__ = [  # the backend extension point, pinned by tests/test_extension_points.py
    "DEFAULT_STARTUP_TIMEOUT_S",
    "DEFAULT_STOP_GRACE_S",
    "PING_TIMEOUT_S",
    "Backend",
    "Instance",
    "InstanceSpec",
    "InstanceState",
    "new_instance_id",
]

PING_TIMEOUT_S = 2.0  # the container contract: /ping answers within 2 s
DEFAULT_STARTUP_TIMEOUT_S = 240.0  # SageMaker's default container startup health check
DEFAULT_STOP_GRACE_S = 30.0  # SageMaker's stop: SIGTERM, then SIGKILL 30 s later

_INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class InstanceState(StrEnum):
    PENDING = "Pending"  # launched, /ping has not answered 200 yet
    HEALTHY = "Healthy"  # /ping answered 200 at the last check
    UNHEALTHY = "Unhealthy"  # running, but /ping did not answer 200 at the last check
    STOPPED = "Stopped"  # stopped by the platform
    FAILED = "Failed"  # exited on its own, or never became healthy: see Instance.failure


@dataclass(frozen=True)
class InstanceSpec:
    """What to run. `model_path` is already resolved (see pier.hosting.model_data)."""

    endpoint: str
    variant: str
    instance_id: str
    model_path: str  # an MLflow model URI or a local directory
    image: str | None = None
    environment: dict[str, str] = field(default_factory=dict, hash=False)  # the container's
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    fleet: str = ""  # the platform's label for a generation of instances (blue/green)
    instance_type: str = ""  # the variant's InstanceType (ml.m5.large): a container's limits

    def __post_init__(self) -> None:
        # The id names files and directories of the backend: refuse anything path-like.
        if not _INSTANCE_ID.fullmatch(self.instance_id):
            raise ValidationException(
                f"Invalid instance id {self.instance_id!r}: use letters, digits, '-', '_', '.'."
            )
        for name, value in self.environment.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise ValidationException(f"Invalid environment variable name {name!r}.")


def new_instance_id(endpoint: str, variant: str) -> str:
    """A unique instance id that says what it serves: `<endpoint>-<variant>-<8 hex>`."""
    return f"{endpoint}-{variant}-{uuid.uuid4().hex[:8]}"


OWNER_FILE = "owner.json"


def write_owner(directory: Path, spec: InstanceSpec) -> None:
    """Say whose instance `directory` holds, in a file that outlives the instance (its record
    goes when it stops). `pier logs` attributes a stopped instance's log by it: the directory's
    name cannot say, `<endpoint>-<variant>-<hex>` being ambiguous when names hold a '-'."""
    owner = {"endpoint": spec.endpoint, "variant": spec.variant}
    (directory / OWNER_FILE).write_text(json.dumps(owner))


def read_owner(directory: Path) -> tuple[str, str] | None:
    """(endpoint, variant) as `write_owner` put them; None when the directory has no owner."""
    try:
        owner = json.loads((directory / OWNER_FILE).read_text())
        endpoint, variant = owner["endpoint"], owner["variant"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (endpoint, variant) if isinstance(endpoint, str) and isinstance(variant, str) else None


@dataclass
class Instance:
    """A launched instance and what the backend last observed of it."""

    spec: InstanceSpec
    url: str  # http://127.0.0.1:PORT: where /ping and /invocations answer
    pid: int | None
    state: InstanceState
    started_at: datetime
    log_path: Path
    failure: str | None = None  # why it FAILED, with the tail of its log
    exit_code: int | None = None  # when it exited and the backend could see the code

    @property
    def instance_id(self) -> str:
        return self.spec.instance_id


@runtime_checkable
class Backend(Protocol):
    """Where instances run. Implementations: pier.hosting.process.ProcessBackend,
    pier.hosting.docker_backend.DockerBackend, pier.hosting.dispatch.DispatchBackend."""

    name: str

    def can_run(self, image: str | None) -> bool:
        """Whether this backend can run a container definition with this image."""
        ...

    def cannot_run(self, image: str | None) -> str | None:
        """None when this backend can run the image; else why not and what to do (a message
        CreateModel returns as is)."""
        ...

    async def launch(self, spec: InstanceSpec) -> Instance:
        """Start an instance and return at once, PENDING (or FAILED if it could not start)."""
        ...

    async def wait_healthy(self, instance: Instance, timeout_s: float | None = None) -> Instance:
        """Poll until HEALTHY, or FAILED: the instance exited, or did not become healthy in
        `timeout_s` (default spec.startup_timeout_s; it is then stopped). Never raises for a
        failing instance: the reason is in `instance.failure`."""
        ...

    async def health(self, instance: Instance) -> bool:
        """One check (GET /ping, 2 s timeout); updates and returns instance.state == HEALTHY."""
        ...

    async def stop(self, instance: Instance, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        """SIGTERM (drain), force after `grace_s`; forget the instance. Idempotent."""
        ...

    def list(self) -> list[Instance]:
        """Instances launched or adopted and not stopped yet (FAILED ones included)."""
        ...

    async def adopt(self) -> builtins.list[Instance]:
        """Take over instances a previous platform process left running; forget dead ones."""
        ...

    def log_tail(self, instance: Instance, lines: int = 40) -> str:
        """The last lines of the instance's log."""
        ...
