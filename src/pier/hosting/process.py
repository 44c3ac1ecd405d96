"""The process backend: each instance is a `pier serve` child process on a loopback port.

Ports. The backend binds 127.0.0.1:0 with SO_REUSEADDR and keeps that socket (bound, never
listening) until the child answers /ping. The child binds the same port with SO_REUSEADDR, which
Linux allows while no socket *listens* there; meanwhile the port counts as in use, so no other
bind-to-0 in the system is handed it. This closes the race of "find a free port, release it,
start the child" without reading the port back from the child's log (its log level is the
container definition's to choose). Any server that sets SO_REUSEADDR (uvicorn, pier serve, Go's
net, Node) works with it.

State. Each instance has a directory `state_dir/instances/<instance_id>/` with `serve.log` (the
child's stdout and stderr), `owner.json` (its endpoint and variant, kept after it stops: see
pier.hosting.base.write_owner) and `instance.json` (pid, port, spec, start time, and the
process's start time in clock ticks from /proc/<pid>/stat). After a platform restart, `adopt()`
reads the records and takes over the processes that are still running *and* started at the recorded
tick (a pid reused by an unrelated process has another start time); it forgets the others.
An adopted instance is HEALTHY if its /ping answers 200, else PENDING (`wait_healthy` decides).

Environments. Each instance runs in pier's own environment (`pier serve`, as it always has) or
in the model's own virtualenv (pier.hosting.environments), by the env manager: the container
Environment's PIER_ENV_MANAGER (auto | local | virtualenv), else the backend's default (the
platform's `pier up --env-manager`, default auto). Deciding reads the model's environment files
(a `models:/` or `runs:/` URI is downloaded once into `model_cache` for that) and is cached per
model URI and env manager, so a scale-out or a heal of the same model decides in a dictionary
lookup. An environment is built inside `launch`, in a worker thread, before the process starts
(like a container runtime pulling an image before the container starts): the startup health
check timeout then covers the server's start only. Several instances of one model launched at
once wait for one build (the cache's lock). The server of a virtualenv is its `bin/serve`
(pier.serving, configured by PIER_* variables: the model's local directory, host, port), on a
port reserved as for `pier serve`. An environment that cannot be built makes the instance
FAILED at once, with uv's message as its failure (the endpoint's FailureReason).

Children run in their own session (start_new_session=True): a Ctrl-C on the platform's terminal
does not reach them mid-drain, and a platform that restarts finds them still serving. The
platform stops them explicitly with `stop()`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pier.errors import ModelEnvironmentError, ValidationException
from pier.hosting import environments, model_env, model_local, ping
from pier.hosting.base import (
    DEFAULT_STOP_GRACE_S,
    Instance,
    InstanceSpec,
    InstanceState,
    write_owner,
)
from pier.hosting.image_map import is_mlflow_image
from pier.hosting.pids import is_running, proc_stat
from pier.hosting.workers import workers_environment

log = logging.getLogger("pier.hosting.process")

HOST = "127.0.0.1"
RECORD_FILE = "instance.json"
LOG_FILE = "serve.log"
# The instance's serve configuration comes from its container definition only, as on
# SageMaker: the platform's own PIER_* / SAGEMAKER_* variables are not inherited.
NOT_INHERITED = ("PIER_", "SAGEMAKER_")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: not C:
_ERROR_LINE = re.compile(r" (?:ERROR|CRITICAL) \[\d+\] [\w.]+: (.+)$")  # serving's log format


def default_serve_command() -> list[str]:
    """`pier serve` from this environment: the `pier` script beside the interpreter."""
    script = Path(sys.executable).with_name("pier")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "serve"]
    # pier.cli.main has no `__main__` guard: call its entry point.
    return [sys.executable, "-c", "from pier.cli.main import main; main()", "serve"]


def _other_backend(record: Path) -> bool:
    """Whether an instance record is another backend's (it says so: `"backend": "docker"`)."""
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("backend", "process") != "process"


def _reserve_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def _model_uri(model_path: str) -> str:
    """URIs pass as they are; a relative path is made absolute (the child's cwd differs)."""
    if _URI_SCHEME.match(model_path):
        return model_path
    return str(Path(model_path).absolute())


