"""DockerBackend with a real Docker Engine and a tiny `serve` image: launch, health, limits,
crash, stop (SIGTERM, then SIGKILL after the grace), adoption, missing images, logs.

These tests need a Docker Engine and fail (never skip) without one: `docker_client` connects.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pier.hosting.base import InstanceSpec, InstanceState, new_instance_id
from pier.hosting.dispatch import DispatchBackend
from pier.hosting.docker_backend import DockerBackend
from pier.hosting.docker_engine import connect
from pier.hosting.instance_types import GIB
from pier.hosting.process import ProcessBackend
from tests.containers.images import tiny_image

pytestmark = pytest.mark.docker  # needs a Docker Engine: the main Python's suite only

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiny"


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    client = connect()  # DockerUnavailable fails the tests: they must not pass unseen
    yield client
    client.close()


@pytest.fixture(scope="module")
def tiny(docker_client: Any) -> Iterator[str]:
    with tiny_image(docker_client) as tag:
        yield tag


@pytest.fixture(scope="module")
def tiny_with_model(docker_client: Any) -> Iterator[str]:
    with tiny_image(docker_client, model_text="baked into the image") as tag:
        yield tag


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "model.txt").write_text("mounted from the host")
    return directory


@pytest.fixture
def state_dir(tmp_path: Path, docker_client: Any) -> Iterator[Path]:
    """The backends' home; every container labelled with it is removed afterwards."""
    state = tmp_path / "state"
    yield state
    for container in docker_client.containers.list(
        all=True, filters={"label": f"pier.home={state.absolute()}"}
    ):
        container.remove(force=True)


@pytest.fixture
def make_backend(state_dir: Path, docker_client: Any) -> Callable[..., DockerBackend]:
    def make(**kwargs: Any) -> DockerBackend:
        return DockerBackend(state_dir, client=docker_client, **kwargs)

    return make


