"""Gateway overhead: POST /api/v1/{endpoint}/predict (API key) vs SageMaker's runtime route.

    .venv/bin/python benchmarks/gateway/run.py                  # 3 rounds, 10 s per run, c64
    .venv/bin/python benchmarks/gateway/run.py --rounds 5 --connections 8,64

One platform, one model, one endpoint `bench`. wrk loads it through the runtime API
(`POST /endpoints/bench/invocations`, a SigV4-signed request replayed, as
benchmarks/hosting/run.py does) and through the gateway (`POST /api/v1/bench/predict` with an
`x-api-key` made by `pier keys create`, with a usage plan: rate and burst far above what wrk
reaches, and a daily quota, so the bucket and the counts are paid on every request), in
alternating order — runtime then gateway in odd rounds, gateway then runtime in even ones — so
both see the same machine. The table shows the medians over rounds, the throughput ratio
gateway ÷ runtime (target ≥ 0.9) and the added p50 (target ≤ 0.3 ms). Timings are reported,
never asserted. Reuses benchmarks/hosting (training, the platform, signing) and
benchmarks/serving (wrk). Writes benchmarks/gateway/results/latest.json and prints a Markdown
section for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
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
TARGET_RATIO = 0.9
TARGET_ADDED_P50_MS = 0.3
TARGETS = ("runtime", "gateway")
PATHS = {"runtime": "/endpoints/bench/invocations", "gateway": "/api/v1/bench/predict"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run [10]")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run [2]")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds [3]")
    p.add_argument("--threads", type=int, default=1, help="wrk threads [1]")
    p.add_argument("--connections", default="64", help="comma-separated wrk connections [64]")
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


def create_endpoint(sm: Any, model_dir: Path) -> None:
    sm.create_model(ModelName="bench", PrimaryContainer={"ModelDataUrl": str(model_dir)})
    variant = {
        "VariantName": "primary",
        "ModelName": "bench",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sm.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[variant])
    sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    deadline = time.monotonic() + 300
    while (status := sm.describe_endpoint(EndpointName="bench")["EndpointStatus"]) == "Creating":
        if time.monotonic() > deadline:
            raise RuntimeError("bench did not come up")
        time.sleep(0.2)
    if status != "InService":
        raise RuntimeError(f"bench is {status}")


def create_key(home: Path) -> str:
    """`pier keys create` with a plan whose limits wrk never reaches (so they cost, not bite)."""
    pier = Path(sys.executable).with_name("pier")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    done = subprocess.run(
        [str(pier), "keys", "create", "bench", "--home", str(home), "--rate", "1000000",
         "--burst", "1000000", "--quota-day", "1000000000", "--quiet"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def measure(
    args: argparse.Namespace, wrk: str, plat: Any, lua: Path, target: str, connections: int
) -> dict[str, Any]:
    path = PATHS[target]
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
        "target": target,
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
        for name in TARGETS:
            mine = [r for r in runs if r["target"] == name and r["connections"] == c]
            med[name] = {
                key: statistics.median(r[key] for r in mine)
                for key in ("rps", "p50_ms", "p99_ms", "platform_cpu_us_per_request")
            }
        pairs = zip(
            [r for r in runs if r["target"] == "runtime" and r["connections"] == c],
            [r for r in runs if r["target"] == "gateway" and r["connections"] == c],
            strict=True,
        )
        ratios, added = [], []
        for runtime, gateway in pairs:
            if runtime["rps"]:
                ratios.append(gateway["rps"] / runtime["rps"])
            added.append(gateway["p50_ms"] - runtime["p50_ms"])
        out.append(
            {
                "connections": c,
                "runtime": med["runtime"],
                "gateway": med["gateway"],
                "throughput_ratio": med["gateway"]["rps"] / med["runtime"]["rps"],
                "ratio_per_round": [round(x, 3) for x in ratios],
                "added_p50_ms": med["gateway"]["p50_ms"] - med["runtime"]["p50_ms"],
                "added_p50_per_round": [round(x, 3) for x in added],
                "added_platform_cpu_us": med["gateway"]["platform_cpu_us_per_request"]
                - med["runtime"]["platform_cpu_us_per_request"],
            }
        )
    return out


def markdown(doc: dict[str, Any], command: str) -> str:
    lines = [
        "| connections | runtime rps | p50 / p99 ms | gateway rps | p50 / p99 ms | ratio "
        "(per round) | added p50 ms (per round) | platform CPU µs/request runtime → gateway |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in doc["scenarios"]:
        r, g = s["runtime"], s["gateway"]
        rounds = ", ".join(f"{x:.2f}" for x in s["ratio_per_round"])
        added = ", ".join(f"{x:+.2f}" for x in s["added_p50_per_round"])
        lines.append(
            f"| {s['connections']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
            f"{g['rps']:,.0f} | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | "
            f"**{s['throughput_ratio']:.2f}** ({rounds}) | **{s['added_p50_ms']:+.2f}** "
            f"({added}) | "
            f"{r['platform_cpu_us_per_request']:.0f} → {g['platform_cpu_us_per_request']:.0f} |"
        )
    lines += [
        "",
        f"Command: `{command}` ({doc['rounds']} alternating rounds, {doc['duration_s']:g} s per "
        f"run after {doc['warmup_s']:g} s warm-up, wrk {doc['threads']} thread; "
        f"{doc['machine']['cpus']} cores, load average {doc['load_average_start']} at start).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python", "benchmarks/gateway/run.py", *(argv or sys.argv[1:])])
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    home = Path(tempfile.mkdtemp(prefix="pier-gateway-bench-"))
    doc: dict[str, Any] = {
        "benchmark": "gateway",
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
        create_endpoint(sm, model_dir)
        key = create_key(home)
        headers = {
            "runtime": signed_headers(plat, PATHS["runtime"], body),
            "gateway": {"Content-Type": "application/json", "x-api-key": key},
        }
        scripts, answers = {}, {}
        for name in TARGETS:
            status, answer = post(plat.port, PATHS[name], body, headers[name])
            if status != 200:
                raise RuntimeError(f"{name} answered {status}: {answer[:300]!r}")
            answers[name] = answer
            scripts[name] = write_signed_lua(work / f"{name}.lua", body_file, headers[name])
        if answers["runtime"] != answers["gateway"]:
            raise RuntimeError(f"the answers differ: {answers}")
        wait_quiet([plat.proc.pid, *(int(r["pid"]) for r in plat.instances("bench"))])
        doc["quiet"] = wait_for_quiet_machine(args.quiet_max, args.quiet_cores)
        for round_no in range(1, args.rounds + 1):
            order = TARGETS if round_no % 2 else tuple(reversed(TARGETS))
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
        ratio_ok = "meets" if s["throughput_ratio"] >= TARGET_RATIO else "misses"
        p50_ok = "meets" if s["added_p50_ms"] <= TARGET_ADDED_P50_MS else "misses"
        say(
            f"c{s['connections']}: runtime {s['runtime']['rps']:,.0f} req/s, gateway "
            f"{s['gateway']['rps']:,.0f} req/s: ratio {s['throughput_ratio']:.3f} ({ratio_ok} "
            f">= {TARGET_RATIO}); added p50 {s['added_p50_ms']:+.2f} ms ({p50_ok} <= "
            f"{TARGET_ADDED_P50_MS}); per round {s['ratio_per_round']}; platform CPU "
            f"{s['added_platform_cpu_us']:+.0f} µs/request"
        )
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
