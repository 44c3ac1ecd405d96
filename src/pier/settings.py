"""Settings. The environment is read here and nowhere else.

``pier serve`` reads ``PIER_*`` variables; the ``serve`` executable (the SageMaker container
entry point) also honours SageMaker's own: SAGEMAKER_BIND_TO_PORT (which wins over PIER_PORT:
the platform decides where a container listens), SAGEMAKER_MODEL_SERVER_WORKERS and
SAGEMAKER_MODEL_SERVER_TIMEOUT.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SAGEMAKER_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's limit
#: The most worker processes a model server starts by itself (each holds a copy of the model).
MAX_DEFAULT_WORKERS = 4


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's cpuset counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """`pier serve`'s and `serve`'s worker processes when none are asked for: one per usable
    CPU, at most MAX_DEFAULT_WORKERS. Each worker is one event loop and one predict thread, so
    one worker keeps about one core busy; on 2 cores 2 workers served 1.7x one (docs/serving.md).
    """
    return max(1, min(MAX_DEFAULT_WORKERS, usable_cpus()))


def instance_workers() -> int:
    """Workers of each instance the platform starts when its Environment names none: one CPU
    is left to the platform itself (it routes every request), so one per remaining CPU, at
    least 1, at most MAX_DEFAULT_WORKERS. On 2 cores: 1 (docs/hosting.md)."""
    return max(1, min(MAX_DEFAULT_WORKERS, usable_cpus() - 1))


EnvManagerName = Literal["auto", "local", "virtualenv"]  # see pier.hosting.environments


class ServeSettings(BaseSettings):
    """Everything the model server needs; the CLI fills it instead of restating it."""

    model_config = SettingsConfigDict(env_prefix="PIER_", extra="ignore", populate_by_name=True)

    model_uri: str = Field(default="/opt/ml/model", description="Any MLflow model URI or a path")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default_factory=default_workers, ge=1, le=64)
    timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("PIER_TIMEOUT_SECONDS", "SAGEMAKER_MODEL_SERVER_TIMEOUT"),
    )
    # A predict call running this long (default: timeout + max(timeout, 60 s)) cannot be stopped and
    # holds the worker's only predict thread: the worker exits to be replaced (serving/app.py).
    stuck_seconds: float | None = Field(default=None, gt=0)
    max_body_bytes: int = Field(default=SAGEMAKER_MAX_PAYLOAD_BYTES, ge=1)
    # Adaptive batching (see docs/serving.md for how the defaults were measured).
    batching: bool = True
    max_batch_rows: int = Field(default=256, ge=1)
    max_batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    # An idle model waits a moment for the rest of a burst (pier.serving.batching, "gather").
    batch_gather: bool = True
    # MLflow's guard against unpickling untrusted models; pier's quick loader honours it too.
    allow_pickle_deserialization: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "PIER_ALLOW_PICKLE_DESERIALIZATION", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
        ),
    )
    quick_load: bool = True  # load plain sklearn models without importing MLflow first
    home: Path = Field(default_factory=lambda: Path.home() / ".pier")  # PIER_HOME
    log_file: Path | None = None
    log_level: str = "info"
    # Which environment serves the model (docs/environments.md): `pier serve` decides before
    # it starts the server; the server itself ignores these.
    env_manager: EnvManagerName = "auto"
    env_cache: Path | None = None  # default: home/envs

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError("must be one of critical, error, warning, info, debug")
        return value


class ContainerServeSettings(ServeSettings):
    """The `serve` executable inside a SageMaker-style container."""

    host: str = "0.0.0.0"  # noqa: S104  # the container contract: reachable from the host
    # SageMaker's contract: the container listens where the platform says. A PIER_PORT left in
    # an image's ENV or a user's shell must not move it where nobody sends requests.
    port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("SAGEMAKER_BIND_TO_PORT", "PIER_PORT"),
    )
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        le=64,
        validation_alias=AliasChoices("PIER_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS"),
    )


def image_pairs(values: list[str]) -> dict[str, str]:
    """`URI=IMAGE` strings (several comma-separated in one string too) → a mapping; ValueError
    with an example for anything else."""
    out: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            key, eq, target = item.strip().partition("=")
            if not item.strip():
                continue
            if not eq or not key.strip() or not target.strip():
                raise ValueError(
                    f"{item.strip()!r}: expected URI=IMAGE, e.g. "
                    "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1=my-model:latest"
                )
            out[key.strip()] = target.strip()
    return out


def default_home() -> Path:
    return Path.home() / ".pier"


class PlatformSettings(BaseSettings):
    """`pier up`: the control plane, the runtime API and the instances it runs."""

    model_config = SettingsConfigDict(env_prefix="PIER_", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = Field(default=7437, ge=0, le=65535)
    state_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the state store (default: SQLite in home)"
    )
    region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("PIER_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    account: str = Field(default="000000000000", pattern=r"^[0-9]{12}$")
    health_interval_seconds: float = Field(default=5.0, gt=0)
    # CloudWatch-style metrics in the state store (docs/monitoring.md): how long 1-minute
    # points are kept (CloudWatch keeps them 15 days) and how often the router's counts are
    # written.
    metrics_retention_days: float = Field(default=15.0, gt=0)
    metrics_flush_seconds: float = Field(default=10.0, gt=0)
    # The MLflow tracking server: pier's own (default), an existing one, or none.
    mlflow: bool = True
    mlflow_uri: str | None = Field(
        default=None, description="Use this tracking server instead of starting one"
    )
    mlflow_port: int = Field(default=5000, ge=0, le=65535, description="0: a free port")
    backend_store_uri: str | None = Field(
        default=None, description="MLflow backend store (default: SQLite in home/mlflow)"
    )
    artifacts_destination: str | None = Field(
        default=None, description="MLflow artefact store (default: home/mlflow/artifacts)"
    )
    stop_grace_seconds: float = Field(default=30.0, ge=0)
    # The platform's quota of instances, across every endpoint (SageMaker's account-level
    # service limit): a create or update that would pass it answers ResourceLimitExceeded.
    max_instances: int = Field(default=32, ge=1)
    # Housekeeping (docs/hosting.md): every housekeeping_interval_seconds, the directories of
    # instances that no longer run and cached models no running instance uses are removed once
    # unchanged for housekeeping_grace_seconds (a stopped instance's log stays readable).
    housekeeping_grace_seconds: float = Field(default=86400.0, ge=0)
    housekeeping_interval_seconds: float = Field(default=300.0, gt=0)
    # Where monitoring executions' analyses run (docs/monitoring.md): a worker process (the
    # platform's event loop keeps serving invocations at their latency), or a thread of the
    # platform's own process (for comparison: benchmarks/monitor/invocation_p99.py).
    monitoring_worker: Literal["process", "thread"] = "process"
    # Which environment serves a model whose container Environment has no PIER_ENV_MANAGER
    # (docs/environments.md), and where model environments are cached (default: home/envs).
    env_manager: EnvManagerName = "auto"
    env_cache: Path | None = None
    # Ground truth uploaded to POST /endpoints/{name}/ground-truth: s3://bucket/prefix or
    # file:///dir; `pier quality` reads it back (default: home/ground-truth).
    ground_truth_uri: str | None = None
    # Alarms: every alarm is evaluated every alarm_evaluation_seconds (CloudWatch: each
    # minute), over the periods that ended alarm_evaluation_delay_seconds before (late points:
    # the endpoint metrics are flushed every metrics_flush_seconds).
    alarm_evaluation_seconds: float = Field(default=60.0, gt=0)
    alarm_evaluation_delay_seconds: float = Field(default=15.0, ge=0)
    log_level: str = "info"
    # The gateway (docs/gateway.md): how often API key usage is written to the store and keys
    # are reloaded from it (`pier keys` also tells the platform at once).
    gateway_flush_seconds: float = Field(default=5.0, gt=0)
    # Where instances run (docs/containers.md): `process` runs MLflow models as `pier serve`
    # processes and other images in Docker when an engine answers; `docker` runs every
    # instance as a container.
    backend: Literal["process", "docker"] = "process"
    # ECR image URIs -> local images: PIER_IMAGE_MAP="URI=IMAGE,URI=IMAGE" (or a JSON object),
    # `pier up --map-image URI=IMAGE`.
    image_map: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # The base of pier's serving images for MLflow models on the Docker backend.
    base_image: str = "python:3.11-slim"
    # The web console (docs/console.md): how long a sign-in lasts, and a one-time link.
    console_session_seconds: float = Field(default=8 * 3600.0, gt=0)
    console_link_seconds: float = Field(default=300.0, gt=0)
    # Data capture (docs/monitoring.md): false answers an invocation before its record is
    # written (a crash loses at most one flush interval); true answers once the record is in
    # the kernel (a platform SIGKILL loses no acknowledged record), at a cost in throughput.
    capture_durable: bool = False
    # GET /metrics (docs/security.md): open on the platform's port when None, as Prometheus
    # scrapes it; set, it asks for `Authorization: Bearer <token>` (Prometheus' scrape
    # `authorization: {credentials: ...}`).
    metrics_token: SecretStr | None = None
    # InvokeEndpoint to pier's own model servers (docs/hosting.md, "Router"): the requests held
    # for an instance go to it in bundles, one exchange each; false sends each on its own.
    bundle_invocations: bool = True

    @field_validator("image_map", mode="before")
    @classmethod
    def _image_pairs(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().startswith("{"):
            import json

            return json.loads(value)
        if isinstance(value, str):
            return image_pairs([value])
        if isinstance(value, list | tuple):
            return image_pairs([str(v) for v in value])
        return value

    def resolved_state_url(self) -> str:
        return self.state_url or f"sqlite:///{self.home / 'pier.db'}"


class BuildSettings(BaseSettings):
    """`pier build`: where its caches live and which base image it builds on."""

    model_config = SettingsConfigDict(env_prefix="PIER_", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=default_home)  # PIER_HOME
    # The image the serving image starts from (PIER_BASE_IMAGE); --base-image overrides it.
    base_image: str = "python:3.11-slim"

    @property
    def cache_dir(self) -> Path:
        """Wheelhouses and base-image facts: home/cache/images."""
        return self.home / "cache" / "images"