def spec(image: str | None, model: Path | str = "", **kwargs: Any) -> InstanceSpec:
    return InstanceSpec(
        endpoint="ep",
        variant="v1",
        instance_id=new_instance_id("ep", "v1"),
        model_path=str(model),
        image=image,
        **kwargs,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def started(backend: DockerBackend, s: InstanceSpec, timeout: float = 60) -> Any:
    instance = await backend.launch(s)
    await backend.wait_healthy(instance, timeout)
    return instance


def invoke(url: str, body: str = "hello") -> dict[str, Any]:
    response = httpx.post(url + "/invocations", content=body, timeout=10)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def container_of(client: Any, instance_id: str) -> Any:
    (found,) = client.containers.list(all=True, filters={"label": f"pier.instance={instance_id}"})
    return found


# ------------------------------------------------------------------------------ launching


def test_launch_serves_the_mounted_model_read_only_with_the_environment(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, docker_client: Any
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        s = spec(tiny, model_dir, environment={"GREETING": "hi"}, instance_type="ml.m5.large")
        instance = await started(backend, s)
        assert instance.state is InstanceState.HEALTHY, instance.failure
        answer = await asyncio.to_thread(invoke, instance.url, "hello")
        container = await asyncio.to_thread(container_of, docker_client, instance.instance_id)
        await backend.stop(instance, grace_s=10)
        return instance, answer, container

    instance, answer, container = run(scenario())
    assert answer == {
        "echo": "hello",
        "model": "mounted from the host",
        "greeting": "hi",
        "model_writable": False,
    }
    mounts = container.attrs["Mounts"]
    assert [(m["Source"], m["Destination"], m["RW"]) for m in mounts] == [
        (str(model_dir), "/opt/ml/model", False)
    ]
    assert container.attrs["Config"]["Cmd"] == ["serve"]
    assert container.labels["pier.endpoint"] == "ep"
    assert container.labels["pier.variant"] == "v1"
    assert container.labels["pier.instance"] == instance.instance_id
    assert container.labels["pier.home"] == str(backend.state_dir)
    assert instance.state is InstanceState.STOPPED
    assert instance.exit_code == 0  # it drained on SIGTERM


def test_port_is_published_on_loopback_only(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, docker_client: Any
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        instance = await started(backend, spec(tiny, model_dir))
        container = await asyncio.to_thread(container_of, docker_client, instance.instance_id)
        await backend.stop(instance, grace_s=10)
        return instance, container

    instance, container = run(scenario())
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    published = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert [p["HostIp"] for p in published] == ["127.0.0.1"]
    assert instance.url == f"http://127.0.0.1:{published[0]['HostPort']}"


@pytest.mark.parametrize(
    ("instance_type", "cpus", "gib"),
    [("ml.m5.large", 2, 8), ("ml.t2.medium", 2, 4), ("ml.c5.xlarge", 4, 8)],
)
def test_limits_come_from_the_instance_type(
    make_backend: Callable[..., DockerBackend],
    tiny: str,
    model_dir: Path,
    docker_client: Any,
    instance_type: str,
    cpus: int,
    gib: int,
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        instance = await started(backend, spec(tiny, model_dir, instance_type=instance_type))
        container = await asyncio.to_thread(container_of, docker_client, instance.instance_id)
        await backend.stop(instance, grace_s=10)
        return container

    host = run(scenario()).attrs["HostConfig"]
    assert host["NanoCpus"] == min(cpus, os.cpu_count() or 1) * 10**9
    assert host["Memory"] == gib * GIB
    assert host["MemorySwap"] == gib * GIB


def test_instance_pid_is_the_containers_main_process(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        instance = await started(backend, spec(tiny, model_dir))
        cmdline = Path(f"/proc/{instance.pid}/cmdline").read_bytes().split(b"\0")
        await backend.stop(instance, grace_s=10)
        return cmdline

    cmdline = run(scenario())
    assert cmdline[:2] == [b"/usr/bin/python3", b"/usr/local/bin/serve"]


def test_a_model_inside_its_image_gets_no_mount(
    make_backend: Callable[..., DockerBackend], tiny_with_model: str, docker_client: Any
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        instance = await started(backend, spec(tiny_with_model))
        answer = await asyncio.to_thread(invoke, instance.url)
        container = await asyncio.to_thread(container_of, docker_client, instance.instance_id)
        await backend.stop(instance, grace_s=10)
        return answer, container

    answer, container = run(scenario())
    assert answer["model"] == "baked into the image"
    assert container.attrs["Mounts"] == []


def test_an_ecr_uri_runs_the_image_it_is_mapped_to(
    make_backend: Callable[..., DockerBackend], tiny_with_model: str
) -> None:
    backend = make_backend(image_map={ECR: tiny_with_model})

    async def scenario() -> Any:
        instance = await started(backend, spec(f"{ECR}:3"))  # by repository: any tag
        answer = await asyncio.to_thread(invoke, instance.url)
        await backend.stop(instance, grace_s=10)
        return instance, answer

    instance, answer = run(scenario())
    assert instance.exit_code == 0
    assert answer["model"] == "baked into the image"


def test_missing_image_fails_saying_how_to_build_or_map_it(
    make_backend: Callable[..., DockerBackend],
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        instance = await backend.launch(spec(f"{ECR}:1"))
        await backend.wait_healthy(instance, 10)
        await backend.stop(instance)
        return instance

    instance = run(scenario())
    assert instance.state is InstanceState.FAILED
    assert instance.failure is not None
    assert f"Image {ECR}:1 does not exist in the local Docker Engine" in instance.failure
    assert "pier build" in instance.failure
    assert "docker build" in instance.failure
    assert "--map-image" in instance.failure
    assert "does not exist" in instance.log_path.read_text()  # `pier logs` says why too


def test_image_without_serve_fails_naming_the_contract(
    make_backend: Callable[..., DockerBackend], model_dir: Path
) -> None:
    from tests.containers.images import BASE_IMAGE

    backend = make_backend()
    instance = run(backend.launch(spec(BASE_IMAGE, model_dir)))
    assert instance.state is InstanceState.FAILED
    assert "has no `serve` executable" in (instance.failure or "")
    run(backend.stop(instance))


# ------------------------------------------------------------------------------ failures


def test_crashed_container_is_failed_with_exit_code_and_log_tail(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, docker_client: Any
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        instance = await started(backend, spec(tiny, model_dir, environment={
            "TINY_CRASH_AFTER": "1"}))  # fmt: skip
        assert instance.state is InstanceState.HEALTHY
        for _ in range(200):
            if not await backend.health(instance):
                break
            await asyncio.sleep(0.05)
        return instance

    instance = run(scenario())
    assert instance.state is InstanceState.FAILED
    assert instance.exit_code == 3
    assert "exited with code 3" in (instance.failure or "")
    assert "tiny: crashing on purpose" in (instance.failure or "")
    assert backend.list() == [instance]  # FAILED instances stay listed until stopped
    # The dead container is removed; its log stays.
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"pier.instance={instance.instance_id}"}
        )
        == []
    )
    assert "crashing on purpose" in instance.log_path.read_text()
    run(backend.stop(instance))
    assert backend.list() == []


def test_stop_sends_sigterm_then_sigkill_after_the_grace(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, docker_client: Any
) -> None:
    backend = make_backend()

    async def scenario() -> Any:
        s = spec(tiny, model_dir, environment={"TINY_IGNORE_TERM": "1"})
        instance = await started(backend, s)
        await backend.stop(instance, grace_s=2)
        return instance

    instance = run(scenario())
    assert instance.state is InstanceState.STOPPED
    assert instance.exit_code == 137  # SIGKILL, after SIGTERM was ignored
    assert "tiny: got SIGTERM, ignoring it" in instance.log_path.read_text()
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"pier.instance={instance.instance_id}"}
        )
        == []
    )
    assert not (instance.log_path.parent / "instance.json").exists()


def test_a_launch_cancelled_midway_leaves_no_container(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, docker_client: Any
) -> None:
    backend = make_backend()
    s = spec(tiny, model_dir)

    async def scenario() -> None:
        task = asyncio.ensure_future(backend.launch(s))
        await asyncio.sleep(0.05)  # the container is being created in a thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        task.cancel()  # a second cancel (a caller cleaning up) does not stop the clean-up
        for _ in range(200):  # the container it started is stopped in the background
            if not backend.list():
                break
            await asyncio.sleep(0.05)

    run(scenario())
    assert backend.list() == []
    assert (
        docker_client.containers.list(all=True, filters={"label": f"pier.instance={s.instance_id}"})
        == []
    )


# ------------------------------------------------------------------------------ adoption and logs


def test_a_new_backend_adopts_running_containers_and_forgets_dead_ones(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, docker_client: Any
) -> None:
    first = make_backend()

    async def launch_two() -> Any:
        alive = await started(first, spec(tiny, model_dir))
        doomed = await started(first, spec(tiny, model_dir))
        return alive, doomed

    alive, doomed = run(launch_two())
    first.release()  # the platform is gone: its log copies end, its containers run on
    container_of(docker_client, doomed.instance_id).kill()  # dies while no platform watches
    record = json.loads((alive.log_path.parent / "instance.json").read_text())
    assert record["backend"] == "docker"
    assert record["spec"]["endpoint"] == "ep"

    second = make_backend()  # a restarted platform
    adopted = run(second.adopt())
    assert [i.instance_id for i in adopted] == [alive.instance_id]
    (instance,) = adopted
    assert instance.state is InstanceState.HEALTHY
    assert instance.url == alive.url
    assert instance.pid == alive.pid
    assert not (doomed.log_path.parent / "instance.json").exists()
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"pier.instance={doomed.instance_id}"}
        )
        == []
    )
    # The log keeps growing after the adoption, without repeating what was copied before.
    invoke(instance.url)
    run(second.stop(instance, grace_s=10))
    text = instance.log_path.read_text()
    assert text.count("tiny: listening on 8080") == 1
    assert "tiny: got SIGTERM, draining" in text


