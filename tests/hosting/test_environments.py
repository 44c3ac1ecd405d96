"""pier.hosting.environments with real uv: decisions, builds, the cache, the lock, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import pytest

from pier.errors import ModelEnvironmentError, ValidationException
from pier.hosting import environments
from pier.hosting.base import Instance, InstanceSpec, InstanceState, new_instance_id
from pier.hosting.environments import EnvManager, decide, ensure
from pier.hosting.model_env import ModelEnvironment
from pier.hosting.process import ProcessBackend

HERE = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
# orjson below SERVING_REQUIREMENTS' orjson>=3.10: the model's pin must win.
SMALL = ModelEnvironment(HERE, ("orjson==3.9.15", "six==1.16.0"), (), "small/requirements.txt")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="module")
def built(cache: Path) -> Path:
    lines: list[str] = []
    path = ensure(SMALL, cache, progress=lines.append)
    assert [line.split(" ")[0] for line in lines] == ["building", "built"]
    return path


def run_in(env_dir: Path, code: str) -> str:
    done = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


# ------------------------------------------------------------------------------ decisions
def test_auto_uses_pier_environment_when_it_satisfies_the_model() -> None:
    installed = metadata.version("scikit-learn")
    env = ModelEnvironment(HERE, (f"scikit-learn=={installed}", "pandas"), (), "r.txt")
    assert decide(env, EnvManager.AUTO) == environments.Decision(False, ())


def test_auto_builds_when_a_pin_differs() -> None:
    env = ModelEnvironment(HERE, ("scikit-learn==1.6.1",), (), "r.txt")
    decision = decide(env, EnvManager.AUTO)
    assert decision.virtualenv
    assert decision.differences == (
        f"scikit-learn==1.6.1: {metadata.version('scikit-learn')} is installed",
    )


def test_auto_builds_for_another_python() -> None:
    env = ModelEnvironment("3.10.4", (), (), "python_env.yaml")
    assert decide(env, EnvManager.AUTO).virtualenv


def test_local_keeps_pier_environment_and_says_what_differs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = ModelEnvironment(HERE, ("scikit-learn==1.6.1",), (), "m/requirements.txt")
    with caplog.at_level(logging.WARNING, logger="pier.hosting.environments"):
        decision = decide(env, EnvManager.LOCAL, "models:/m/1")
    assert not decision.virtualenv
    [record] = caplog.records
    assert "models:/m/1" in record.getMessage()
    assert "scikit-learn==1.6.1" in record.getMessage()
    assert "m/requirements.txt" in record.getMessage()


def test_virtualenv_always_builds() -> None:
    env = ModelEnvironment(HERE, (), (), "")
    assert decide(env, EnvManager.VIRTUALENV).virtualenv


def test_an_unknown_env_manager_is_refused_with_the_choices() -> None:
    with pytest.raises(Exception, match="PIER_ENV_MANAGER must be one of auto, local, virtualenv"):
        environments.env_manager("conda")


# --------------------------------------------------------------------------------- builds
def test_a_built_environment_has_the_model_pins_and_pier_server(built: Path) -> None:
    assert built.name == environments.environment_key(SMALL)
    versions = run_in(
        built,
        "from importlib.metadata import version as v; "
        "print(v('orjson'), v('six'), v('pydantic-settings') is not None)",
    )
    assert versions == "3.9.15 1.16.0 True"  # the model's orjson, not serving's >=3.10
    where = run_in(built, "import pier.settings, pier.errors; print(pier.settings.__file__)")
    assert where.startswith(str(built))
    assert (built / "bin" / "serve").stat().st_mode & 0o111
    info = json.loads((built / environments.INFO_FILE).read_text())
    assert info["requirements"] == list(SMALL.requirements)


def test_serve_runs_in_the_environment(built: Path) -> None:
    done = subprocess.run(
        [str(built / "bin" / "serve"), "--unexpected"], capture_output=True, text=True
    )
    assert done.returncode == 2  # pier.serving's own argument check answered
    assert "configure with environment variables" in done.stderr


def test_the_cache_is_reused_without_building(built: Path, cache: Path) -> None:
    lines: list[str] = []
    before = (built / environments.INFO_FILE).read_text()
    assert ensure(SMALL, cache, progress=lines.append) == built
    assert lines == []
    assert (built / environments.INFO_FILE).read_text() == before


def test_the_same_requirements_share_one_environment(built: Path, cache: Path) -> None:
    other_model = ModelEnvironment(
        HERE[:4] + ".0", tuple(reversed(SMALL.requirements)), (), "other/python_env.yaml"
    )
    assert ensure(other_model, cache) == built


def test_concurrent_builders_of_one_key_build_once(tmp_path: Path) -> None:
    env = ModelEnvironment(HERE, ("six==1.16.0",), (), "r.txt")
    progress: list[list[str]] = [[], [], []]
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(ensure(env, tmp_path, progress=progress[i].append))
        )
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert len(results) == 3
    starts = [line for lines in progress for line in lines if line.startswith("building")]
    waits = [line for lines in progress for line in lines if line.startswith("waiting")]
    assert len(starts) == 1
    assert len(waits) == 2
    assert not list(tmp_path.glob(".build-*"))


def test_builders_in_other_processes_wait_for_the_lock(tmp_path: Path) -> None:
    env = ModelEnvironment(HERE, ("six==1.15.0",), (), "r.txt")
    code = (
        "import sys; from pathlib import Path; from pier.hosting.environments import ensure; "
        "from pier.hosting.model_env import ModelEnvironment as M; "
        f"print(ensure(M({HERE!r}, ('six==1.15.0',), (), 'r.txt'), Path(sys.argv[1]), "
        "progress=lambda l: print(l.split()[0])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(o[0] for o in outputs) == ["building", "waiting"]
    assert {o[-1] for o in outputs} == {str(tmp_path / environments.environment_key(env))}


def test_a_builder_that_died_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    env = ModelEnvironment(HERE, ("six==1.16.0",), (), "r.txt")
    stale = tmp_path / f".build-{environments.environment_key(env)}-dead"
    (stale / "bin").mkdir(parents=True)
    path = ensure(env, tmp_path)
    assert not stale.exists()
    assert run_in(path, "import six; print(six.__version__)") == "1.16.0"


# ------------------------------------------------------------------------------- failures
def test_an_unsatisfiable_requirement_fails_with_the_resolver_message(tmp_path: Path) -> None:
    env = ModelEnvironment(HERE, ("scikit-learn==0.0.1",), (), "bad/requirements.txt")
    with pytest.raises(ModelEnvironmentError) as caught:
        ensure(env, tmp_path)
    message = caught.value.message
    assert message.startswith("Cannot build the model's environment (python ")
    assert "bad/requirements.txt" in message
    assert "no version of scikit-learn==0.0.1" in message
    assert "Traceback" not in message
    assert "Using Python" not in message
    assert caught.value.status == 424
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]  # nothing half-built is left


def test_a_python_this_machine_lacks_is_named() -> None:
    with pytest.raises(ModelEnvironmentError, match=r"needs Python 3\.99 .*pyenv install 3\.99"):
        environments.find_python("3.99")


def test_another_python_is_found_without_downloading() -> None:
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    found = environments.find_python(other)
    version = subprocess.run(
        [str(found), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == other


# ------------------------------------------------------------- the process backend's choice
def launch_once(backend: ProcessBackend, model: Path, environment: dict[str, str]) -> Instance:
    async def scenario() -> Instance:
        spec = InstanceSpec("ep", "v1", new_instance_id("ep", "v1"), str(model), None, environment)
        instance = await backend.launch(spec)
        await backend.stop(instance)
        return instance

    return asyncio.run(scenario())


def test_an_unknown_env_manager_in_the_container_environment_fails_the_instance(
    tmp_path: Path,
) -> None:
    backend = ProcessBackend(tmp_path / "state", env_cache=tmp_path / "envs")
    instance = launch_once(backend, tmp_path, {"PIER_ENV_MANAGER": "conda"})
    assert instance.state is InstanceState.FAILED
    assert instance.pid is None  # nothing was started
    assert instance.failure == (
        "PIER_ENV_MANAGER must be one of auto, local, virtualenv, not 'conda'."
    )
    assert "must be one of" in instance.log_path.read_text()  # pier logs shows it too


def test_virtualenv_needs_a_readable_model(tmp_path: Path) -> None:
    backend = ProcessBackend(tmp_path / "state", env_manager="virtualenv")
    instance = launch_once(backend, tmp_path, {})
    assert instance.state is InstanceState.FAILED
    assert instance.failure == f"{tmp_path} is not an MLflow model: it has no MLmodel file."


def test_an_unknown_platform_default_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationException, match="must be one of auto, local, virtualenv"):
        ProcessBackend(tmp_path, env_manager="pip")
