"""Two `pier up` sharing one PostgreSQL state database: both serve the control API, one leads
(reconciles, schedules monitoring, evaluates alarms); when the leader is killed the other
takes over and brings the endpoints back on its own instances."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.boto3.hosting import SHORT, invoke, variant
from tests.boto3.platform_fixtures import (
    Platform,
    free_port,
    kill_leftovers,
    pid_alive,
    postgres_database,
    save_linear_model,
    serve_processes,
    wait_for,
)

LEADS = "this platform leads"


def _python_children(pid: int) -> list[int]:
    """The Python processes `pid` started that are not instances: the monitoring worker
    and multiprocessing's resource tracker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == pid and b"multiprocessing" in cmdline:
                found.append(int(stat.parent.name))
    return found


def _log(p: Platform) -> str:
    return (p.home / "logs" / "platform.log").read_text(errors="replace")


def test_the_follower_takes_over_when_the_leader_is_killed(tmp_path: Path) -> None:
    model = save_linear_model(tmp_path / "model", 1.0, 2.0, 3.0)
    with postgres_database() as url, contextlib.ExitStack() as stack:
        a = Platform(tmp_path / "a", free_port(), url, "leader")
        b = Platform(tmp_path / "b", free_port(), url, "follower")
        for p in (a, b):
            stack.callback(kill_leftovers, p.home)
            stack.callback(lambda p=p: p.proc is not None and p.proc.poll() is None and p.kill())
        a.start(timeout=300)  # the machine may be busy: no timing is asserted
        b.start(timeout=300)
        assert LEADS in _log(a)
        assert "another platform leads" in _log(b)
        assert LEADS not in _log(b)
        assert "alarm runner: evaluating" not in _log(b)  # the follower runs no loop

        # The follower serves the control API; the leader acts on what it records.
        sm_b = b.client("sagemaker")
        sm_b.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(model.path)})
        sm_b.create_endpoint_config(
            EndpointConfigName="c", ProductionVariants=[variant("main", "m")]
        )
        sm_b.create_endpoint(EndpointName="e", EndpointConfigName="c")
        sm_b.get_waiter("endpoint_in_service").wait(EndpointName="e", WaiterConfig=SHORT)
        assert invoke(a.client("sagemaker-runtime"), "e", [[1.0, 1.0]]) == ("main", [6.0])
        assert len(serve_processes(a.home)) == 1
        assert serve_processes(b.home) == []

        workers = wait_for(lambda: _python_children(a.pid), timeout=120, what="the worker")
        a.kill()  # its session on the database ends: the lock is free
        # Its monitoring worker (and multiprocessing's tracker) follow it.
        wait_for(lambda: not any(pid_alive(p) for p in workers), timeout=60, what="the worker")
        wait_for(lambda: LEADS in _log(b), timeout=60, what="the follower to take over")
        # Its loops start: the reconciler, the scheduler, then the alarm runner.
        wait_for(lambda: "alarm runner: evaluating" in _log(b), timeout=60, what="its loops")
        rt_b = b.client("sagemaker-runtime")

        def served() -> bool:
            with contextlib.suppress(Exception):
                return invoke(rt_b, "e", [[1.0, 1.0]]) == ("main", [6.0])
            return False

        wait_for(served, timeout=120, interval=1, what="the new leader to serve the endpoint")
        assert len(serve_processes(b.home)) == 1
        # It leads alone: a change recorded now is carried out by it.
        sm_b.delete_endpoint(EndpointName="e")
        sm_b.get_waiter("endpoint_deleted").wait(EndpointName="e", WaiterConfig=SHORT)
        assert serve_processes(b.home) == []
        assert b.terminate() == 0
