"""ProcessBackend with real `pier serve` processes: launch, health, failure, stop, adoption."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pier.errors import ValidationException
from pier.hosting.base import Backend, InstanceSpec, InstanceState, new_instance_id
from pier.hosting.pids import proc_stat
from pier.hosting.process import ProcessBackend
from tests.hosting import EXPECTED, PAYLOAD, save_linear_model

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_linear_model(tmp_path_factory.mktemp("model") / "linear")


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """The backends' state directory; any process still recorded there is killed afterwards."""
    state = tmp_path / "state"
    yield state
    for record in state.glob("instances/*/instance.json"):
        data = json.loads(record.read_text())
        stat = proc_stat(data["pid"])
        if stat is not None and stat[1] == data["start_ticks"]:
            os.kill(data["pid"], signal.SIGKILL)


@pytest.fixture
def make_backend(state_dir: Path) -> Iterator[Callable[..., ProcessBackend]]:
    """ProcessBackends on `state_dir`; whatever they still run is stopped afterwards."""
    made: list[ProcessBackend] = []

    def make(**kwargs: object) -> ProcessBackend:
        backend = ProcessBackend(state_dir, **kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make

    async def stop_all() -> None:
        for backend in made:
            for instance in backend.list():
                await backend.stop(instance, grace_s=5)

    asyncio.run(stop_all())


def spec(model: Path | str, variant: str = "v1", **kwargs: object) -> InstanceSpec:
    return InstanceSpec(
        endpoint="ep",
        variant=variant,
        instance_id=new_instance_id("ep", variant),
        model_path=str(model),
        **kwargs,  # type: ignore[arg-type]
    )


def wait_exited(pid: int, timeout: float = 10) -> None:
    """Until the pid is gone or a zombie (killed, not reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still running")


def invoke(url: str) -> httpx.Response:
    return httpx.post(url + "/invocations", json=PAYLOAD, timeout=10)


def test_can_run_and_protocol(tmp_path: Path) -> None:
    backend = ProcessBackend(tmp_path)
    assert isinstance(backend, Backend)
    for image in (None, "", "pier/mlflow-pyfunc", "123.dkr.ecr.aws/mlflow-pyfunc:2.1"):
        assert backend.can_run(image)
    assert not backend.can_run("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference")


def test_instance_ids_and_environment_are_checked() -> None:
    with pytest.raises(ValidationException, match="Invalid instance id"):
        InstanceSpec(endpoint="ep", variant="v", instance_id="../x", model_path="m")
    with pytest.raises(ValidationException, match="environment variable"):
        spec("m", environment={"A=B": "1"})
    assert new_instance_id("ep", "v1").startswith("ep-v1-")
    assert new_instance_id("ep", "v1") != new_instance_id("ep", "v1")


@slow
def test_two_instances_serve_then_one_is_killed_and_the_other_drains(
    model: Path, state_dir: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        first, second = [await backend.launch(spec(model, v)) for v in ("blue", "green")]
        assert {first.state, second.state} == {InstanceState.PENDING}
        await asyncio.gather(backend.wait_healthy(first), backend.wait_healthy(second))
        assert (first.state, second.state) == (InstanceState.HEALTHY, InstanceState.HEALTHY)
        assert first.url != second.url
        for instance in (first, second):
            assert instance.pid is not None
            assert os.getsid(instance.pid) == instance.pid  # own session: no terminal Ctrl-C
            r = invoke(instance.url)
            assert (r.status_code, r.json()) == (200, EXPECTED)
            assert await backend.health(instance)
            record = state_dir / "instances" / instance.instance_id / "instance.json"
            assert json.loads(record.read_text())["pid"] == instance.pid
            assert "pier serve" in backend.log_tail(instance)
        assert backend.list() == [first, second]

        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        wait_exited(first.pid)
        assert not await backend.health(first)
        assert first.state is InstanceState.FAILED
        assert first.exit_code == -signal.SIGKILL
        assert first.failure is not None
        assert "killed by SIGKILL" in first.failure
        assert not (state_dir / "instances" / first.instance_id / "instance.json").exists()
        assert first in backend.list()  # until the platform stops it
        assert await backend.health(second)

        await backend.stop(second)
        assert (second.state, second.exit_code) == (InstanceState.STOPPED, 0)  # drained
        assert second.pid is not None
        assert proc_stat(second.pid) is None
        assert not (state_dir / "instances" / second.instance_id / "instance.json").exists()
        assert "stopped" in backend.log_tail(second, lines=3)
        await backend.stop(first)
        await backend.stop(second)  # idempotent
        assert first.state is InstanceState.FAILED
        assert backend.list() == []

    asyncio.run(scenario())


@slow
def test_a_model_that_does_not_load_fails_with_the_log_tail(
    tmp_path: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        instance = await backend.launch(spec(tmp_path / "no-such-model"))
        await backend.wait_healthy(instance)
        assert instance.state is InstanceState.FAILED
        assert instance.exit_code == 1
        assert instance.failure is not None
        assert "exited with code 1 before answering /ping with 200: cannot serve:" in (
            instance.failure
        )
        assert "no-such-model" in instance.failure
        assert "Last log lines:\n" in instance.failure
        assert instance in backend.list()
        await backend.stop(instance)
        assert backend.list() == []

    asyncio.run(scenario())


@slow
def test_the_container_environment_reaches_the_instance_not_the_platforms(
    model: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    async def scenario() -> None:
        # The platform's own PIER_* settings are not inherited (this one would not validate)...
        backend = make_backend(base_env={**os.environ, "PIER_MAX_BATCH_ROWS": "0"})
        # ...the container definition's environment is.
        limited = await backend.launch(spec(model, environment={"PIER_MAX_BODY_BYTES": "10"}))
        refused = await backend.launch(
            spec(model, environment={"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"})
        )
        await asyncio.gather(backend.wait_healthy(limited), backend.wait_healthy(refused))
        assert limited.state is InstanceState.HEALTHY, limited.failure
        assert invoke(limited.url).status_code == 413
        assert refused.state is InstanceState.FAILED
        assert refused.failure is not None
        assert "pickle" in refused.failure.lower()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"LD_PRELOAD": "/tmp/evil.so"}, "LD_PRELOAD"),
        ({"PYTHONPATH": "/tmp", "PATH": "/tmp/bin"}, "PATH, PYTHONPATH"),
        ({"PIER_PORT": "80"}, "PIER_PORT"),
        ({"SAGEMAKER_BIND_TO_PORT": "80"}, "SAGEMAKER_BIND_TO_PORT"),
    ],
)
def test_variables_that_change_what_runs_fail_the_instance_before_it_starts(
    model: Path,
    make_backend: Callable[..., ProcessBackend],
    environment: dict[str, str],
    named: str,
) -> None:
    """Container Environment reaches a process instance, which is not isolated: what would
    change the code it runs (or where pier serves it) is refused, saying what to do."""

    async def scenario() -> None:
        backend = make_backend()
        instance = await backend.launch(spec(model, environment=environment))
        assert instance.state is InstanceState.FAILED
        assert instance.pid is None  # nothing was started
        assert instance.failure is not None
        assert instance.failure.startswith(f"Environment {named}: ")
        assert "Remove them" in instance.failure

    asyncio.run(scenario())


def test_serving_settings_and_model_variables_pass_the_environment_check() -> None:
    from pier.hosting.process import environment_problem

    assert environment_problem({"PIER_MAX_BODY_BYTES": "10", "PIER_ENV_MANAGER": "local"}) is None
    assert environment_problem({"MODEL_THRESHOLD": "0.5", "PYTHONHASHSEED": "0"}) is None


@slow
def test_not_healthy_in_time_fails_and_stops_the_instance(
    model: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    async def scenario() -> None:
        backend = make_backend()
        instance = await backend.launch(spec(model, startup_timeout_s=0.01))
        await backend.wait_healthy(instance)
        assert instance.state is InstanceState.FAILED
        assert instance.failure is not None
        assert "did not answer GET /ping with 200 within 0.01 s" in instance.failure
        assert instance.pid is not None
        assert proc_stat(instance.pid) is None
        assert backend.list() == []

    asyncio.run(scenario())


def test_a_command_that_cannot_start_fails_at_launch(
    tmp_path: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    async def scenario() -> None:
        backend = make_backend(serve_command=[str(tmp_path / "no-such-server")])
        instance = await backend.launch(spec(tmp_path))
        assert instance.state is InstanceState.FAILED
        assert instance.failure is not None
        assert instance.failure.startswith("Cannot start")
        assert not await backend.health(instance)
        with pytest.raises(ValidationException, match="exists already"):
            await backend.launch(instance.spec)
        await backend.stop(instance)
        assert backend.list() == []

    asyncio.run(scenario())


# A platform process: launches two instances, waits for them, and exits without stopping them.
PLATFORM = """
import asyncio, json, sys
from pathlib import Path
from pier.hosting.base import InstanceSpec
from pier.hosting.process import ProcessBackend

async def main():
    backend = ProcessBackend(Path(sys.argv[1]))
    launched = {}
    for variant in ("keep", "die"):
        spec = InstanceSpec("ep", variant, f"ep-{variant}-1", sys.argv[2], fleet="cfg@1")
        instance = await backend.wait_healthy(await backend.launch(spec))
        launched[variant] = [instance.pid, instance.url, instance.state]
    print(json.dumps(launched))

asyncio.run(main())
"""


@slow
def test_adopt_takes_over_running_instances_and_forgets_dead_ones(
    model: Path, state_dir: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PLATFORM, str(state_dir), str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    launched = json.loads(out.stdout)
    assert launched["keep"][2] == launched["die"][2] == "Healthy"
    (keep_pid, keep_url, _), (die_pid, _, _) = launched["keep"], launched["die"]
    os.kill(die_pid, signal.SIGKILL)  # dies while no platform runs
    wait_exited(die_pid)
    # A record whose pid is alive but is not the process that was launched (pid reuse).
    stale = state_dir / "instances" / "ep-old-1"
    stale.mkdir(parents=True)
    stat = proc_stat(os.getpid())
    assert stat is not None
    old = InstanceSpec(endpoint="ep", variant="old", instance_id="ep-old-1", model_path="m")
    record = {
        "version": 1,
        "pid": os.getpid(),
        "start_ticks": stat[1] + 1,
        "url": "http://127.0.0.1:9",
        "started_at": "2026-01-01T00:00:00+00:00",
        "spec": dataclasses.asdict(old),
    }
    (stale / "instance.json").write_text(json.dumps(record))
    (state_dir / "instances" / "ep-bad-1").mkdir()
    (state_dir / "instances" / "ep-bad-1" / "instance.json").write_text("{not json")

    async def scenario() -> None:
        backend = make_backend()
        adopted = await backend.adopt()
        assert [i.instance_id for i in adopted] == ["ep-keep-1"]
        instance = adopted[0]
        assert (instance.pid, instance.url, instance.state) == (
            keep_pid,
            keep_url,
            InstanceState.HEALTHY,
        )
        assert instance.spec.fleet == "cfg@1"
        assert instance.spec.model_path == str(model)
        assert backend.list() == [instance]
        records = sorted(p.parent.name for p in state_dir.glob("instances/*/instance.json"))
        assert records == ["ep-keep-1"]  # the dead, the stale and the unreadable are forgotten
        assert await backend.adopt() == []  # already ours
        r = invoke(instance.url)
        assert (r.status_code, r.json()) == (200, EXPECTED)
        assert await backend.health(instance)

        await backend.stop(instance)  # not our child: stopped through its pid
        assert instance.state is InstanceState.STOPPED
        wait_exited(keep_pid)
        assert backend.list() == []
        assert await ProcessBackend(state_dir).adopt() == []

    asyncio.run(scenario())


@slow
def test_instances_run_the_platforms_worker_default_unless_the_environment_names_one(
    model: Path, make_backend: Callable[..., ProcessBackend]
) -> None:
    from pier.settings import instance_workers

    async def scenario() -> None:
        backend = make_backend()
        plain = await backend.launch(spec(model))
        named = await backend.launch(
            spec(model, environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
        )
        await asyncio.gather(backend.wait_healthy(plain), backend.wait_healthy(named))
        for instance, workers in ((plain, instance_workers()), (named, 2)):
            assert instance.state is InstanceState.HEALTHY, instance.failure
            params = httpx.get(instance.url + "/execution-parameters", timeout=10).json()
            assert params["MaxConcurrentTransforms"] == workers

    asyncio.run(scenario())
