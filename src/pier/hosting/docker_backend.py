"""The Docker backend: each instance is a container of the Docker Engine (the `docker` SDK).

What runs. A Model's image, through the platform's image map (pier.hosting.image_map); for an
MLflow model (no image, or MLflow's `mlflow-pyfunc` name) pier's serving image for the model's
own environment (pier.hosting.images.serving_image, built once per environment and cached by
the engine). The container runs `serve` (SageMaker's contract: docs/containers.md) with the
container definition's Environment, listens on 8080, and finds its model at /opt/ml/model:
the model data the reconciler resolved (downloaded and unpacked exactly as for the process
backend) is bind-mounted there read-only; a Model without model data has it inside its image
and gets no mount. `models:/` and `runs:/` URIs are downloaded to the cache first: a container
cannot reach the platform's tracking server by a loopback URI.

Network. Port 8080 is published on 127.0.0.1 only, on an ephemeral host port read back from
the engine: the router reaches the instance there, nothing outside this machine does.

Limits. The InstanceType's vCPUs and memory (pier.hosting.instance_types) become NanoCpus and
Memory (swap included, so no swap beyond it); CPUs are capped at the host's count.

Labels and adoption. Every container carries `pier.home` (the platform's home), `pier.instance`,
`pier.endpoint`, `pier.variant`, `pier.fleet` and `pier.instance-type`; its record
`<home>/instances/<id>/instance.json` (the spec, the container id, the URL; `"backend":
"docker"`) is written like the process backend's, so `pier logs` finds it. After a platform
restart `adopt()` lists the containers labelled with this home: running ones with a record are
taken over, exited ones are removed (their last log lines saved first), and records without a
container are forgotten.

Logs. Each container's log stream is pumped by a thread (pier.hosting.container_logs) into
`<home>/instances/<id>/serve.log`; the file's mtime is the engine's timestamp of the last line
copied, so a pump started after an adopt resumes exactly there (`since`, then lines at or
before it skipped). Pumping, rather than reading the engine's logs on demand, because the
container is removed when it stops or fails: its log must outlive it (a Failed endpoint is
explained by its last instance's log), and `pier logs` reads files with no platform and no
engine running, for both backends alike.

Stop. The engine's stop: SIGTERM (the image's StopSignal), SIGKILL after the grace (30 s by
default), then the container is removed. A container that exits on its own (crash, OOM kill)
ends its log stream; the next health check reads its exit code from the engine and marks the
instance FAILED with the code and its log's tail, and the reconciler replaces it.

Instance.pid is the container's main process on the host (State.Pid), so the platform's CPU and
memory metrics read it from /proc like a process backend's instance.

Every SDK call blocks: they run in threads (asyncio.to_thread), never on the event loop.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from pier.errors import PierError, ValidationException
from pier.hosting import model_local, ping
from pier.hosting.base import (
    DEFAULT_STOP_GRACE_S,
    Instance,
    InstanceSpec,
    InstanceState,
    write_owner,
)
from pier.hosting.container_logs import LogPump, last_copied_ns, quietly
from pier.hosting.docker_engine import DockerUnavailable, connect
from pier.hosting.image_map import ImageMap, is_mlflow_image
from pier.hosting.instance_types import limits
from pier.hosting.workers import workers_environment

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

log = logging.getLogger("pier.hosting.docker")

HOST = "127.0.0.1"
CONTAINER_PORT = "8080/tcp"
MODEL_MOUNT = "/opt/ml/model"
RECORD_FILE = "instance.json"
LOG_FILE = "serve.log"
CANCELLED_STOP_GRACE_S = 1.0  # launched and abandoned at once: it never served a request
DEFAULT_BASE_IMAGE = "python:3.11-slim"
LABEL = "pier."  # every label pier sets starts so

# (a local MLflow model directory, a progress callback) -> the image serving it
MlflowImage = Callable[[Path, Callable[[str], None]], str]


class CannotStart(Exception):
    """Why an instance could not start; becomes Instance.failure."""


def build_hint(image: str) -> str:
    return (
        f"Build it (`pier build MODEL_URI -t {image}` for an MLflow model, `docker build -t "
        f"{image} DIR` for your own container), or map the image the Model names to a local "
        "one (`pier up --map-image URI=IMAGE`, PIER_IMAGE_MAP, or `pier apply --map-image`)."
    )


@dataclass
class _Handle:
    """A running instance's container and the thread that copies its log."""

    container: Container
    pump: LogPump | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class DockerBackend:
    """Instances as containers of the local Docker Engine.

    `state_dir` is the platform's home (records and logs under `instances/`, labels name it).
    `image_map` maps the images Models name to local images; `mlflow_image` gives the image
    serving an MLflow model directory (default: pier's serving image of the model's environment
    on `base_image`, built under `cache_dir`); `host_cpus` caps the CPU limits (default: this
    machine's count). The engine is connected on first use (`client`).
    """

    name = "docker"

    def __init__(
        self,
        state_dir: Path,
        *,
        image_map: Mapping[str, str] | ImageMap | None = None,
        base_image: str = DEFAULT_BASE_IMAGE,
        cache_dir: Path | None = None,
        mlflow_image: MlflowImage | None = None,
        host_cpus: int | None = None,
        client: docker.DockerClient | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.images = image_map if isinstance(image_map, ImageMap) else ImageMap(image_map)
        self.base_image = base_image
        self.cache_dir = Path(cache_dir) if cache_dir else self.state_dir / "cache" / "docker"
        self._mlflow_image = mlflow_image or self._serving_image
        self._host_cpus = host_cpus if host_cpus is not None else (os.cpu_count() or 1)
        self._client = client
        self._client_lock = threading.Lock()
        self._build_lock = threading.Lock()  # one image build at a time
        self._instances: dict[str, Instance] = {}
        self._handles: dict[str, _Handle] = {}
        self._cleanups: set[asyncio.Future[None]] = set()  # abandoned launches being stopped

    # ------------------------------------------------------------------ the engine
    @property
    def client(self) -> docker.DockerClient:
        """The engine's client, connected on first use; DockerUnavailable when none answers."""
        with self._client_lock:
            if self._client is None:
                self._client = connect()
            return self._client

    def cannot_run(self, image: str | None) -> str | None:
        """None when an engine answers (any image may be built or mapped before launch);
        else why not and what to do."""
        try:
            self.client  # noqa: B018  # connects
        except DockerUnavailable as exc:
            return f"Image {image or 'pier/mlflow-pyfunc'!r} runs in a container: {exc.message}"
        return None

    def can_run(self, image: str | None) -> bool:
        return self.cannot_run(image) is None

    # ------------------------------------------------------------------ interface
    async def launch(self, spec: InstanceSpec) -> Instance:
        if spec.instance_id in self._instances:
            raise ValidationException(f"Instance {spec.instance_id} exists already: stop it first.")
        directory = self._dir(spec.instance_id)
        directory.mkdir(parents=True, exist_ok=True)
        write_owner(directory, spec)
        instance = Instance(
            spec=spec,
            url="",
            pid=None,
            state=InstanceState.PENDING,
            started_at=datetime.now(UTC),
            log_path=directory / LOG_FILE,
        )
        self._instances[spec.instance_id] = instance
        starting = asyncio.ensure_future(asyncio.to_thread(self._start, instance))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread cannot be interrupted: a task of its own lets it finish, then stops
            # what it started (a DeleteEndpoint during a create must not leave a container
            # behind), whatever happens to the cancelled caller meanwhile.
            cleanup = asyncio.ensure_future(self._abandon(starting, instance))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
            raise
        except CannotStart as exc:
            instance.state = InstanceState.FAILED
            instance.failure = str(exc)
            self._note(instance, f"cannot start: {exc}")
            log.warning("instance %s failed to start: %s", spec.instance_id, exc)
        return instance

    async def _abandon(self, starting: asyncio.Future[None], instance: Instance) -> None:
        with contextlib.suppress(Exception):
            await starting
        await self.stop(instance, grace_s=CANCELLED_STOP_GRACE_S)

    async def wait_healthy(self, instance: Instance, timeout_s: float | None = None) -> Instance:
        return await ping.wait_healthy(self, instance, timeout_s)

    async def health(self, instance: Instance) -> bool:
        return await ping.health(self, instance)

    async def stop(self, instance: Instance, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        handle = self._handles.pop(instance.instance_id, None)
        try:
            if handle is not None:  # a cancel does not stop the thread: it stops the container
                await asyncio.to_thread(self._stop_container, instance, handle, grace_s)
        finally:
            self._instances.pop(instance.instance_id, None)
            self._record_path(instance.instance_id).unlink(missing_ok=True)
            if instance.state is not InstanceState.FAILED:
                instance.state = InstanceState.STOPPED
                log.info("stopped %s (exit code %s)", instance.instance_id, instance.exit_code)

    def list(self) -> list[Instance]:
        return list(self._instances.values())

    def release(self) -> None:
        """Forget every instance and stop copying their logs, leaving the containers running
        for the next platform to adopt (what a platform that dies leaves behind)."""
        for handle in self._handles.values():
            if handle.pump is not None:
                handle.pump.close()
        self._handles.clear()
        self._instances.clear()

    async def adopt(self) -> builtins.list[Instance]:
        found = await asyncio.to_thread(self._adoptable)
        adopted: list[Instance] = []
        async with ping.client() as client:
            for instance, handle in found:
                self._instances[instance.instance_id] = instance
                self._handles[instance.instance_id] = handle
                await self._check(instance, client)
                log.info("adopted %s (container %s): %s", instance.instance_id,
                         handle.container.short_id, instance.state)  # fmt: skip
                adopted.append(instance)
        return adopted

    def log_tail(self, instance: Instance, lines: int = 40) -> str:
        try:
            with instance.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace").splitlines()
        return "\n".join([line for line in text if not line.startswith("# ")][-lines:])

    # ------------------------------------------------------------------ launching
    def _start(self, instance: Instance) -> None:
        """Resolve the image and the model, create and start the container (blocking)."""
        spec = instance.spec
        try:
            client = self.client
        except DockerUnavailable as exc:
            raise CannotStart(exc.message) from None
        resolved = self.images.resolve(spec.image)
        model_dir = self._local_model(spec.model_path) if spec.model_path else None
        if resolved is None or is_mlflow_image(resolved):
            if model_dir is None:
                raise CannotStart(
                    "An MLflow model needs its model data: set ModelDataUrl (or "
                    "ModelDataSource), or name an image that holds the model."
                )
            with self._build_lock:
                image = self._mlflow_image(model_dir, lambda line: self._note(instance, line))
        else:
            image = resolved
        self._require_image(client, image)
        self._note(instance, f"image {image}, model {model_dir or '(inside the image)'}")
        container = self._create(client, spec, image, model_dir)
        handle = _Handle(container)
        try:
            container.start()
            container.reload()
            ports = container.attrs["NetworkSettings"]["Ports"].get(CONTAINER_PORT) or []
            port = next(int(p["HostPort"]) for p in ports if p.get("HostIp") in (HOST, ""))
        except Exception as exc:
            reason = _api_reason(exc)
            with quietly():
                container.remove(force=True)
            if "executable file not found" in reason:
                raise CannotStart(
                    f"Image {image} has no `serve` executable on its PATH: pier runs "
                    "`serve` as SageMaker does (docs/containers.md, the container contract)."
                ) from None
            raise CannotStart(f"Cannot start a container of {image}: {reason}") from None
        handle.pump = LogPump(container, instance.log_path, None)
        handle.pump.start()
        instance.url = f"http://{HOST}:{port}"
        instance.pid = int(container.attrs["State"].get("Pid") or 0) or None
        self._handles[spec.instance_id] = handle
        self._write_record(instance, container)
        log.info("launched %s (container %s of %s) on %s", spec.instance_id,
                 container.short_id, image, instance.url)  # fmt: skip

    def _require_image(self, client: docker.DockerClient, image: str) -> None:
        from docker.errors import DockerException, ImageNotFound

        try:
            client.images.get(image)
        except ImageNotFound:
            raise CannotStart(
                f"Image {image} does not exist in the local Docker Engine (pier pulls "
                f"nothing from a registry). {build_hint(image)}"
            ) from None
        except DockerException as exc:
            raise CannotStart(f"Cannot inspect image {image}: {_api_reason(exc)}") from None

    def _create(
        self, client: docker.DockerClient, spec: InstanceSpec, image: str, model: Path | None
    ) -> Container:
        from docker.errors import DockerException

        kwargs: dict[str, Any] = {
            "command": ["serve"],
            "detach": True,
            "name": f"pier-{spec.instance_id}",
            # the platform's workers default (pier.hosting.workers) unless the model names one
            "environment": {**spec.environment, **workers_environment(spec.environment)},
            "ports": {CONTAINER_PORT: (HOST, None)},  # 127.0.0.1 only, an ephemeral port
            "labels": self._labels(spec),
        }
        if model is not None:
            kwargs["volumes"] = {str(model): {"bind": MODEL_MOUNT, "mode": "ro"}}
        limit = limits(spec.instance_type, self._host_cpus) if spec.instance_type else None
        if limit is not None:
            kwargs["nano_cpus"] = limit.nano_cpus
            kwargs["mem_limit"] = limit.memory_bytes
            kwargs["memswap_limit"] = limit.memory_bytes
        elif spec.instance_type:
            log.warning("no limits for instance type %s: not in pier's table", spec.instance_type)
        try:
            container: Container = client.containers.create(image, **kwargs)
        except DockerException as exc:
            raise CannotStart(f"Cannot create a container of {image}: {_api_reason(exc)}") from None
        return container

    def _labels(self, spec: InstanceSpec) -> dict[str, str]:
        return {
            f"{LABEL}home": str(self.state_dir),
            f"{LABEL}instance": spec.instance_id,
            f"{LABEL}endpoint": spec.endpoint,
            f"{LABEL}variant": spec.variant,
            f"{LABEL}fleet": spec.fleet,
            f"{LABEL}instance-type": spec.instance_type,
        }

    def _local_model(self, model_path: str) -> Path:
        """A local directory holding the model, to mount: MLflow URIs are downloaded (once for
        a pinned version or a run's artifact; pier.hosting.model_local)."""
        try:
            found = model_local.local_model_dir(model_path, self.cache_dir / "models")
        except PierError as exc:
            raise CannotStart(exc.message) from None
        if found.is_relative_to(self.state_dir):
            _readable_by_containers(found)
        return found

    def _serving_image(self, model_dir: Path, progress: Callable[[str], None]) -> str:
        """pier's serving image of the model's environment (built when missing)."""
        from pier.hosting import images, model_env

        try:
            env = model_env.read(model_dir)
        except PierError as exc:
            raise CannotStart(f"Could not load model {model_dir}: {exc.message}") from None
        try:
            return images.serving_image(
                env, base_image=self.base_image, cache_dir=self.cache_dir, progress=progress
            )
        except PierError as exc:
            raise CannotStart(
                f"Cannot build the serving image of the model {model_dir}: {exc.message}"
            ) from None

    # ------------------------------------------------------------------ watching
    async def _check(self, instance: Instance, client: httpx.AsyncClient) -> bool:
        """One health check: the container first (it may have exited), then GET /ping."""
        if instance.state in (InstanceState.FAILED, InstanceState.STOPPED):
            return False
        handle = self._handles.get(instance.instance_id)
        if handle is None:
            self._fail(instance, None, "its container is gone")
            return False
        ended = handle.pump is None or handle.pump.ended.is_set()
        if ended and await asyncio.to_thread(self._exited, instance, handle):
            return False
        try:
            ok = (await client.get(instance.url + "/ping")).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            instance.state = InstanceState.HEALTHY
        elif instance.state is not InstanceState.PENDING:
            if await asyncio.to_thread(self._exited, instance, handle):
                return False
            if instance.state is InstanceState.HEALTHY:
                instance.state = InstanceState.UNHEALTHY
        return ok

    def _exited(self, instance: Instance, handle: _Handle) -> bool:
        """Ask the engine; a container that is not running marks the instance FAILED."""
        from docker.errors import DockerException, NotFound

        try:
            handle.container.reload()
        except NotFound:
            self._fail(instance, handle, "its container was removed")
            return True
        except DockerException:
            return False  # the engine is busy or away: /ping decides
        state = handle.container.attrs["State"]
        if state.get("Running"):
            if handle.pump is not None and handle.pump.ended.is_set():  # the stream broke
                handle.pump = LogPump(
                    handle.container, instance.log_path, last_copied_ns(instance.log_path)
                )
                handle.pump.start()
            return False
        code = int(state.get("ExitCode", -1))
        instance.exit_code = code
        what = _describe_exit(handle.container.short_id, code, bool(state.get("OOMKilled")))
        self._fail(instance, handle, what)
        return True

    def _fail(self, instance: Instance, handle: _Handle | None, what: str) -> None:
        if handle is not None and handle.pump is not None:
            handle.pump.join(2.0)  # its last lines
        when = " before answering /ping with 200" if instance.state is InstanceState.PENDING else ""
        tail = self.log_tail(instance, ping.FAILURE_LOG_LINES)
        instance.state = InstanceState.FAILED
        instance.failure = f"The container {what}{when}. Last log lines:\n{tail}"
        if handle is not None:
            with quietly():
                handle.container.remove(force=True)
        self._handles.pop(instance.instance_id, None)
        self._record_path(instance.instance_id).unlink(missing_ok=True)
        log.warning("instance %s failed: %s", instance.instance_id, instance.failure)

    def _stop_container(self, instance: Instance, handle: _Handle, grace_s: float) -> None:
        from docker.errors import DockerException, NotFound

        container = handle.container
        try:
            container.reload()
            if container.attrs["State"].get("Running"):
                # The engine's stop: StopSignal (SIGTERM), SIGKILL `grace_s` later.
                container.stop(timeout=max(0, round(grace_s)))
                container.reload()
            code = container.attrs["State"].get("ExitCode")
            if instance.state is not InstanceState.FAILED:
                instance.exit_code = None if code is None else int(code)
        except NotFound:
            pass
        except DockerException as exc:
            log.warning("stopping %s: %s", instance.instance_id, _api_reason(exc))
        if handle.pump is not None:
            handle.pump.join(5.0)
        with quietly():
            container.remove(force=True)

    # ------------------------------------------------------------------ adoption
    def _adoptable(self) -> builtins.list[tuple[Instance, _Handle]]:
        from docker.errors import DockerException

        home = str(self.state_dir)
        try:
            client = self.client
            containers = client.containers.list(
                all=True, filters={"label": f"{LABEL}home={home}"}, ignore_removed=True
            )
        except (DockerUnavailable, DockerException) as exc:
            log.warning("cannot adopt containers: %s", exc)
            return []
        out: builtins.list[tuple[Instance, _Handle]] = []
        seen: set[str] = set()
        for container in containers:
            instance_id = container.labels.get(f"{LABEL}instance", "")
            if instance_id in self._instances:
                seen.add(instance_id)
                continue
            path = self._dir(instance_id) / RECORD_FILE if instance_id else None
            try:
                if path is None:
                    raise ValueError("no pier.instance label")
                instance = self._read_record(path, container.id)
            except (OSError, ValueError, KeyError, TypeError, ValidationException) as exc:
                log.warning("removing container %s: no usable record (%s)", container.name, exc)
                with quietly():
                    container.remove(force=True)
                continue
            since = last_copied_ns(instance.log_path)
            if container.status != "running":
                log.info("forgetting %s: its container exited", instance_id)
                with quietly():  # its last words, then it goes
                    pump = LogPump(container, instance.log_path, since)
                    pump.run()  # here: the stream of an exited container ends at once
                    container.remove(force=True)
                path.unlink(missing_ok=True)
                continue
            instance.pid = int(container.attrs["State"].get("Pid") or 0) or None
            pump = LogPump(container, instance.log_path, since)
            pump.start()
            handle = _Handle(container, pump)
            seen.add(instance_id)
            out.append((instance, handle))
        for record in self.state_dir.glob(f"instances/*/{RECORD_FILE}"):
            if record.parent.name not in seen and _is_docker_record(record):
                log.info("forgetting %s: its container is gone", record.parent.name)
                record.unlink(missing_ok=True)
        return out

    # ------------------------------------------------------------------ records
    def _dir(self, instance_id: str) -> Path:
        return self.state_dir / "instances" / instance_id

    def _record_path(self, instance_id: str) -> Path:
        return self._dir(instance_id) / RECORD_FILE

    def _note(self, instance: Instance, text: str) -> None:
        """A line of pier's own in the instance's log (`# ` lines stay out of failures)."""
        with quietly(), instance.log_path.open("a") as f:
            f.write(f"# {datetime.now(UTC):%Y-%m-%d %H:%M:%S} pier: {text}\n")

    def _write_record(self, instance: Instance, container: Container) -> None:
        record: dict[str, Any] = {
            "version": 1,
            "backend": self.name,
            "container": container.id,
            "pid": instance.pid,
            "url": instance.url,
            "started_at": instance.started_at.isoformat(),
            "spec": asdict(instance.spec),
        }
        path = self._record_path(instance.instance_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, path)

    def _read_record(self, path: Path, container_id: str) -> Instance:
        record = json.loads(path.read_text())
        if record.get("backend") != self.name or record.get("container") != container_id:
            raise ValueError(f"{path} names another instance")
        spec = InstanceSpec(**record["spec"])
        return Instance(
            spec=spec,
            url=str(record["url"]),
            pid=None,
            state=InstanceState.PENDING,
            started_at=datetime.fromisoformat(record["started_at"]),
            log_path=path.parent / LOG_FILE,
        )


def _is_docker_record(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("backend") == DockerBackend.name)
    except (OSError, ValueError, AttributeError):
        return False


def _describe_exit(container: str, code: int, oom: bool) -> str:
    if oom:
        return f"{container} was killed for exceeding its memory limit (exit code {code})"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
            return f"{container} was killed by {name} (exit code {code})"
        except ValueError:
            pass
    return f"{container} exited with code {code}"


def _api_reason(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _readable_by_containers(model: Path) -> None:
    """Open up a model directory of the home for the image's non-root user (pier.hosting.images),
    whose uid is not the platform's: the platform writes the home owner-only (umask 077), so an
    unpacked archive or a download would be unreadable in the container. Only the model tree
    itself: the home and the cache folders above it stay 0700, so on the host nobody else
    reaches it. The user's own model directories (outside the home) are left as they are."""
    model.chmod(model.stat().st_mode | 0o055)
    for root, dirs, files in os.walk(model):
        for name in dirs:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o055)  # noqa: S103  # see above
        for name in files:
            path = os.path.join(root, name)
            mode = os.stat(path).st_mode
            os.chmod(path, mode | 0o044 | (0o011 if mode & 0o100 else 0))
