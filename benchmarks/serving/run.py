"""Serving benchmark: `mlflow models serve` vs `pier serve` (and friends) on the same model.

    .venv/bin/python benchmarks/serving/run.py            # full: 10 s per scenario
    .venv/bin/python benchmarks/serving/run.py --quick    # 3 s per scenario

Trains the diabetes RandomForest (examples/train_diabetes.py), measures the in-process limit,
then starts each server on a free port of 127.0.0.1 and loads it with wrk (installed with
apt-get if missing). Prints one table and the ratios against pier's targets, and writes
benchmarks/serving/results/latest.json (+ latest.md). Timings are reported, never asserted.
See benchmarks/serving/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import inprocess
import loadgen
import procs
import report
import servers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
# Not a terminal (make bench | tee, CI logs): wide enough for the table instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s per scenario, fewer cold starts")
    p.add_argument("--duration", type=float, help="seconds per measured run [10; quick: 3]")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each run [2; quick: 1]")
    p.add_argument(
        "--cold-starts", type=int, help="launches per server for cold start [3; quick: 2]"
    )
    p.add_argument("--in-process-seconds", type=float, help="seconds per in-process case [3; 1]")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1-2 on small machines)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every server this many times, round-robin, and report the medians [1]",
    )
    keys = [s.key for s in servers.ALL]
    p.add_argument(
        "--only", help=f"comma-separated servers to run, of: {','.join(keys)}", default=""
    )
    p.add_argument("--no-mlserver", action="store_true", help="skip MLServer (and its install)")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON results")
    args = p.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.cold_starts = args.cold_starts or (2 if quick else 3)
    args.in_process_seconds = args.in_process_seconds or (1.0 if quick else 3.0)
    selected = [k for k in args.only.split(",") if k] or keys
    unknown = set(selected) - set(keys)
    if unknown:
        p.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if args.no_mlserver:
        selected = [k for k in selected if k != servers.MLSERVER.key]
    args.servers = [s for s in servers.ALL if s.key in selected]
    return args


# ------------------------------------------------------------------------------------- setup
def train_model(out_dir: Path) -> Path:
    """examples/train_diabetes.py's train(), imported by path."""
    spec = importlib.util.spec_from_file_location(
        "train_diabetes", ROOT / "examples" / "train_diabetes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logging.getLogger("mlflow").setLevel(logging.ERROR)  # the pickle-format warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path: Path = module.train(out_dir)
    return path


def write_bodies(work: Path, frame: Any) -> dict[int, Path]:
    """dataframe_split JSON bodies of 1 and 100 rows, and a wrk Lua script for each."""
    bodies: dict[int, Path] = {}
    for n in (1, 100):
        part = frame.iloc[:n]
        doc = {"dataframe_split": {"columns": list(part.columns), "data": part.values.tolist()}}
        body = work / f"body-{n}.json"
        body.write_text(json.dumps(doc))
        loadgen.write_lua(work / f"post-{n}.lua", body)
        bodies[n] = body
    return bodies


def check_answer(port: int, path: str, body: Path, expected: list[float]) -> str | None:
    """None if the server predicts what scikit-learn does for `body`, else what is wrong."""
    status, raw = procs.http_post(port, path, body.read_bytes(), "application/json")
    if status != 200:
        return f"POST {path} answered {status}: {raw[:200]!r}"
    got = json.loads(raw)
    preds = got.get("predictions", got) if isinstance(got, dict) else got
    if isinstance(preds, list) and preds and isinstance(preds[0], dict):
        preds = [next(iter(p.values())) for p in preds]
    if (
        not isinstance(preds, list)
        or len(preds) != len(expected)
        or any(
            abs(float(a) - b) > 1e-6 * max(1.0, abs(b))
            for a, b in zip(preds, expected, strict=True)
        )
    ):
        return f"unexpected predictions: {raw[:200]!r}"
    return None


_METRIC_LINE = re.compile(r"^(pier_[a-z_]+?)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.MULTILINE)


def pier_counters(port: int) -> dict[str, float]:
    """Sums of pier's histogram/counter samples from GET /metrics (labels summed up)."""
    answer = procs.http_get(port, "/metrics", timeout_s=5.0)
    sums: dict[str, float] = {}
    if answer and answer[0] == 200:
        for name, value in _METRIC_LINE.findall(answer[1].decode()):
            sums[name] = sums.get(name, 0.0) + float(value)
    return sums


def _delta_ratio(
    before: dict[str, float], after: dict[str, float], num: str, den: str
) -> float | None:
    d_num = after.get(num, 0.0) - before.get(num, 0.0)
    d_den = after.get(den, 0.0) - before.get(den, 0.0)
    return d_num / d_den if d_den else None


# ---------------------------------------------------------------------------------- running
class Bench:
    def __init__(self, args: argparse.Namespace, progress: Progress, ctx: servers.Context) -> None:
        self.args = args
        self.progress = progress
        self.ctx = ctx
        self.wrk = ""
        self.task = progress.add_task("starting", total=None)
        self.lua: dict[int, Path] = {}
        self.bodies: dict[int, Path] = {}
        self.expected: dict[int, list[float]] = {}

    def step(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def done(self) -> None:
        self.progress.advance(self.task)

    def say(self, text: str) -> None:
        self.progress.console.print(text)

    def start_server(
        self, server: servers.Server
    ) -> tuple[subprocess.Popen[bytes], int, float, float]:
        """The running server, its port, and seconds to the first /ping 200 and to all workers."""
        port = procs.free_port()
        argv, env = server.command(self.ctx, port)
        log = self.ctx.log_dir / f"{server.key}.log"
        t0 = time.perf_counter()
        proc = procs.launch(argv, env, log)
        try:
            ready = procs.wait_ready(proc, port, server.ready_path, t0, log)
            all_ready = procs.wait_all_ready(proc, port, server.ready_path, t0, log)
        except BaseException:
            procs.stop(proc)
            raise
        return proc, port, ready, all_ready

    def run_server(self, server: servers.Server) -> report.ServerResult:
        result = report.ServerResult(server.key, server.label, server.family, server.workers)
        proc: subprocess.Popen[bytes] | None = None
        try:
            for i in range(self.args.cold_starts):
                self.step(f"{server.label}: cold start {i + 1}/{self.args.cold_starts}")
                proc, port, ready, all_ready = self.start_server(server)
                result.cold_starts_s.append(ready)
                result.all_ready_s.append(all_ready)
                self.done()
                if i < self.args.cold_starts - 1:
                    procs.stop(proc)
                    proc = None
            assert proc is not None
            cold = ", ".join(f"{c:.2f}" for c in result.cold_starts_s)
            every = ", ".join(f"{c:.2f}" for c in result.all_ready_s)
            workers = f" (all workers: {every} s)" if server.workers > 1 else ""
            self.say(f"[bold]{server.label}[/]: ready after {cold} s{workers}")
            for n, body in self.bodies.items():
                problem = check_answer(port, server.invoke_path, body, self.expected[n])
                if problem:
                    raise procs.ServerFailed(f"{n}-row check: {problem}")
            self.step(f"{server.label}: waiting for the server to go idle")
            procs.wait_idle(proc)
            for s in report.SCENARIOS:
                self.measure(server, result, port, s)
        except procs.ServerFailed as exc:
            result.error = str(exc)
            self.say(f"[red]{server.label}: {exc}[/]")
        except (RuntimeError, ValueError, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            self.say(f"[red]{server.label}: {result.error}[/]")
        finally:
            if proc is not None:
                self.step(f"{server.label}: stopping")
                procs.stop(proc)
        return result

    def measure(
        self, server: servers.Server, result: report.ServerResult, port: int, s: report.Scenario
    ) -> None:
        a = self.args
        lua = self.lua[s.rows]
        self.step(f"{server.label}: {s.title}: warm-up {a.warmup:g} s")
        if a.warmup > 0:
            loadgen.run_wrk(
                self.wrk, port, server.invoke_path, lua, s.connections, a.warmup, a.threads
            )
        before = pier_counters(port) if server.pier_metrics else {}
        self.step(f"{server.label}: {s.title}: {a.duration:g} s")
        load = loadgen.run_wrk(
            self.wrk, port, server.invoke_path, lua, s.connections, a.duration, a.threads
        )
        result.loads[s.key] = load
        extra = ""
        if server.pier_metrics:
            after = pier_counters(port)
            batch = _delta_ratio(
                before, after, "pier_batch_requests_sum", "pier_batch_requests_count"
            )
            inside = _delta_ratio(
                before,
                after,
                "pier_invocation_latency_seconds_sum",
                "pier_invocation_latency_seconds_count",
            )
            if batch is not None and inside is not None:
                result.mean_batch[s.key] = batch
                result.server_ms[s.key] = inside * 1e3
                extra = f"  (mean {batch:.1f} requests/predict, {inside * 1e3:.2f} ms in the app)"
        errors = f"  [red]{load.errors} errors[/]" if load.errors else ""
        self.say(
            f"  {s.title:<14} {load.rps:>8,.0f} req/s  p50 {fmt(load.p50_ms)}  "
            f"p99 {fmt(load.p99_ms)} ms{extra}{errors}"
        )
        self.done()


def fmt(ms: float) -> str:
    return f"{report.fmt_ms(ms):>6}"


# ------------------------------------------------------------------------------- reporting
def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform()}


def versions(wrk: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {"python": platform.python_version()}
    for pkg in ("pier", "mlflow", "scikit-learn", "uvicorn", "granian", "uvloop", "httptools"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    if wrk:
        done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        out["wrk"] = (done.stdout or done.stderr).split("\n", 1)[0].strip()
    return out


def git_state() -> dict[str, Any]:
    def git(*a: str) -> str:
        done = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": bool(git("status", "--porcelain", "src")),
    }


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    work = RESULTS / "run"
    shutil.rmtree(work, ignore_errors=True)
    log_dir = work / "logs"
    log_dir.mkdir(parents=True)
    ctx = servers.Context(
        model_dir=work / "model",
        bin_dir=Path(sys.executable).parent,
        work_dir=work,
        log_dir=log_dir,
    )
    started = datetime.now(UTC)
    notes: list[str] = []
    rounds: list[list[report.ServerResult]] = []
    timing_rounds: list[list[inprocess.CallTiming]] = []
    wrk = ""
    per_server = args.cold_starts + len(report.SCENARIOS)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            bench = Bench(args, progress, ctx)
            progress.update(bench.task, total=2 + per_server * len(args.servers))
            bench.step("installing wrk if missing")
            wrk = bench.wrk = loadgen.ensure_wrk()
            if servers.MLSERVER in args.servers:
                bench.step("MLServer: creating its venv if missing (at most 10 min)")
                why = servers.ensure_mlserver()
                if why:
                    notes.append(f"MLServer not measured: {why}")
                    args.servers.remove(servers.MLSERVER)
                    bench.say(f"[yellow]{notes[-1]}[/]")
            bench.done()
            bench.step("training the model")
            from sklearn.datasets import load_diabetes

            frame = load_diabetes(as_frame=True).data
            train_model(ctx.model_dir)
            bench.bodies = write_bodies(work, frame)
            bench.lua = {n: work / f"post-{n}.lua" for n in bench.bodies}
            import mlflow.pyfunc

            raw = mlflow.pyfunc.load_model(str(ctx.model_dir)).get_raw_model()
            bench.expected = {n: raw.predict(frame.iloc[:n]).tolist() for n in bench.bodies}
            bench.done()
            progress.update(bench.task, total=2 + per_server * len(args.servers) * args.rounds)
            for i in range(args.rounds):
                if args.rounds > 1:
                    bench.say(f"[bold]round {i + 1}/{args.rounds}[/]")
                bench.step(f"in-process limit ({args.in_process_seconds:g} s per case)")
                timing_rounds.append(
                    inprocess.measure(
                        ctx.model_dir, frame, bench.bodies[1].read_bytes(), args.in_process_seconds
                    )
                )
                for t in timing_rounds[-1]:
                    bench.say(f"in-process  {t.label:<40} {report.timing_cell(t)}")
                rounds.append([])
                for server in args.servers:
                    rounds[-1].append(bench.run_server(server))
    except KeyboardInterrupt:
        console.print("[red]interrupted: stopping servers[/]")
        notes.append("interrupted")
    finally:
        procs.stop_all()
    by_server: dict[str, list[report.ServerResult]] = {}
    for runs in rounds:  # the last round is short after Ctrl-C
        for r in runs:
            by_server.setdefault(r.key, []).append(r)
    results = [report.merge_rounds(runs) for runs in by_server.values()]
    timings = inprocess.merge_rounds(timing_rounds)

    medians = f"; medians of {len(rounds)} rounds" if len(rounds) > 1 else ""
    title = (
        f"Serving benchmark: wrk, {args.duration:g} s per scenario after {args.warmup:g} s "
        f"warm-up, {args.threads} wrk thread(s); cold start = median of "
        f"{args.cold_starts * max(1, len(rounds))} launches{medians}"
    )
    console.print(report.rich_table(results, timings, title))
    ratio_items = report.ratios(results, timings)
    if ratio_items:
        console.print(report.ratio_table(ratio_items))
    asgi = report.asgi_comparison(results)
    if asgi:
        notes.append(asgi[1])
    for r in results:
        if r.error:
            notes.append(f"{r.label}: {r.error}")
    for note in notes:
        console.print(f"• {note}")

    doc = {
        "started": started.isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "cold_starts": args.cold_starts,
            "wrk_threads": args.threads,
            "rounds": args.rounds,
            "in_process_seconds": args.in_process_seconds,
            "quick": args.quick,
        },
        "machine": machine(),
        "versions": versions(wrk),
        "git": git_state(),
        "servers": [r.as_dict() for r in results],
        "rounds": [[r.as_dict() for r in runs] for runs in rounds] if args.rounds > 1 else None,
        "in_process": [t.as_dict() for t in timings],
        "ratios": [r.as_dict() for r in ratio_items],
        "asgi_granian_over_uvicorn": asgi[0] if asgi else None,
        "notes": notes,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n")
    markdown = "\n\n".join(
        [
            report.markdown_table(results, timings),
            report.markdown_ratios(ratio_items),
            "\n".join(f"- {n}" for n in notes),
        ]
    )
    args.output.with_suffix(".md").write_text(markdown + "\n")
    console.print(f"results: {args.output} (+ {args.output.with_suffix('.md').name})")
    return 130 if "interrupted" in notes else 0


if __name__ == "__main__":
    sys.exit(main())
