"""Suite-wide fixtures."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# ---------------------------------------------------------------- sealed from the environment
# The suite runs pier as a new user would, whatever the shell that starts `make test` holds:
# a PIER_PORT, an AWS profile or a MLFLOW_TRACKING_URI exported there must not reach pier
# (settings read PIER_* and MLflow's variables; boto3 reads AWS_*). Cleared before any test
# module is imported; the suite's own knobs (below) stay.
SUITE_KNOBS = frozenset(
    {"PIER_BASE_IMAGE", "PIER_CHROMIUM", "PIER_CONSOLE_DOCS_SCREENSHOT", "PIER_DOCKER_STATE"}
)
SEALED_PREFIXES = ("PIER_", "AWS_", "MLFLOW_")
for _name in [k for k in os.environ if k.startswith(SEALED_PREFIXES) and k not in SUITE_KNOBS]:
    del os.environ[_name]


# ------------------------------------------------------------------ no process outlives the run
#: Helpers the interpreter itself keeps until it exits (multiprocessing's resource tracker).
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def descendants(root: int) -> dict[int, str]:
    """Every live process under `root`: pid -> command line (Linux's /proc, each thread's
    `children`; elsewhere none). Zombies (ended, not yet reaped) are not alive."""
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = [int(pid) for pid in children.read_text().split()]
            except OSError:  # ended while we looked
                continue
            for pid in pids:
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if pid in found or stat[stat.rindex(")") + 2] == "Z":
                    continue
                found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
                frontier.append(pid)
    return {
        pid: cmd for pid, cmd in found.items() if not any(h in cmd for h in _INTERPRETER_HELPERS)
    }


_first_seen: dict[int, tuple[str, str]] = {}  # pid -> (command, the test after which it ran)


@pytest.fixture(autouse=True)
def _note_running_children(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, note the processes still running under the suite and the test after
    which each was first seen, so a leak found at the end names where it came from."""
    yield
    for pid, cmd in descendants(os.getpid()).items():
        _first_seen.setdefault(pid, (cmd, request.node.nodeid))


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_suite() -> Iterator[None]:
    """Fails the run if any process the suite started is still running once every fixture
    has been torn down: a `pier logs --follow` that ignored SIGINT, a server a test forgot.
    Each is named (command, the test after which it was first seen) and killed (SIGKILL)."""
    yield
    leaked = descendants(os.getpid())
    for pid in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leaked:
        lines = [
            f"  pid {pid}: {cmd[:200]} (running after {_first_seen.get(pid, (cmd, '?'))[1]})"
            for pid, cmd in leaked.items()
        ]
        pytest.fail("processes outlived the suite (now killed):\n" + "\n".join(lines))


@pytest.fixture(scope="module", autouse=True)
def _no_mlflow_environment_leaks_from_modules() -> Iterator[None]:
    """The same for a module's fixtures (set up before the per-test check takes its copy)."""
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.fixture(autouse=True)
def _no_mlflow_environment_leaks() -> Iterator[None]:
    """MLflow's fluent API writes MLFLOW_EXPERIMENT_ID (and the tracking URI) into os.environ,
    where every later subprocess of the suite would inherit a server that is long gone."""
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def migrated_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A state store at the latest migration: SQLite in a temporary directory, and a fresh
    database on the local PostgreSQL (dropped afterwards). Tests using it run on both."""
    from pier.store import db
    from tests.boto3.platform_fixtures import postgres_database

    if request.param == "sqlite":
        engine = db.create(f"sqlite:///{tmp_path_factory.mktemp('store')}/pier.db")
        db.migrate(engine)
        yield engine
        engine.dispose()
        return
    with postgres_database() as url:
        engine = db.create(url)
        db.migrate(engine)
        yield engine
        engine.dispose()
