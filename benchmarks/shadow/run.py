"""Shadow variants: production latency through `pier up` with a shadow variant vs without.

    .venv/bin/python benchmarks/shadow/run.py                   # 3 rounds, 10 s per run, c8
    .venv/bin/python benchmarks/shadow/run.py --rounds 5 --connections 8,64 --shadow-weight 0.2

One platform, one model, two endpoints that differ only in ShadowProductionVariants: `plain`
(the production variant alone) and `shadowed` (the same production variant plus a shadow
variant running the same model on its own instance, at `--shadow-weight` over the production
weight 1.0: 1.0 copies every request). wrk loads each through the runtime API (a
SigV4-signed request replayed, as benchmarks/hosting/run.py does) in alternating order —
plain then shadowed in odd rounds, shadowed then plain in even ones — so both see the same
machine; the table shows the production's p50 and p99 (what callers see) as medians over
rounds and the p50 ratio shadowed ÷ plain (target ≤ 1.1). At the end it reads the platform's
/metrics: the shadow's invocations against the production's, and the copies dropped
(pier_shadow_dropped_requests_total). Writes benchmarks/shadow/results/latest.json and prints
a Markdown section for docs/benchmarks.md. Timings are reported, never asserted. Reuses
benchmarks/hosting (training, the platform, signing) and benchmarks/serving (wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


# benchmarks/hosting's parts (training, the platform, CPU accounting, SigV4 replay) and
# benchmarks/serving's wrk runner and process helpers.
sys.path.insert(0, str(ROOT / "benchmarks" / "serving"))
sys.path.insert(0, str(ROOT / "benchmarks" / "hosting"))
import loadgen  # noqa: E402  (benchmarks/serving)
import procs  # noqa: E402
from bench import say  # noqa: E402  (benchmarks/hosting)
from machine_load import (  # noqa: E402
    background_cores,
    cpu_seconds,
    load_average,
    machine_busy_seconds,
    wait_for_quiet_machine,
    wait_quiet,
)
from pier_platform import start_platform, stop_platform, train_model  # noqa: E402
from signed_requests import post, signed_headers, write_signed_lua  # noqa: E402

RESULTS = HERE / "results"
TARGET_RATIO = 1.1  # production p50 with a shadow ÷ without, at most
ENDPOINTS = ("plain", "shadowed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run [10]")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run [2]")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (≥ 3) [3]")
    p.add_argument("--threads", type=int, default=1, help="wrk threads [1]")
    p.add_argument("--connections", default="8", help="comma-separated wrk connections [8]")
    p.add_argument("--shadow-weight", type=float, default=1.0,
                   help="the shadow's weight; production's is 1.0 [1.0]")  # fmt: skip
    p.add_argument("--quiet-max", type=float, default=300.0,
                   help="seconds to wait for other processes to calm down first [300]")  # fmt: skip
    p.add_argument("--quiet-cores", type=float, default=0.3, help="see --quiet-max [0.3]")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON results")
    p.add_argument("--work", type=Path, default=RESULTS / "run",
                   help="model, wrk scripts, logs (emptied first)")  # fmt: skip
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",") if c]
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def create_endpoints(sm: Any, model_dir: Path, shadow_weight: float) -> None:
    sm.create_model(ModelName="bench", PrimaryContainer={"ModelDataUrl": str(model_dir)})

    def variant(name: str, weight: float = 1.0) -> dict[str, Any]:
        return {
            "VariantName": name,
            "ModelName": "bench",
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "InitialVariantWeight": weight,
        }

    sm.create_endpoint_config(EndpointConfigName="plain", ProductionVariants=[variant("primary")])
    sm.create_endpoint_config(
        EndpointConfigName="shadowed",
        ProductionVariants=[variant("primary")],
        ShadowProductionVariants=[variant("shadow", shadow_weight)],
    )
    for name in ENDPOINTS:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    for name in ENDPOINTS:
        deadline = time.monotonic() + 300
        while (status := sm.describe_endpoint(EndpointName=name)["EndpointStatus"]) == "Creating":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not come up")
            time.sleep(0.2)
        if status != "InService":
            raise RuntimeError(f"{name} is {status}")


_SAMPLE = re.compile(r"^(pier_[a-z_]+)\{([^}]*)\}\s+([0-9.eE+-]+)$", re.MULTILINE)


def platform_samples(port: int) -> dict[tuple[str, str], float]:
    """(metric name, label text) -> value, from the platform's /metrics."""
    answer = procs.http_get(port, "/metrics", timeout_s=10.0)
    if not answer or answer[0] != 200:
        return {}
    return {(n, labels): float(v) for n, labels, v in _SAMPLE.findall(answer[1].decode())}


