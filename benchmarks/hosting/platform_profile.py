"""The profile: py-spy's raw stacks of the platform summarized by function, area and thread."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

_AREAS = (  # (area, substring of a Python frame's file): the innermost match names the area
    ("SigV4 verification (pier/contract/sigv4.py)", "pier/contract/sigv4"),
    ("router: pick + upstream client (pier/router)", "pier/router/"),
    ("runtime API: front door + handler (pier/platform)", "pier/platform/app"),
    ("runtime API: front door + handler (pier/platform)", "pier/platform/api"),
    ("runtime API: front door + handler (pier/platform)", "pier/platform/runtime_api"),
    ("uvicorn HTTP protocol (httptools_impl)", "uvicorn/"),
    ("reconciler / control plane", "pier/control/"),
    ("SQLAlchemy", "sqlalchemy/"),
    ("asyncio (tasks, futures, wait_for, timeouts)", "asyncio/"),
)
# The innermost Python frame is the loop's entry: uvloop's own C code runs (socket reads and
# writes, epoll, callback scheduling) with no Python frame of its own.
_LOOP_AREA = "event loop itself (uvloop C code: socket I/O, epoll, scheduling)"
_LOOP_FRAME = "Runner.run (asyncio/runners.py"
# A thread-pool worker blocked on its queue (a futex): py-spy's idle detection misses it here.
_IDLE_WORKER = "_worker (concurrent/futures/thread.py"


def _frame_file(frame: str) -> str:
    # py-spy raw frames: "function (path/file.py:line)"
    start = frame.rfind(" (")
    return frame[start + 2 : -1] if start >= 0 else frame


def _frame_function(frame: str) -> str:
    start = frame.rfind(" (")
    if start < 0:
        return frame
    where = frame[start + 2 : -1].rsplit(":", 1)[0]
    short = "/".join(where.split("/")[-2:])
    return f"{frame[:start]} ({short})"


def _area(frames: list[str]) -> str:
    python = [f for f in frames if ".py:" in f]
    if not python:
        return "native only"
    if python[-1].startswith(_LOOP_FRAME):
        return _LOOP_AREA
    for frame in reversed(python):
        where = _frame_file(frame)
        hit = next((name for name, part in _AREAS if part in where), None)
        if hit:
            return hit
    return "other Python"


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares per function, per area and per thread, from py-spy's raw
    (collapsed) stacks. Shares are of the non-idle samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = [f for f in stack.split(";") if f]
        thread = next((f for f in parts if f.startswith("thread ")), "thread ?")
        frames = [f for f in parts if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        python = [f for f in frames if ".py:" in f]
        if python and python[-1].startswith(_IDLE_WORKER):  # waiting for work
            idle += n
            continue
        total += n
        threads[thread.split(": ", 1)[-1]] += n
        functions = [_frame_function(f) for f in frames]
        own[functions[-1]] += n
        for fn in set(functions):
            inclusive[fn] += n
        areas[_area(frames)] += n

    def shares(counter: Counter[str], k: int = top) -> list[tuple[str, float]]:
        return [(key, round(100 * v / total, 1)) for key, v in counter.most_common(k)]

    return {
        "samples": total,
        "idle_worker_samples_dropped": idle,
        "areas_pct": shares(areas, 20),
        "threads_pct": shares(threads),
        "self_pct": shares(own),
        "inclusive_pct": shares(inclusive, 2 * top),
    }
