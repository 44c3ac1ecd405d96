"""Whether a recorded process is still the one that was started: pid plus start time.

A pid alone lies twice: a process that exited but was not reaped yet (a zombie) still
answers `kill(pid, 0)`, and a pid is reused by the next process the kernel starts. So pier
records a process's start time (clock ticks since boot, /proc/PID/stat field 22) beside its
pid and counts a pid as running only while it is neither a zombie nor another process.
Without /proc (macOS) only liveness can be checked.
"""

from __future__ import annotations

import os
from pathlib import Path

HAVE_PROC = Path("/proc/self/stat").exists()


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a pid, None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), None without /proc or without the pid."""
    stat = proc_stat(pid)
    return None if stat is None else stat[1]


def is_running(pid: int, ticks: int | None) -> bool:
    """Whether `pid` is alive, not a zombie, and (when `ticks` is known) the process that
    started at `ticks`."""
    if HAVE_PROC:
        stat = proc_stat(pid)
        if stat is None or stat[0] in "ZXx":  # zombie or dead: exited
            return False
        return ticks is None or stat[1] == ticks
    try:  # no /proc (macOS): liveness only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def write_pid_file(path: Path, pid: int) -> None:
    """Record `pid` with its start time (read back by `read_pid_file`)."""
    ticks = start_ticks(pid)
    path.write_text(f"{pid} {ticks}\n" if ticks is not None else f"{pid}\n")


def running_from_pid_file(path: Path) -> int | None:
    """The pid recorded in `path` if that process still runs (see the module docstring);
    None when there is no file, it is unreadable, or its process has exited."""
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
        ticks = int(parts[1]) if len(parts) > 1 else None  # files of older versions: pid only
    except (OSError, ValueError, IndexError):
        return None
    return pid if is_running(pid, ticks) else None