def endpoint_value(
    samples: dict[tuple[str, str], float], name: str, endpoint: str, variant: str = ""
) -> float:
    want = f'endpoint="{endpoint}"'
    also = f'variant="{variant}"' if variant else ""
    return sum(
        v for (n, labels), v in samples.items() if n == name and want in labels and also in labels
    )


def measure(
    args: argparse.Namespace, wrk: str, plat: Any, lua: Path, name: str, connections: int
) -> dict[str, Any]:
    path = f"/endpoints/{name}/invocations"
    if args.warmup > 0:
        loadgen.run_wrk(wrk, plat.port, path, lua, connections, args.warmup, args.threads)
    background = background_cores(1.0)
    cpu0 = cpu_seconds(plat.proc.pid)
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    load = loadgen.run_wrk(wrk, plat.port, path, lua, connections, args.duration, args.threads)
    wall = time.monotonic() - t0
    platform_cores = (cpu_seconds(plat.proc.pid) - cpu0) / wall
    machine = (machine_busy_seconds() - busy0) / wall
    return {
        "endpoint": name,
        "connections": connections,
        **load.as_dict(),
        "platform_cores": round(platform_cores, 3),
        "platform_cpu_us_per_request": round(1e6 * platform_cores / load.rps, 1)
        if load.rps
        else None,
        "machine_busy_cores": round(machine, 3),
        "background_cores_before": round(background, 3),
    }


def summarize(runs: list[dict[str, Any]], connections: list[int]) -> list[dict[str, Any]]:
    out = []
    for c in connections:
        med: dict[str, dict[str, float]] = {}
        for name in ENDPOINTS:
            mine = [r for r in runs if r["endpoint"] == name and r["connections"] == c]
            med[name] = {
                key: statistics.median(r[key] for r in mine)
                for key in ("rps", "p50_ms", "p99_ms", "platform_cpu_us_per_request")
            }
        ratios = [
            shadowed["p50_ms"] / plain["p50_ms"]
            for plain, shadowed in zip(
                [r for r in runs if r["endpoint"] == "plain" and r["connections"] == c],
                [r for r in runs if r["endpoint"] == "shadowed" and r["connections"] == c],
                strict=True,
            )
            if plain["p50_ms"]
        ]
        out.append(
            {
                "connections": c,
                "plain": med["plain"],
                "shadowed": med["shadowed"],
                "p50_ratio": med["shadowed"]["p50_ms"] / med["plain"]["p50_ms"],
                "p99_ratio": med["shadowed"]["p99_ms"] / med["plain"]["p99_ms"],
                "p50_ratio_per_round": [round(x, 3) for x in ratios],
            }
        )
    return out


