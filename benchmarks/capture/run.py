"""Data capture overhead: InvokeEndpoint throughput through `pier up` with 100 % capture vs none.

    .venv/bin/python benchmarks/capture/run.py                  # 3 rounds, 10 s per run
    .venv/bin/python benchmarks/capture/run.py --rounds 5 --connections 8,64
    .venv/bin/python benchmarks/capture/run.py --durable        # PIER_CAPTURE_DURABLE=true

One platform, one model, two endpoints that differ only in DataCaptureConfig: `plain` (none)
and `captured` (100 %, Input and Output, JSON listed in JsonContentTypes, to a file:// directory
in the work directory). wrk loads each through the runtime API (a SigV4-signed request
replayed, as benchmarks/hosting/run.py does) in alternating order — plain then captured in odd
rounds, captured then plain in even ones — so both see the same machine; the table shows the
medians over rounds and the throughput ratio captured ÷ plain (target ≥ 0.9). Around every run
it reads the platform's CPU. At the end the platform is stopped with SIGTERM and the captured
records are counted against the `captured` endpoint's invocations (pier_endpoint_invocations
_total) and the drops (pier_capture_dropped_records_total). Writes
benchmarks/capture/results/latest.json and prints a Markdown section for docs/benchmarks.md.
With --durable the platform runs with durable capture (a record is written before its
invocation is answered) and the results go to results/latest-durable.json. Timings are
reported, never asserted. Reuses benchmarks/hosting (training, the platform,
signing) and benchmarks/serving (wrk).
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
TARGET_RATIO = 0.9
ENDPOINTS = ("plain", "captured")
MODES = {False: "asynchronous (written after the answer)", True: "durable (written first)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run [10]")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run [2]")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (≥ 3) [3]")
    p.add_argument("--threads", type=int, default=1, help="wrk threads [1]")
    p.add_argument("--connections", default="8,64", help="comma-separated wrk connections [8,64]")
    p.add_argument("--quiet-max", type=float, default=300.0,
                   help="seconds to wait for other processes to calm down first [300]")  # fmt: skip
    p.add_argument("--quiet-cores", type=float, default=0.3, help="see --quiet-max [0.3]")
    p.add_argument("--durable", action="store_true",
                   help="durable capture: PIER_CAPTURE_DURABLE=true on the platform")  # fmt: skip
    p.add_argument("--output", type=Path, default=None,
                   help="JSON results [results/latest.json, latest-durable.json]")  # fmt: skip
    p.add_argument("--work", type=Path, default=RESULTS / "run",
                   help="model, wrk scripts, logs, captured files (emptied first)")  # fmt: skip
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",") if c]
    if args.output is None:
        args.output = RESULTS / ("latest-durable.json" if args.durable else "latest.json")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def create_endpoints(sm: Any, model_dir: Path, captured_dir: Path) -> None:
    sm.create_model(ModelName="bench", PrimaryContainer={"ModelDataUrl": str(model_dir)})
    variant = {
        "VariantName": "primary",
        "ModelName": "bench",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sm.create_endpoint_config(EndpointConfigName="plain", ProductionVariants=[variant])
    sm.create_endpoint_config(
        EndpointConfigName="captured",
        ProductionVariants=[variant],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": captured_dir.as_uri(),
            "CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
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


def endpoint_value(samples: dict[tuple[str, str], float], name: str, endpoint: str) -> float:
    return sum(v for (n, labels), v in samples.items()
               if n == name and f'endpoint="{endpoint}"' in labels)  # fmt: skip


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
            cap["rps"] / plain["rps"]
            for plain, cap in zip(
                [r for r in runs if r["endpoint"] == "plain" and r["connections"] == c],
                [r for r in runs if r["endpoint"] == "captured" and r["connections"] == c],
                strict=True,
            )
            if plain["rps"]
        ]
        out.append(
            {
                "connections": c,
                "plain": med["plain"],
                "captured": med["captured"],
                "throughput_ratio": med["captured"]["rps"] / med["plain"]["rps"],
                "ratio_per_round": [round(x, 3) for x in ratios],
                "added_p50_ms": med["captured"]["p50_ms"] - med["plain"]["p50_ms"],
                "added_platform_cpu_us": med["captured"]["platform_cpu_us_per_request"]
                - med["plain"]["platform_cpu_us_per_request"],
            }
        )
    return out


def markdown(doc: dict[str, Any], command: str) -> str:
    lines = [
        "| connections | plain rps | p50 / p99 ms | captured rps | p50 / p99 ms | ratio "
        "(per round) | platform CPU µs/request plain → captured |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in doc["scenarios"]:
        p, c = s["plain"], s["captured"]
        rounds = ", ".join(f"{x:.2f}" for x in s["ratio_per_round"])
        lines.append(
            f"| {s['connections']} | {p['rps']:,.0f} | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} | "
            f"{c['rps']:,.0f} | {c['p50_ms']:.2f} / {c['p99_ms']:.2f} | "
            f"**{s['throughput_ratio']:.2f}** ({rounds}) | "
            f"{p['platform_cpu_us_per_request']:.0f} → {c['platform_cpu_us_per_request']:.0f} |"
        )
    check = doc.get("capture_check", {})
    lines += [
        "",
        f"Capture mode: {MODES[bool(doc.get('durable'))]}. "
        f"Command: `{command}` ({doc['rounds']} alternating rounds, {doc['duration_s']:g} s per "
        f"run after {doc['warmup_s']:g} s warm-up, wrk {doc['threads']} thread; "
        f"{doc['machine']['cpus']} cores, load average {doc['load_average_start']} at start).",
        f"After SIGTERM: {check.get('records', '?')} records in the files for "
        f"{check.get('invocations', '?')} invocations of `captured`; "
        f"{check.get('dropped', '?')} dropped.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python", "benchmarks/capture/run.py", *(argv or sys.argv[1:])])
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    home = Path(tempfile.mkdtemp(prefix="pier-capture-bench-"))
    captured_dir = work / "captured"
    doc: dict[str, Any] = {
        "benchmark": "capture",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "threads": args.threads,
        "durable": args.durable,
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

        durable = {"PIER_CAPTURE_DURABLE": "true"} if args.durable else {}
        plat = start_platform(home, work / "logs" / "platform.log", durable)
        sm, _ = plat.clients()
        create_endpoints(sm, model_dir, captured_dir)
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
        invocations = endpoint_value(samples, "pier_endpoint_invocations_total", "captured")
        dropped = endpoint_value(samples, "pier_capture_dropped_records_total", "captured")
        doc["capture_check"] = {"invocations": int(invocations), "dropped": int(dropped)}
    except KeyboardInterrupt:
        doc["notes"].append("interrupted")
        code = 130
    except Exception as exc:
        doc["notes"].append(f"failed: {type(exc).__name__}: {exc}")
        say(f"FAILED: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        if plat is not None:
            left = stop_platform(plat)  # SIGTERM: the capturer writes what is queued
            if left:
                doc["notes"].append(f"instances left running: {left}")
        procs.stop_all()
        if (home / "logs").exists():
            shutil.copytree(home / "logs", work / "logs" / "home", dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)

    records = sum(
        len(f.read_bytes().splitlines()) for f in captured_dir.rglob("*.jsonl")
    )  # fmt: skip
    doc.setdefault("capture_check", {})["records"] = records
    doc["runs"] = runs
    doc["scenarios"] = summarize(runs, args.connections) if runs and code == 0 else []
    doc["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    say("")
    for s in doc["scenarios"]:
        verdict = "meets" if s["throughput_ratio"] >= TARGET_RATIO else "misses"
        say(
            f"c{s['connections']}: plain {s['plain']['rps']:,.0f} req/s, captured "
            f"{s['captured']['rps']:,.0f} req/s: ratio {s['throughput_ratio']:.3f} ({verdict} "
            f">= {TARGET_RATIO}); per round {s['ratio_per_round']}; added p50 "
            f"{s['added_p50_ms']:.2f} ms; platform CPU +{s['added_platform_cpu_us']:.0f} µs/request"
        )
    say(f"capture check: {doc['capture_check']}")
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
