"""Cold start of `pier serve`, launch -> first GET /ping 200, for two source trees side by side.

    .venv/bin/python benchmarks/serving/coldstart.py --rounds 5
    .venv/bin/python benchmarks/serving/coldstart.py --before /tmp/pier-main --rounds 5

Each round launches `pier serve` on the diabetes model (examples/train_diabetes.py) once per
tree, alternating (the order flips every round), polls /ping every 10 ms, and records the wall
time to the first 200 and the CPU time (user + system) the server's processes used until then.
The CPU time moves much less than the wall time when other processes load the machine, so it
is the figure to compare on a shared machine. `--before DIR` is another checkout's root (e.g.
`git archive main | tar -x -C DIR`): its `src/` goes first on PYTHONPATH, with this venv.
Medians are printed and written as JSON. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "hosting"))

from pier_platform import train_model  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_cpu_s(pgid: int) -> float:
    """User + system CPU of every live process in the process group (workers included)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[2] is pgrp (after state and ppid)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def ping(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
            return int(r.status)
    except OSError:
        return 0


def serving_workers(log: Path) -> int:
    """How many workers have started listening, by the server's log."""
    try:
        return log.read_text().count("Started server process")
    except OSError:
        return 0


def launch(model: Path, tree: Path | None, workers: int, logs: Path) -> tuple[float, float, float]:
    """(seconds to the first /ping 200, CPU seconds used until then, seconds until all
    workers serve)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    if tree is not None:
        env["PYTHONPATH"] = str(tree / "src")
    cmd = [str(Path(sys.executable).parent / "pier"), "serve", "-m", str(model)]
    server_log = logs / f"server-{port}.log"
    cmd += ["--port", str(port), "--workers", str(workers), "--log-file", str(server_log)]
    started = time.perf_counter()
    with (logs / f"serve-{port}.log").open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        while ping(port) != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"pier serve exited with {proc.returncode}: see {logs}")
            if time.perf_counter() - started > 300:
                raise RuntimeError("no /ping 200 within 300 s")
            time.sleep(0.01)
        wall = time.perf_counter() - started
        cpu = group_cpu_s(proc.pid)
        while serving_workers(server_log) < workers:
            if proc.poll() is not None or time.perf_counter() - started > 300:
                raise RuntimeError(f"not all {workers} workers serving: see {server_log}")
            time.sleep(0.01)
        all_serving = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return wall, cpu, all_serving


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--before", type=Path, help="another checkout's root, compared with this one")
    p.add_argument("--rounds", type=int, default=5, help="launches per tree [5]")
    p.add_argument("--workers", type=int, default=1, help="--workers of pier serve [1]")
    p.add_argument("--model", type=Path, help="an MLflow model directory (default: trained)")
    p.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks/serving/results/coldstart.json"
    )
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pier-coldstart-"))
    model = args.model or train_model(work / "model")
    trees: dict[str, Path | None] = {"this": None}
    if args.before is not None:
        trees = {"before": args.before.resolve(), "this": None}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    for i in range(args.rounds):
        order = list(trees) if i % 2 == 0 else list(reversed(trees))
        for name in order:
            wall, cpu, all_serving = launch(model, trees[name], args.workers, work)
            results[name].append((wall, cpu, all_serving))
            print(f"round {i + 1} {name:7} /ping 200 after {wall:5.2f} s, CPU {cpu:5.2f} s, "
                  f"all {args.workers} serving after {all_serving:5.2f} s", flush=True)  # fmt: skip
    load = os.getloadavg()
    summary = {
        name: {
            "wall_s_median": statistics.median(w for w, _, _ in runs),
            "cpu_s_median": statistics.median(c for _, c, _ in runs),
            "all_serving_s_median": statistics.median(a for _, _, a in runs),
            "runs": runs,
        }
        for name, runs in results.items()
    }
    for name, s in summary.items():
        print(f"{name:7} median: /ping 200 after {s['wall_s_median']:.2f} s, "
              f"CPU {s['cpu_s_median']:.2f} s, all {args.workers} serving after "
              f"{s['all_serving_s_median']:.2f} s")  # fmt: skip
    print(f"load average at the end: {load}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    doc = {"workers": args.workers, "load_average_end": load, "results": summary}
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
