"""Server processes for the benchmark: free ports, launch, readiness, and a guaranteed stop.

Every server runs in its own session (process group), so stopping it reaches its workers too:
SIGTERM to the group, then SIGKILL to whatever is left after a grace period. Every process
started here is remembered until stopped; `stop_all` (called from run.py's `finally` and at
exit) stops whatever is still running, even after an error or Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"  # traffic goes to the loopback interface only
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_running: dict[int, subprocess.Popen[bytes]] = {}


class ServerFailed(RuntimeError):
    """A server exited or never became ready; the message points at its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout_s: float = 1.0) -> tuple[int, bytes] | None:
    """(status, body) of GET path, or None when nothing answers yet."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def http_post(
    port: int, path: str, body: bytes, content_type: str, timeout_s: float = 30.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def launch(cmd: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `cmd` in a new session with stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _running[proc.pid] = proc
    return proc


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    path: str,
    launched_at: float,
    log_path: Path,
    timeout_s: float = 120.0,
) -> float:
    """Seconds from `launched_at` (a perf_counter value) to the first 200 on GET `path`."""
    deadline = launched_at + timeout_s
    while time.perf_counter() < deadline:
        answer = http_get(port, path, timeout_s=0.5)
        if answer is not None and answer[0] == 200:
            return time.perf_counter() - launched_at
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode} (see {log_path})")
        time.sleep(0.005)
    raise ServerFailed(f"not ready after {timeout_s:.0f} s (see {log_path})")


def wait_all_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    path: str,
    launched_at: float,
    log_path: Path,
    streak: int = 20,
    timeout_s: float = 120.0,
) -> float:
    """Seconds from `launched_at` until `streak` GETs in a row, each on a new connection, get 200.

    With SO_REUSEPORT workers (pier serve --workers N) each connection lands on one worker, and
    one worker's 200 says nothing of the others: a streak of fresh connections reaches them all.
    """
    deadline = launched_at + timeout_s
    ok = 0
    while ok < streak:
        if time.perf_counter() > deadline:
            raise ServerFailed(f"not every worker ready after {timeout_s:.0f} s (see {log_path})")
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode} (see {log_path})")
        answer = http_get(port, path, timeout_s=0.5)
        if answer is not None and answer[0] == 200:
            ok += 1
        else:
            ok = 0
            time.sleep(0.005)
    return time.perf_counter() - launched_at


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the process group; SIGKILL it if anything is left after `grace_s`."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    _running.pop(proc.pid, None)


def stop_all() -> None:
    for proc in list(_running.values()):
        stop(proc, grace_s=5.0)


atexit.register(stop_all)


def _group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in process group `pgid`."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def wait_idle(
    proc: subprocess.Popen[bytes],
    window_s: float = 0.5,
    max_cores: float = 0.05,
    timeout_s: float = 30.0,
) -> float:
    """Wait until the server's processes use under `max_cores` CPU; returns the seconds waited.

    Some servers keep working after /ping says 200 (pier imports MLflow in the background
    after its quick load); measuring load before that ends would charge it to the first run.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = _group_cpu_seconds(proc.pid)
        time.sleep(window_s)
        if _group_cpu_seconds(proc.pid) - before < max_cores * window_s:
            break
    return time.monotonic() - started
