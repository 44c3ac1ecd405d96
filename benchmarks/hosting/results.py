"""Reporting: the results table, the verdicts against the targets, versions and git state."""

from __future__ import annotations

import contextlib
import platform
import statistics
import subprocess
from typing import Any

from bench import ROOT

TARGETS = {"throughput_ratio": 0.9, "added_p50_ms": 0.5, "in_service_s": 2.0}


def table(scenarios: list[dict[str, Any]], in_service: list[float]) -> str:
    head = (
        f"{'scenario':<10} {'direct rps':>10} {'p50':>6} {'p99':>6}   {'router rps':>10} "
        f"{'p50':>6} {'p99':>6}   {'ratio':>6} {'+p50 ms':>8}"
    )
    lines = [head, "-" * len(head)]
    for s in scenarios:
        d, r = s["direct"], s["router"]
        lines.append(
            f"{s['scenario']:<10} {d['rps']:>10,.0f} {d['p50_ms']:>6.2f} {d['p99_ms']:>6.2f}   "
            f"{r['rps']:>10,.0f} {r['p50_ms']:>6.2f} {r['p99_ms']:>6.2f}   "
            f"{s['throughput_ratio']:>6.2f} {s['added_p50_ms']:>8.2f}"
        )
    for s in scenarios:
        d, r = s["direct"], s["router"]
        lines.append(
            f"{s['scenario']}: CPU per request: instance {d['instance_cpu_us_per_request']:.0f} µs "
            f"direct, {r['instance_cpu_us_per_request']:.0f} µs via router; platform "
            f"{r['platform_cpu_us_per_request']:.0f} µs; wrk {d['wrk_cores']:.2f} / "
            f"{r['wrk_cores']:.2f} cores, other processes {d['others_cores_during']:.2f} / "
            f"{r['others_cores_during']:.2f} cores (direct / router)"
        )
        db, rb = d["instance_mean_requests_per_predict"], r["instance_mean_requests_per_predict"]
        if db is not None and rb is not None:
            lines.append(
                f"{s['scenario']}: instance batches {db:.1f} direct, {rb:.1f} via router "
                f"(requests per predict); time in the instance's app "
                f"{d['instance_mean_ms_in_app']:.2f} / {r['instance_mean_ms_in_app']:.2f} ms"
            )
        outside = s.get("ms_outside_instance_app", {})
        if len(outside) == 2:
            lines.append(
                f"{s['scenario']}: mean ms outside the instance's app (Little's law): "
                f"{outside['direct']:.2f} direct, {outside['router']:.2f} via router"
            )
    if in_service:
        each = ", ".join(f"{t:.2f}" for t in in_service)
        lines.append(
            f"CreateEndpoint -> InService: median {statistics.median(in_service):.2f} s "
            f"(each: {each} s)"
        )
    return "\n".join(lines)


def verdicts(scenarios: list[dict[str, Any]], in_service: list[float]) -> list[str]:
    out = []
    for s in scenarios:
        ratio_ok = s["throughput_ratio"] >= TARGETS["throughput_ratio"]
        p50_ok = s["added_p50_ms"] <= TARGETS["added_p50_ms"]
        out.append(
            f"{s['scenario']}: throughput ratio {s['throughput_ratio']:.2f} "
            f"({'meets' if ratio_ok else 'misses'} >= {TARGETS['throughput_ratio']}), "
            f"added p50 {s['added_p50_ms']:.2f} ms "
            f"({'meets' if p50_ok else 'misses'} <= {TARGETS['added_p50_ms']} ms)"
        )
    if in_service:
        med = statistics.median(in_service)
        ok = med <= TARGETS["in_service_s"]
        out.append(
            f"InService: median {med:.2f} s ({'meets' if ok else 'misses'} "
            f"<= {TARGETS['in_service_s']} s)"
        )
    return out


def versions(wrk: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("pier", "boto3", "uvicorn", "uvloop", "httptools", "mlflow", "scikit-learn"):
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
