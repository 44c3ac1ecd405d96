"""The machine: load average, CPU seconds from /proc, and waiting until it is quiet."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import say

OTHER_BENCH = "benchmarks/serving/run.py"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_other_benchmark(max_s: float) -> dict[str, Any]:
    """Wait (polling every 20 s) until no serving benchmark runs; what was waited and seen."""
    started = time.monotonic()
    seen = False
    while True:
        done = subprocess.run(
            ["pgrep", "-f", OTHER_BENCH], capture_output=True, text=True, check=False
        )
        running = done.stdout.split()
        if not running:
            break
        seen = True
        waited = time.monotonic() - started
        if waited >= max_s:
            say(f"{OTHER_BENCH} still running after {waited:.0f} s: measuring anyway")
            return {"waited_s": round(waited), "other_benchmark_running": True}
        say(f"waiting for {OTHER_BENCH} (pid {', '.join(running)}) to end; load {load_average()}")
        time.sleep(20)
    return {"waited_s": round(time.monotonic() - started), "other_benchmark_seen": seen}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


def background_cores(window_s: float = 1.0) -> float:
    """Cores the machine keeps busy over `window_s` (call it while this benchmark is idle)."""
    before = machine_busy_seconds()
    time.sleep(window_s)
    return (machine_busy_seconds() - before) / window_s


def wait_for_quiet_machine(max_s: float, threshold: float) -> dict[str, Any]:
    """Wait (polling every 10 s) until other processes keep under `threshold` cores busy."""
    started = time.monotonic()
    while True:
        busy = background_cores(2.0)
        waited = time.monotonic() - started
        if busy < threshold:
            return {"quiet_wait_s": round(waited), "background_cores": round(busy, 2)}
        if waited >= max_s:
            say(f"the machine is still busy ({busy:.2f} cores) after {waited:.0f} s: measuring")
            return {
                "quiet_wait_s": round(waited),
                "background_cores": round(busy, 2),
                "still_busy": True,
            }
        say(f"other processes keep {busy:.2f} cores busy; waiting (load {load_average()})")
        time.sleep(8)


def wait_quiet(
    pids: list[int], window_s: float = 0.5, max_cores: float = 0.05, timeout_s: float = 30.0
) -> float:
    """Wait until `pids` together use under `max_cores` CPU; the seconds waited.

    A new instance imports MLflow in the background after its /ping says 200: measuring before
    that ends would charge it to whatever runs next.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(window_s)
        if sum(cpu_seconds(p) for p in pids) - before < max_cores * window_s:
            break
    return time.monotonic() - started
