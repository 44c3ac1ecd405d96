"""Hosting benchmark: the router's overhead and the time from CreateEndpoint to InService.

    .venv/bin/python benchmarks/hosting/run.py              # 2 rounds, 10 s per run
    .venv/bin/python benchmarks/hosting/run.py --profile    # + py-spy of the platform process

Trains the diabetes model (examples/train_diabetes.py), starts `pier up` on a free port with a
temporary home, creates a model, an endpoint configuration (1 variant, 1 instance) and
endpoints with boto3, and measures CreateEndpoint -> InService (DescribeEndpoint polled every
50 ms). Then loads one endpoint with wrk, 1-row JSON requests: directly against its instance's
/invocations and through the platform's runtime API (POST /endpoints/NAME/invocations, a
SigV4-signed request replayed by wrk), alternating, and reports the medians. Writes
benchmarks/hosting/results/latest.json. Timings are reported, never asserted.
See benchmarks/hosting/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

# Its parts (this directory) and benchmarks/serving's loadgen and procs, also when loaded by path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import procs
from bench import RESULTS, say
from in_service import POLL_S, create_endpoints, delete_endpoint
from load import Loader, Run, measure_pair, median_of
from machine_load import (
    OTHER_BENCH,
    load_average,
    wait_for_other_benchmark,
    wait_for_quiet_machine,
    wait_quiet,
)
from pier_platform import Platform, start_platform, stop_platform, train_model
from results import TARGETS, git_state, table, verdicts, versions
from signed_requests import post


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run [10]")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run [2]")
    p.add_argument("--rounds", type=int, default=2, help="direct/router alternations [2]")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1-2 here) [1]")
    p.add_argument("--connections", default="8,64", help="comma-separated wrk connections [8,64]")
    p.add_argument("--endpoints", type=int, default=3, help="endpoints created one by one [3]")
    p.add_argument(
        "--model-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an Environment entry of the model's container, e.g. PIER_MAX_BATCH_WAIT_MS=1\n"
        "(repeatable; default none)",
    )
    p.add_argument(
        "--platform-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a PIER_* setting of `pier up`, e.g. PIER_BUNDLE_INVOCATIONS=false\n"
        "(repeatable; default none)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after measuring, record the platform process with py-spy during one extra\n"
        "via-router run at the highest concurrency (py-spy must be installed)",
    )
    p.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: also sample native frames (C code of uvloop, httptools, ...)",
    )
    p.add_argument(
        "--wait-max",
        type=float,
        default=1200.0,
        help=f"seconds to wait for a running {OTHER_BENCH} to end before measuring [1200]",
    )
    p.add_argument(
        "--quiet-max",
        type=float,
        default=600.0,
        help="then, seconds to wait until other processes keep under --quiet-cores busy [600]",
    )
    p.add_argument("--quiet-cores", type=float, default=0.3, help="see --quiet-max [0.3]")
    p.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="a direct/router pair during which other processes used more cores than this\n"
        "is run again [0.25]",
    )
    p.add_argument("--retries", type=int, default=3, help="see --max-others [3]")
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON results")
    p.add_argument(
        "--work",
        type=Path,
        default=RESULTS / "run",
        help="model, wrk scripts, logs, profile (emptied first) [results/run]",
    )
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",") if c]
    args.model_env = dict(item.split("=", 1) for item in args.model_env)
    args.platform_env = dict(item.split("=", 1) for item in args.platform_env)
    return args


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    doc: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "wrk_threads": args.threads,
            "connections": args.connections,
            "endpoints": args.endpoints,
            "model_environment": args.model_env,
            "platform_environment": args.platform_env,
            "max_others_cores": args.max_others,
            "retries": args.retries,
            "describe_poll_s": POLL_S,
        },
        "targets": TARGETS,
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform()},
        "git": git_state(),
        "notes": [],
    }
    home = Path(tempfile.mkdtemp(prefix="pier-hosting-bench-"))
    plat: Platform | None = None
    runs: list[Run] = []
    in_service: list[float] = []
    scenarios: list[dict[str, Any]] = []
    code = 0
    try:
        wrk = loadgen.ensure_wrk()
        doc["versions"] = versions(wrk)
        doc["wait"] = wait_for_other_benchmark(args.wait_max)
        doc["wait"] |= wait_for_quiet_machine(args.quiet_max, args.quiet_cores)
        doc["load_average_at_start"] = load_average()
        say(f"load average at start: {doc['load_average_at_start']}")

        say("training the model")
        model_dir = train_model(work / "model")
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True).data.iloc[:1]
        split = {"columns": list(frame.columns), "data": frame.values.tolist()}
        body_file = work / "body-1.json"
        body_file.write_text(json.dumps({"dataframe_split": split}))
        body = body_file.read_bytes()

        plat = start_platform(home, work / "logs" / "platform.log", args.platform_env)
        sm, runtime = plat.clients()
        endpoints = create_endpoints(sm, plat, model_dir, args.endpoints, args.model_env)
        doc["in_service"] = endpoints
        in_service = [e["in_service_s"] for e in endpoints]

        # Load one endpoint; delete the others so that their instances' health checks stay out.
        name = endpoints[0]["endpoint"]
        for extra in endpoints[1:]:
            delete_endpoint(sm, extra["endpoint"])
        record = plat.instances(name)[0]
        instance_port = int(record.get("port") or record["url"].rsplit(":", 1)[1])
        instance_pid = int(record["pid"])
        invoke_path = f"/endpoints/{name}/invocations"

        status, expected = post(
            instance_port, "/invocations", body, {"Content-Type": "application/json"}
        )
        if status != 200:
            raise RuntimeError(f"the instance answered {status}: {expected[:300]!r}")
        answer = runtime.invoke_endpoint(
            EndpointName=name, Body=body, ContentType="application/json"
        )
        if json.loads(answer["Body"].read()) != json.loads(expected):
            raise RuntimeError("boto3's InvokeEndpoint and the instance disagree")
        say(f"{name}: instance on port {instance_port} (pid {instance_pid}); answers agree")

        loader = Loader(
            args, wrk, plat, instance_port, instance_pid, invoke_path, body_file, work, expected
        )
        wait_quiet([plat.proc.pid, instance_pid])
        doc["load_average_before_load"] = load_average()
        for round_no in range(1, args.rounds + 1):
            for connections in args.connections:
                runs += measure_pair(loader, connections, round_no)
        doc["load_average_after_load"] = load_average()
        if args.profile:
            say(f"profiling the platform with py-spy (c{max(args.connections)}, via the router)")
            doc["profile"] = loader.profile(max(args.connections), work / "platform-profile.txt")
    except KeyboardInterrupt:
        doc["notes"].append("interrupted")
        say("interrupted: stopping the platform")
        code = 130
    except Exception as exc:  # boto3's ClientError, wrk, a failed instance: report what we have
        doc["notes"].append(f"failed: {type(exc).__name__}: {exc}")
        say(f"FAILED: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        if plat is not None:
            left = stop_platform(plat)
            if left:
                doc["notes"].append(f"instances left running after the platform stopped: {left}")
        procs.stop_all()
        logs = home / "logs"
        if logs.exists():
            shutil.copytree(logs, work / "logs" / "home", dirs_exist_ok=True)
        for log in (home / "instances").glob("*/serve.log"):
            shutil.copy(log, work / "logs" / f"{log.parent.name}.log")
        shutil.rmtree(home, ignore_errors=True)

    for connections in args.connections:
        kept = [r for r in runs if r.accepted and r.connections == connections]
        direct = [r for r in kept if r.target == "direct"]
        router = [r for r in kept if r.target == "router"]
        if not direct or not router:
            continue
        d, r = median_of(direct), median_of(router)
        scenarios.append(
            {
                "scenario": f"c{connections} 1 row",
                "connections": connections,
                "direct": d,
                "router": r,
                "throughput_ratio": r["rps"] / d["rps"] if d["rps"] else float("nan"),
                "added_p50_ms": r["p50_ms"] - d["p50_ms"],
                "added_p99_ms": r["p99_ms"] - d["p99_ms"],
                # Little's law: requests in flight / throughput = mean time per request; minus
                # the mean time inside the instance's app = the mean time spent elsewhere (wrk,
                # the kernel, uvicorn's parsing and, via the router, the whole platform).
                "ms_outside_instance_app": {
                    k: 1e3 * connections / v["rps"] - v["instance_mean_ms_in_app"]
                    for k, v in (("direct", d), ("router", r))
                    if v["rps"] and v["instance_mean_ms_in_app"] is not None
                },
            }
        )
    doc["scenarios"] = scenarios
    doc["runs"] = [r.as_dict() for r in runs]
    doc["verdicts"] = verdicts(scenarios, in_service)
    doc["finished"] = datetime.now(UTC).isoformat(timespec="seconds")

    say("")
    say(
        f"Hosting benchmark: wrk {args.threads} thread(s), {args.duration:g} s per run after "
        f"{args.warmup:g} s warm-up, medians of {args.rounds} alternating rounds; 1-row JSON"
    )
    say(table(scenarios, in_service))
    for line in doc["verdicts"]:
        say(f"  {line}")
    profile = doc.get("profile")
    if profile and "areas_pct" in profile:
        say(f"platform profile ({profile['samples']} samples, % of non-idle samples):")
        for area, pct in profile["areas_pct"]:
            say(f"  {pct:5.1f} %  {area}")
    elif profile:
        say(f"profile: {profile.get('error')}")
    for note in doc["notes"]:
        say(f"• {note}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n")
    say(f"results: {args.output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