def _describe_exit(pid: int | None, code: int | None) -> str:
    if code is None:
        return f"the process {pid} is gone"
    if code < 0:
        try:
            return f"pier serve (pid {pid}) was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"pier serve (pid {pid}) was killed by signal {-code}"
    return f"pier serve (pid {pid}) exited with code {code}"


@dataclass(frozen=True)
class _Placement:
    """Where an instance's server runs: pier's own environment (env_dir None, model_uri as the
    spec gives it) or a model's virtualenv (with the model's local directory)."""

    model_uri: str
    env_dir: Path | None = None


@dataclass(frozen=True)
class _Decided:
    """A model's decision, cached per model URI and env manager: the model's environment when
    it needs its own (with its local directory), None for pier's own."""

    model_dir: Path | None
    env: model_env.ModelEnvironment | None


@dataclass
class _Process:
    """A running instance's process: our child, or adopted from a previous platform."""

    pid: int
    start_ticks: int | None
    popen: subprocess.Popen[bytes] | None = None  # None when adopted (not our child)
    reservation: socket.socket | None = None  # the port, until the child listens

    def exited(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is not None  # also reaps it
        return not is_running(self.pid, self.start_ticks)

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.returncode

    def send(self, sig: signal.Signals, group: bool = False) -> None:
        # exited() first: our child stays a zombie until polled and an adopted process is
        # checked against its start time, so the pid cannot belong to someone else here.
        if self.exited():
            return
        try:
            if group and os.getpgid(self.pid) == self.pid:  # its own session: its workers too
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    async def wait(self, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.exited():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(ping.POLL_INTERVAL_S)
        return True

    def release_port(self) -> None:
        if self.reservation is not None:
            self.reservation.close()
            self.reservation = None


#: Variables of a container `Environment` that would change which code an instance process
#: runs (the interpreter's search path and startup, the dynamic linker's preloads and library
#: path, which `serve` PATH finds). In a container they stay inside the container; a process
#: instance runs beside the platform with the platform user's rights, so pier refuses them
#: there (docs/hosting.md, "Container environment").
CODE_CHANGING = frozenset(
    {
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "PYTHONEXECUTABLE",
        "PYTHONBREAKPOINT",
        "PYTHONINSPECT",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
    }
)
#: What the backend sets itself for each instance (where it serves, what, and its log).
SET_BY_PIER = frozenset(
    {"PIER_MODEL_URI", "PIER_HOST", "PIER_PORT", "SAGEMAKER_BIND_TO_PORT", "PIER_LOG_FILE"}
)


def environment_problem(environment: Mapping[str, str]) -> str | None:
    """Why a container `Environment` cannot reach a process instance, or None: it names a
    variable of CODE_CHANGING or SET_BY_PIER. Serving settings (`PIER_MAX_BODY_BYTES`,
    `PIER_ENV_MANAGER`, ...) and the model's own variables pass."""
    changing = sorted(k for k in environment if k in CODE_CHANGING)
    if changing:
        return (
            f"Environment {', '.join(changing)}: these change what code the instance process "
            "runs, and a process instance is not isolated as a container is. Remove them from "
            "the container's Environment, or serve the model in a container "
            "(`pier up --backend docker`)."
        )
    reserved = sorted(k for k in environment if k in SET_BY_PIER)
    if reserved:
        return (
            f"Environment {', '.join(reserved)}: pier sets these for each instance (where it "
            "serves and what). Remove them from the container's Environment."
        )
    return None


class ProcessBackend:
    """Instances as `pier serve` processes on this machine.

    `serve_command` is the command before the options the backend appends (`--model-uri`,
    `--host`, `--port`, `--log-file`); default `pier serve` of this environment. `base_env` is
    the environment the children inherit (default: this process's), less PIER_* and
    SAGEMAKER_* variables; each spec's environment is added to it. `env_manager` is the default
    env manager (a spec's PIER_ENV_MANAGER overrides it); model environments are cached in
    `env_cache` (default state_dir/envs), models downloaded to read theirs in `model_cache`
    (default state_dir/models/mlflow).
    """

    name = "process"

    def __init__(
        self,
        state_dir: Path,
        serve_command: Sequence[str] | None = None,
        base_env: Mapping[str, str] | None = None,
        *,
        env_manager: str = environments.EnvManager.AUTO,
        env_cache: Path | None = None,
        model_cache: Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.env_manager = environments.env_manager(env_manager, "the env manager")
        self.env_cache = Path(env_cache or self.state_dir / "envs").absolute()
        self._model_cache = Path(model_cache or self.state_dir / "models" / "mlflow").absolute()
        # One decision per model and env manager; concurrent launches await the same one.
        self._decisions: dict[tuple[str, environments.EnvManager], asyncio.Task[_Decided]] = {}
        self._command = (
            list(serve_command) if serve_command is not None else default_serve_command()
        )
        inherited = os.environ if base_env is None else base_env
        self._base_env = {k: v for k, v in inherited.items() if not k.startswith(NOT_INHERITED)}
        self._instances: dict[str, Instance] = {}
        self._procs: dict[str, _Process] = {}

    # ------------------------------------------------------------------ interface
    def can_run(self, image: str | None) -> bool:
        return is_mlflow_image(image)

    def cannot_run(self, image: str | None) -> str | None:
        if self.can_run(image):
            return None
        return (
            f"Image {image!r} cannot run on pier's process backend: it runs MLflow models "
            "(Image unset, 'pier/mlflow-pyfunc', or any image name containing 'mlflow-pyfunc'). "
            "Other images run in containers: start a Docker Engine and `pier up` again."
        )

    async def launch(self, spec: InstanceSpec) -> Instance:
        if spec.instance_id in self._instances:
            raise ValidationException(f"Instance {spec.instance_id} exists already: stop it first.")
        directory = self._dir(spec.instance_id)
        directory.mkdir(parents=True, exist_ok=True)
        write_owner(directory, spec)
        problem = environment_problem(spec.environment)
        if problem is not None:
            return self._failed_before_start(spec, directory, problem)
        try:
            placement = await self._place(spec, directory / LOG_FILE)
        except (ModelEnvironmentError, ValidationException) as exc:
            return self._failed_before_start(spec, directory, exc.message)
        reservation = _reserve_port()
        port = reservation.getsockname()[1]
        instance = Instance(
            spec=spec,
            url=f"http://{HOST}:{port}",
            pid=None,
            state=InstanceState.PENDING,
            started_at=datetime.now(UTC),
            log_path=directory / LOG_FILE,
        )
        self._instances[spec.instance_id] = instance
        env = {**self._base_env, "PYTHONUNBUFFERED": "1", **spec.environment}
        env.update(workers_environment(spec.environment))  # one CPU left to the platform
        if placement.env_dir is None:
            env["PIER_ENV_MANAGER"] = "local"  # decided here: pier serve must not decide again
            command = [*self._command, "--model-uri", _model_uri(placement.model_uri)]
            # stderr goes to serve.log (it also holds what is printed before logging starts,
            # and tracebacks); --log-file would write every line a second time.
            command += ["--host", HOST, "--port", str(port), "--log-file", os.devnull]
        else:  # the environment's `serve`, configured as a container is: by variables
            command = [str(placement.env_dir / "bin" / "serve")]
            env.update(
                PIER_MODEL_URI=placement.model_uri,
                PIER_HOST=HOST,
                PIER_PORT=str(port),
                SAGEMAKER_BIND_TO_PORT=str(port),  # what `serve` obeys first, as on SageMaker
                PIER_LOG_FILE=os.devnull,
            )
        try:
            with instance.log_path.open("ab") as out:
                header = f"# {instance.started_at:%Y-%m-%d %H:%M:%S} pier: {shlex.join(command)}\n"
                out.write(header.encode())
                out.flush()
                popen = subprocess.Popen(
                    command,
                    env=env,
                    cwd=directory,  # files a model or MLflow writes land with the instance
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # not killed by a Ctrl-C meant for the platform
                )
        except OSError as exc:
            reservation.close()
            instance.state = InstanceState.FAILED
            instance.failure = f"Cannot start {command[0]}: {exc}"
            return instance
        stat = proc_stat(popen.pid)
        proc = _Process(popen.pid, stat[1] if stat else None, popen, reservation)
        self._procs[spec.instance_id] = proc
        instance.pid = popen.pid
        self._write_record(instance, proc)
        log.info("launched %s (pid %d) on %s", spec.instance_id, popen.pid, instance.url)
        return instance

    async def _place(self, spec: InstanceSpec, log_path: Path) -> _Placement:
        """Which environment serves the spec's model (see the module docstring); builds the
        model's virtualenv when needed, its progress lines going to the instance's log."""
        given = spec.environment.get(environments.ENV_MANAGER_VARIABLE)
        manager = self.env_manager if given is None else environments.env_manager(given)
        key = (spec.model_path, manager)
        task = self._decisions.get(key)
        if task is not None and task.done() and not task.cancelled() and task.exception() is None:
            dir_ = task.result().model_dir
            if dir_ is not None and not dir_.is_dir():  # housekeeping removed the download
                task = None
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(self._decide, spec.model_path, manager))
            self._decisions[key] = task
        try:
            decided = await asyncio.shield(task)  # a cancelled launch leaves it to the others
        except Exception:
            self._decisions.pop(key, None)  # decide again next time (the model may be fixed)
            raise
        if decided.env is None:
            return _Placement(spec.model_path)  # pier's own environment: as it always was

        def progress(line: str) -> None:
            with log_path.open("a") as out:
                out.write(f"# {datetime.now(UTC):%Y-%m-%d %H:%M:%S} pier: {line}\n")

        env = decided.env
        env_dir = await asyncio.to_thread(
            environments.ensure, env, self.env_cache, progress=progress
        )
        return _Placement(str(decided.model_dir), env_dir)

    def _decide(self, model_path: str, manager: environments.EnvManager) -> _Decided:
        """Read the model's environment and apply `manager` (blocking: in a worker thread)."""
        try:
            model_dir = model_local.local_model_dir(model_path, self._model_cache)
            env = model_env.read(model_dir)
        except ValidationException as exc:
            if manager is environments.EnvManager.VIRTUALENV:
                raise
            # Not a readable model: the server in pier's environment says so, as it always has.
            log.warning("%s; serving %s in pier's own environment", exc.message, model_path)
            return _Decided(None, None)
        decision = environments.decide(env, manager, model_path)
        return _Decided(model_dir, env if decision.virtualenv else None)

    def _failed_before_start(self, spec: InstanceSpec, directory: Path, reason: str) -> Instance:
        instance = Instance(
            spec=spec,
            url=f"http://{HOST}:0",
            pid=None,
            state=InstanceState.FAILED,
            started_at=datetime.now(UTC),
            log_path=directory / LOG_FILE,
            failure=reason,
        )
        with instance.log_path.open("a") as out:
            out.write(f"# {instance.started_at:%Y-%m-%d %H:%M:%S} pier: {reason}\n")
        self._instances[spec.instance_id] = instance
        log.warning("instance %s failed before it started: %s", spec.instance_id, reason)
        return instance

    async def wait_healthy(self, instance: Instance, timeout_s: float | None = None) -> Instance:
        return await ping.wait_healthy(self, instance, timeout_s)

    async def health(self, instance: Instance) -> bool:
        return await ping.health(self, instance)

    async def stop(self, instance: Instance, grace_s: float = DEFAULT_STOP_GRACE_S) -> None:
        proc = self._procs.get(instance.instance_id)
        if proc is not None:
            if proc.exited():
                if instance.state is not InstanceState.FAILED:
                    self._mark_exited(instance, proc)
            else:
                proc.send(signal.SIGTERM)  # SageMaker's stop: drain in-flight requests, exit
                if not await proc.wait(grace_s):
                    log.warning("%s did not stop in %g s: SIGKILL", instance.instance_id, grace_s)
                    proc.send(signal.SIGKILL, group=True)
                    await proc.wait(10.0)
                instance.exit_code = proc.returncode
            proc.release_port()
        self._procs.pop(instance.instance_id, None)
        self._instances.pop(instance.instance_id, None)
        self._record_path(instance.instance_id).unlink(missing_ok=True)
        if instance.state is not InstanceState.FAILED:
            instance.state = InstanceState.STOPPED
            log.info("stopped %s (exit code %s)", instance.instance_id, instance.exit_code)

    def list(self) -> list[Instance]:
        return list(self._instances.values())

    async def adopt(self) -> builtins.list[Instance]:
        adopted: list[Instance] = []
        records = sorted(self.state_dir.glob(f"instances/*/{RECORD_FILE}"))
        async with ping.client() as client:
            for path in records:
                if _other_backend(path):
                    continue  # a container's record: the Docker backend adopts it
                try:
                    instance, proc = self._read_record(path)
                except (OSError, ValueError, KeyError, TypeError, ValidationException) as exc:
                    log.warning("forgetting unreadable instance record %s: %s", path, exc)
                    path.unlink(missing_ok=True)
                    continue
                if instance.instance_id in self._instances:
                    continue
                if not is_running(proc.pid, proc.start_ticks):
                    log.info("forgetting %s: process %d is gone", instance.instance_id, proc.pid)
                    path.unlink(missing_ok=True)
                    continue
                self._instances[instance.instance_id] = instance
                self._procs[instance.instance_id] = proc
                await self._check(instance, client)
                log.info("adopted %s (pid %d): %s", instance.instance_id, proc.pid, instance.state)
                adopted.append(instance)
        return adopted

    def log_tail(self, instance: Instance, lines: int = 40) -> str:
        try:
            with instance.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
                data = f.read()
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    # ------------------------------------------------------------------ internals
    async def _check(self, instance: Instance, client: httpx.AsyncClient) -> bool:
        """One health check: the process first (it may have exited), then GET /ping."""
        if instance.state in (InstanceState.FAILED, InstanceState.STOPPED):
            return False
        proc = self._procs.get(instance.instance_id)
        if proc is None or proc.exited():
            self._mark_exited(instance, proc)
            return False
        try:
            ok = (await client.get(instance.url + "/ping")).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok and instance.state is not InstanceState.PENDING:
            # A process being killed stops answering before the last of its threads is gone
            # and it can be reaped: give it a moment, so that a dead instance reads FAILED.
            for _ in range(10):
                if proc.exited():
                    break
                await asyncio.sleep(0.05)
        if ok:
            proc.release_port()  # it listens: the port is held by the child now
            instance.state = InstanceState.HEALTHY
        elif proc.exited():  # /ping failed because it just died
            self._mark_exited(instance, proc)
        elif instance.state is InstanceState.HEALTHY:
            instance.state = InstanceState.UNHEALTHY
        return ok  # (a PENDING instance stays PENDING while its model loads)

    def _mark_exited(self, instance: Instance, proc: _Process | None) -> None:
        code = proc.returncode if proc else None
        when = " before answering /ping with 200" if instance.state is InstanceState.PENDING else ""
        tail = self.log_tail(instance, ping.FAILURE_LOG_LINES)
        errors = [m.group(1) for m in map(_ERROR_LINE.search, tail.splitlines()) if m]
        reason = f": {errors[-1]}" if errors else ""  # the last error first, then the context
        instance.state = InstanceState.FAILED
        instance.exit_code = code
        instance.failure = (
            f"{_describe_exit(instance.pid, code)}{when}{reason}. Last log lines:\n{tail}"
        )
        if proc is not None:
            proc.release_port()
        self._record_path(instance.instance_id).unlink(missing_ok=True)  # nothing to adopt
        log.warning("instance %s failed: %s", instance.instance_id, instance.failure)

    def _dir(self, instance_id: str) -> Path:
        return self.state_dir / "instances" / instance_id

    def _record_path(self, instance_id: str) -> Path:
        return self._dir(instance_id) / RECORD_FILE

    def _write_record(self, instance: Instance, proc: _Process) -> None:
        record: dict[str, Any] = {
            "version": 1,
            "pid": proc.pid,
            "start_ticks": proc.start_ticks,
            "url": instance.url,
            "started_at": instance.started_at.isoformat(),
            "spec": asdict(instance.spec),
        }
        path = self._record_path(instance.instance_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, path)  # a crash never leaves half a record

    def _read_record(self, path: Path) -> tuple[Instance, _Process]:
        record = json.loads(path.read_text())
        spec = InstanceSpec(**record["spec"])
        if spec.instance_id != path.parent.name:
            raise ValueError(f"the record names instance {spec.instance_id!r}")
        proc = _Process(int(record["pid"]), record["start_ticks"])
        instance = Instance(
            spec=spec,
            url=str(record["url"]),
            pid=proc.pid,
            state=InstanceState.PENDING,
            started_at=datetime.fromisoformat(record["started_at"]),
            log_path=path.parent / LOG_FILE,
        )
        return instance, proc
