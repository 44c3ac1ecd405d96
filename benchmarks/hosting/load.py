"""The load: direct and via-router runs with wrk, their CPU accounting, medians, and py-spy."""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
from bench import say
from machine_load import (
    background_cores,
    cpu_seconds,
    load_average,
    machine_busy_seconds,
    wait_for_quiet_machine,
)
from pier_platform import Platform
from platform_profile import summarize_profile
from signed_requests import _per, instance_counters, post, signed_headers, write_signed_lua


@dataclass
class Run:
    target: str  # "direct" | "router"
    connections: int
    round: int
    load: loadgen.LoadResult
    load_average: list[float]
    platform_cores: float
    instance_cores: float
    machine_cores: float  # every process of the machine: wrk, the two servers, and the others
    background_cores: float  # the machine just before the run, this benchmark idle
    mean_batch: float | None  # requests per predict call in the instance
    instance_ms: float | None  # mean time a request spends in the instance's app
    wrk_cores: float
    accepted: bool = True  # False: other processes disturbed it, and the pair was run again

    @property
    def others_cores(self) -> float:
        """Cores the rest of the machine used during the run (not wrk, platform, instance)."""
        return max(
            0.0, self.machine_cores - self.platform_cores - self.instance_cores - self.wrk_cores
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "connections": self.connections,
            "round": self.round,
            **self.load.as_dict(),
            "load_average_before": self.load_average,
            "platform_cores": round(self.platform_cores, 3),
            "instance_cores": round(self.instance_cores, 3),
            "machine_busy_cores": round(self.machine_cores, 3),
            "background_cores_before": round(self.background_cores, 3),
            "wrk_cores": round(self.wrk_cores, 3),
            "others_cores_during": round(self.others_cores, 3),
            "accepted": self.accepted,
            "instance_mean_requests_per_predict": self.mean_batch,
            "instance_mean_ms_in_app": self.instance_ms,
            "platform_cpu_us_per_request": round(1e6 * self.platform_cores / self.load.rps, 1)
            if self.load.rps
            else None,
            "instance_cpu_us_per_request": round(1e6 * self.instance_cores / self.load.rps, 1)
            if self.load.rps
            else None,
        }


def _median_known(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def median_of(runs: list[Run]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.load.rps for r in runs),
        "p50_ms": statistics.median(r.load.p50_ms for r in runs),
        "p99_ms": statistics.median(r.load.p99_ms for r in runs),
        "errors": sum(r.load.errors for r in runs),
        "platform_cores": statistics.median(r.platform_cores for r in runs),
        "instance_cores": statistics.median(r.instance_cores for r in runs),
        "machine_busy_cores": statistics.median(r.machine_cores for r in runs),
        "wrk_cores": statistics.median(r.wrk_cores for r in runs),
        "others_cores_during": statistics.median(r.others_cores for r in runs),
        "background_cores_before": statistics.median(r.background_cores for r in runs),
        "instance_mean_requests_per_predict": _median_known(r.mean_batch for r in runs),
        "instance_mean_ms_in_app": _median_known(r.instance_ms for r in runs),
        "platform_cpu_us_per_request": statistics.median(
            1e6 * r.platform_cores / r.load.rps if r.load.rps else 0.0 for r in runs
        ),
        "instance_cpu_us_per_request": statistics.median(
            1e6 * r.instance_cores / r.load.rps if r.load.rps else 0.0 for r in runs
        ),
    }