def markdown(doc: dict[str, Any], command: str) -> str:
    lines = [
        "| connections | without shadow: rps, p50 / p99 ms | with shadow: rps, p50 / p99 ms | "
        "p50 ratio (per round) | p99 ratio |",
        "|---|---|---|---|---|",
    ]
    for s in doc["scenarios"]:
        p, c = s["plain"], s["shadowed"]
        rounds = ", ".join(f"{x:.2f}" for x in s["p50_ratio_per_round"])
        lines.append(
            f"| {s['connections']} | {p['rps']:,.0f}, {p['p50_ms']:.2f} / {p['p99_ms']:.2f} | "
            f"{c['rps']:,.0f}, {c['p50_ms']:.2f} / {c['p99_ms']:.2f} | "
            f"**{s['p50_ratio']:.2f}** ({rounds}) | {s['p99_ratio']:.2f} |"
        )
    check = doc.get("shadow_check", {})
    lines += [
        "",
        f"Command: `{command}` ({doc['rounds']} alternating rounds, {doc['duration_s']:g} s per "
        f"run after {doc['warmup_s']:g} s warm-up, wrk {doc['threads']} thread, shadow weight "
        f"{doc['shadow_weight']:g}; {doc['machine']['cpus']} cores, load average "
        f"{doc['load_average_start']} at start).",
        f"Copies: the shadow answered {check.get('shadow', '?')} requests for "
        f"{check.get('production', '?')} production requests of `shadowed`; "
        f"{check.get('dropped', '?')} dropped.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python", "benchmarks/shadow/run.py", *(argv or sys.argv[1:])])
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    home = Path(tempfile.mkdtemp(prefix="pier-shadow-bench-"))
    doc: dict[str, Any] = {
        "benchmark": "shadow",
        "shadow_weight": args.shadow_weight,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_start": load_average(),
        "notes": [],
    }
    plat = None
    runs: list[dict[str, Any]] = []
    code = 0
    try:
        wrk = loadgen.ensure_wrk()
        say("training the model")
        model_dir = train_model(work / "model")
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True).data.iloc[:1]
        body_file = work / "body-1.json"
        split = {"columns": list(frame.columns), "data": frame.values.tolist()}
        body_file.write_text(json.dumps({"dataframe_split": split}))
        body = body_file.read_bytes()

        plat = start_platform(home, work / "logs" / "platform.log")
        sm, _ = plat.clients()
        create_endpoints(sm, model_dir, args.shadow_weight)
        scripts = {}
        for name in ENDPOINTS:
            path = f"/endpoints/{name}/invocations"
            headers = signed_headers(plat, path, body)
            status, answer = post(plat.port, path, body, headers)
            if status != 200:
                raise RuntimeError(f"{name} answered {status}: {answer[:300]!r}")
            scripts[name] = write_signed_lua(work / f"{name}.lua", body_file, headers)
        pids = [plat.proc.pid, *(int(r["pid"]) for n in ENDPOINTS for r in plat.instances(n))]
        wait_quiet(pids)
        doc["quiet"] = wait_for_quiet_machine(args.quiet_max, args.quiet_cores)
        for round_no in range(1, args.rounds + 1):
            order = ENDPOINTS if round_no % 2 else tuple(reversed(ENDPOINTS))
            for connections in args.connections:
                for name in order:
                    run = measure(args, wrk, plat, scripts[name], name, connections)
                    run["round"] = round_no
                    runs.append(run)
                    say(
                        f"  round {round_no} c{connections:<3} {name:<8} {run['rps']:>8,.0f} "
                        f"req/s  p50 {run['p50_ms']:6.2f}  p99 {run['p99_ms']:6.2f} ms  "
                        f"platform {run['platform_cores']:.2f} cores "
                        f"({run['platform_cpu_us_per_request']} µs/request), others before "
                        f"{run['background_cores_before']:.2f}"
                    )
        time.sleep(2)  # requests wrk left in flight finish (and are counted) first
        samples = platform_samples(plat.port)
        total = "pier_endpoint_invocations_total"
        doc["shadow_check"] = {
            "production": int(endpoint_value(samples, total, "shadowed", "primary")),
            "shadow": int(endpoint_value(samples, total, "shadowed", "shadow")),
            "dropped": int(
                endpoint_value(samples, "pier_shadow_dropped_requests_total", "shadowed")
            ),
        }
    except KeyboardInterrupt:
        doc["notes"].append("interrupted")
        code = 130
    except Exception as exc:
        doc["notes"].append(f"failed: {type(exc).__name__}: {exc}")
        say(f"FAILED: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        if plat is not None:
            left = stop_platform(plat)
            if left:
                doc["notes"].append(f"instances left running: {left}")
        procs.stop_all()
        if (home / "logs").exists():
            shutil.copytree(home / "logs", work / "logs" / "home", dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)

    doc["runs"] = runs
    doc["scenarios"] = summarize(runs, args.connections) if runs and code == 0 else []
    doc["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    say("")
    for s in doc["scenarios"]:
        verdict = "meets" if s["p50_ratio"] <= TARGET_RATIO else "misses"
        say(
            f"c{s['connections']}: production p50 {s['plain']['p50_ms']:.2f} ms without a "
            f"shadow, {s['shadowed']['p50_ms']:.2f} ms with: ratio {s['p50_ratio']:.3f} "
            f"({verdict} <= {TARGET_RATIO}); per round {s['p50_ratio_per_round']}; p99 ratio "
            f"{s['p99_ratio']:.3f}"
        )
    say(f"shadow check: {doc.get('shadow_check')}")
    for note in doc["notes"]:
        say(f"• {note}")
    if doc["scenarios"]:
        say("\n" + markdown(doc, command))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    say(f"results: {args.output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
