"""pier.hosting.pids: a recorded pid runs only while it is the same process and not a zombie
(`pier up` right after a SIGKILL said "already running" for the dead platform's zombie)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from pier.hosting import pids
from pier.platform.home import Home


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def wait_for_state(pid: int, letter: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stat = pids.proc_stat(pid)
        if stat is not None and stat[0] == letter:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never reached state {letter}: {pids.proc_stat(pid)}")


def test_a_live_process_runs_and_its_zombie_does_not(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.prepare()
    proc = sleeper()
    try:
        pids.write_pid_file(home.pid_file, proc.pid)
        assert home.running_pid() == proc.pid
        proc.send_signal(signal.SIGKILL)  # not reaped yet: a zombie that kill(pid, 0) finds
        wait_for_state(proc.pid, "Z")
        assert home.running_pid() is None
    finally:
        proc.kill()
        proc.wait()
    assert home.running_pid() is None  # reaped: gone


def test_a_reused_pid_is_not_the_recorded_process(tmp_path: Path) -> None:
    proc = sleeper()
    try:
        ticks = pids.start_ticks(proc.pid)
        assert ticks is not None
        pid_file = tmp_path / "pier.pid"
        pid_file.write_text(f"{proc.pid} {ticks - 1}\n")  # another process that had this pid
        assert pids.running_from_pid_file(pid_file) is None
        pid_file.write_text(f"{proc.pid} {ticks}\n")
        assert pids.running_from_pid_file(pid_file) == proc.pid
        pid_file.write_text(f"{proc.pid}\n")  # an older pier's file: liveness only
        assert pids.running_from_pid_file(pid_file) == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_unreadable_pid_files_are_not_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pier.pid"
    assert pids.running_from_pid_file(pid_file) is None
    for text in ("", "abc", "12x 3"):
        pid_file.write_text(text)
        assert pids.running_from_pid_file(pid_file) is None