@dataclass
class Loader:
    args: argparse.Namespace
    wrk: str
    plat: Platform
    instance_port: int
    instance_pid: int
    invoke_path: str
    body_file: Path
    work: Path
    expected: bytes

    def direct_lua(self) -> Path:
        return loadgen.write_lua(self.work / "direct.lua", self.body_file)

    def router_lua(self) -> Path:
        """A freshly signed script, after one plain request showed that the replay answers 200."""
        body = self.body_file.read_bytes()
        headers = signed_headers(self.plat, self.invoke_path, body)
        status, answer = post(self.plat.port, self.invoke_path, body, headers)
        if status != 200 or json.loads(answer) != json.loads(self.expected):
            raise RuntimeError(f"the signed request answered {status}: {answer[:300]!r}")
        return write_signed_lua(self.work / "router.lua", self.body_file, headers)

    def measure(self, target: str, connections: int, round_no: int) -> Run:
        a = self.args
        if target == "direct":
            port, path, lua = self.instance_port, "/invocations", self.direct_lua()
        else:
            port, path, lua = self.plat.port, self.invoke_path, self.router_lua()
        background = background_cores(1.0)
        if a.warmup > 0:
            loadgen.run_wrk(self.wrk, port, path, lua, connections, a.warmup, a.threads)
        loadavg = load_average()
        cpu0 = cpu_seconds(self.plat.proc.pid), cpu_seconds(self.instance_pid)
        busy0 = machine_busy_seconds()
        metrics0 = instance_counters(self.instance_port)
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it is reaped
        t0 = time.monotonic()
        load = loadgen.run_wrk(self.wrk, port, path, lua, connections, a.duration, a.threads)
        wall = time.monotonic() - t0
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu = (children1.ru_utime - children0.ru_utime) + (
            children1.ru_stime - children0.ru_stime
        )
        cpu1 = cpu_seconds(self.plat.proc.pid), cpu_seconds(self.instance_pid)
        busy1 = machine_busy_seconds()
        metrics1 = instance_counters(self.instance_port)
        batch = _per(metrics0, metrics1, "pier_batch_requests_sum", "pier_batch_requests_count")
        inside = _per(
            metrics0,
            metrics1,
            "pier_invocation_latency_seconds_sum",
            "pier_invocation_latency_seconds_count",
        )
        run = Run(
            target,
            connections,
            round_no,
            load,
            loadavg,
            (cpu1[0] - cpu0[0]) / wall,
            (cpu1[1] - cpu0[1]) / wall,
            (busy1 - busy0) / wall,
            background,
            round(batch, 2) if batch is not None else None,
            round(inside * 1e3, 3) if inside is not None else None,
            wrk_cpu / wall,
        )
        errors = f"  {load.errors} ERRORS" if load.errors else ""
        if batch is not None and inside is not None:
            errors = f"  instance: {batch:.1f} requests/predict, {inside * 1e3:.2f} ms{errors}"
        say(
            f"  round {round_no} c{connections:<3} {target:<6} {load.rps:>8,.0f} req/s  "
            f"p50 {load.p50_ms:6.2f}  p99 {load.p99_ms:6.2f} ms  cores: platform "
            f"{run.platform_cores:.2f}, instance {run.instance_cores:.2f}, "
            f"wrk {run.wrk_cores:.2f}, others {run.others_cores:.2f}  "
            f"(before: load {loadavg[0]}, others {background:.2f}){errors}"
        )
        return run

    def profile(self, connections: int, out_raw: Path) -> dict[str, Any]:
        """py-spy record of the platform during one extra via-router run (not measured)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            return {"error": "py-spy is not installed (.venv/bin/pip install py-spy)"}
        lua = self.router_lua()
        loadgen.run_wrk(self.wrk, self.plat.port, self.invoke_path, lua, connections, 1, 1)
        duration = max(1, round(self.args.duration))
        cmd = [spy, "record", "--format", "raw", "--threads", "-r", "200", "-d", str(duration)]
        if self.args.profile_native:
            cmd.append("--native")
        cmd += ["-p", str(self.plat.proc.pid), "-o", str(out_raw)]
        spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)  # let py-spy attach
            load = loadgen.run_wrk(
                self.wrk,
                self.plat.port,
                self.invoke_path,
                lua,
                connections,
                duration,
                self.args.threads,
            )
            _, err = spy_proc.communicate(timeout=duration + 60)
        finally:
            if spy_proc.poll() is None:
                spy_proc.kill()
                spy_proc.wait()
        if spy_proc.returncode != 0 or not out_raw.exists():
            return {"error": f"py-spy failed: {err.decode(errors='replace')[-500:]}"}
        summary = summarize_profile(out_raw)
        summary["load_during_profile"] = load.as_dict()
        summary["connections"] = connections
        summary["raw"] = str(out_raw)
        summary["native"] = self.args.profile_native
        return summary


def measure_pair(loader: Loader, connections: int, round_no: int) -> list[Run]:
    """Direct then router; again (up to --retries times) when other processes used more than
    --max-others cores during either run. The least disturbed pair is the one kept."""
    a = loader.args
    pairs: list[list[Run]] = []
    for attempt in range(a.retries + 1):
        pair = [loader.measure(t, connections, round_no) for t in ("direct", "router")]
        pairs.append(pair)
        worst = max(r.others_cores for r in pair)
        if worst <= a.max_others:
            break
        if attempt < a.retries:
            say(f"    other processes used {worst:.2f} cores during the pair: once more")
            wait_for_quiet_machine(a.quiet_max / 4, a.quiet_cores)
    best = min(pairs, key=lambda pair: max(r.others_cores for r in pair))
    for pair in pairs:
        for r in pair:
            r.accepted = pair is best
    return [r for pair in pairs for r in pair]