def test_process_backend_leaves_container_records_alone(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, state_dir: Path
) -> None:
    backend = make_backend()
    instance = run(started(backend, spec(tiny, model_dir)))
    assert run(ProcessBackend(state_dir).adopt()) == []
    assert (instance.log_path.parent / "instance.json").exists()
    run(backend.stop(instance, grace_s=10))


# ------------------------------------------------------------------------------ dispatch


def test_dispatch_runs_other_images_in_docker(
    make_backend: Callable[..., DockerBackend], tiny: str, model_dir: Path, state_dir: Path
) -> None:
    dispatch = DispatchBackend(ProcessBackend(state_dir), make_backend())
    assert dispatch.cannot_run(tiny) is None
    assert dispatch.cannot_run(None) is None

    async def scenario() -> Any:
        instance = await dispatch.launch(spec(tiny, model_dir))
        await dispatch.wait_healthy(instance, 60)
        listed = [i.instance_id for i in dispatch.list()]
        await dispatch.stop(instance, grace_s=10)
        return instance, listed

    instance, listed = run(scenario())
    assert listed == [instance.instance_id]
    assert instance.exit_code == 0
    assert "tiny: listening on 8080" in instance.log_path.read_text()  # a container's log


def test_without_an_engine_other_images_are_refused_saying_why(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{state_dir}/no-docker.sock")
    dispatch = DispatchBackend(ProcessBackend(state_dir), DockerBackend(state_dir))
    assert dispatch.cannot_run(None) is None  # MLflow models still run as processes
    assert dispatch.cannot_run("pier/mlflow-pyfunc") is None
    problem = dispatch.cannot_run(f"{ECR}:1")
    assert problem is not None
    assert f"Image '{ECR}:1' runs in a container: No Docker Engine answers" in problem
    assert "scripts/docker-engine up" in problem
    instance = run(dispatch.launch(spec(f"{ECR}:1")))
    assert instance.state is InstanceState.FAILED
    assert "No Docker Engine answers" in (instance.failure or "")


# ------------------------------------------------------------------------------ MLflow models


def test_an_mlflow_model_runs_in_pier_serving_image_of_its_environment(
    make_backend: Callable[..., DockerBackend],
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: Any,
) -> None:
    from tests.containers.images import BASE_IMAGE
    from tests.hosting import EXPECTED, PAYLOAD, save_linear_model

    model = save_linear_model(tmp_path_factory.mktemp("mlflow") / "linear")
    backend = make_backend(base_image=BASE_IMAGE)

    async def scenario() -> Any:
        instance = await started(backend, spec(None, model), timeout=120)
        assert instance.state is InstanceState.HEALTHY, instance.failure
        response = await asyncio.to_thread(
            httpx.post, instance.url + "/invocations", json=PAYLOAD, timeout=30
        )
        container = await asyncio.to_thread(container_of, docker_client, instance.instance_id)
        await backend.stop(instance, grace_s=10)
        return instance, response, container

    instance, response, container = run(scenario())
    assert response.json() == EXPECTED
    assert container.attrs["Config"]["Image"].startswith("pier-env:")
    assert instance.exit_code == 0


def test_a_model_in_the_owner_only_home_is_readable_by_the_image_user(
    make_backend: Callable[..., DockerBackend], state_dir: Path, docker_client: Any
) -> None:
    """The platform writes its home under umask 077 (pier.platform.server.run): a model it
    unpacked there is mounted into pier's serving image, whose user is not the platform's, and
    must still load; the home above it stays owner-only."""
    from tests.containers.images import BASE_IMAGE
    from tests.hosting import EXPECTED, PAYLOAD, save_linear_model

    previous = os.umask(0o077)
    try:
        model = save_linear_model(state_dir / "models" / "unpacked")
    finally:
        os.umask(previous)
    backend = make_backend(base_image=BASE_IMAGE)

    async def scenario() -> Any:
        instance = await started(backend, spec(None, model), timeout=120)
        assert instance.state is InstanceState.HEALTHY, instance.failure
        response = await asyncio.to_thread(
            httpx.post, instance.url + "/invocations", json=PAYLOAD, timeout=30
        )
        await backend.stop(instance, grace_s=10)
        return response

    assert run(scenario()).json() == EXPECTED
    assert (state_dir / "models").stat().st_mode & 0o077 == 0
