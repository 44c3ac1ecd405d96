"""The Docker backend against the process backend: endpoint throughput and container cold start.

    PIER_BASE_IMAGE=pier-base:bookworm .venv/bin/python benchmarks/containers/backends.py

Trains the diabetes model (examples/train_diabetes.py), starts two platforms in one run, `pier up
--backend process` and `pier up --backend docker` (temporary homes, free ports), deploys the same
model on each (1 variant, 1 instance, ml.m5.large), then loads both endpoints through the
runtime API (POST /endpoints/NAME/invocations, a SigV4 signature replayed by wrk, 1-row JSON),
alternating process/docker for `--rounds` rounds of `--duration` s at `--connections`, and
reports the medians and their ratio. Cold start: DockerBackend.launch -> HEALTHY for the same
model's serving image (already built), `--starts` times, median. Everything is on 127.0.0.1.
Writes benchmarks/containers/results/backends.json. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "serving"))
sys.path.insert(0, str(ROOT / "benchmarks" / "hosting"))

import loadgen  # noqa: E402  (benchmarks/serving: wrk script, runner and parser)
import procs  # noqa: E402
import run as hosting  # noqa: E402  (benchmarks/hosting/run.py: platform, signing, training)

BODY = {"dataframe_split": {"columns": [f"c{i}" for i in range(10)], "data": [[0.01] * 10]}}
TARGETS = {"throughput_ratio": 0.9, "cold_start_s": 2.0}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--starts", type=int, default=5)
    p.add_argument("--base-image", default=os.environ.get("PIER_BASE_IMAGE", "pier-base:bookworm"))
    return p.parse_args()


def start(home: Path, backend: str, base_image: str) -> hosting.Platform:
    port = procs.free_port()
    pier = Path(sys.executable).with_name("pier")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    env["PIER_BASE_IMAGE"] = base_image
    cmd = [str(pier), "up", "--home", str(home), "--port", str(port), "--no-mlflow",
           "--backend", backend]  # fmt: skip
    log = home.parent / f"pier-up-{backend}.log"
    t0 = time.perf_counter()
    proc = procs.launch(cmd, env, log)
    procs.wait_ready(proc, port, "/ping", t0, log, timeout_s=120.0)
    creds = json.loads((home / "credentials.json").read_text())
    return hosting.Platform(proc, port, home, creds["access_key_id"], creds["secret_access_key"])


def deploy(plat: hosting.Platform, model_dir: Path, name: str) -> None:
    sm, _ = plat.clients()
    sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(model_dir)})
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "primary", "ModelName": name,
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 900}
    )


def cold_starts(model_dir: Path, base_image: str, count: int, work: Path) -> list[float]:
    """DockerBackend.launch -> HEALTHY, `count` times; the serving image exists already (a
    first, untimed launch builds or finds it)."""
    from pier.hosting.base import InstanceSpec, InstanceState, new_instance_id
    from pier.hosting.docker_backend import DockerBackend

    backend = DockerBackend(work / "cold", base_image=base_image, cache_dir=work / "cache")
    results: list[float] = []

    def spec() -> InstanceSpec:
        return InstanceSpec(endpoint="cold", variant="v", model_path=str(model_dir),
                            instance_id=new_instance_id("cold", "v"),
                            instance_type="ml.m5.large")  # fmt: skip

    async def timed() -> None:
        warm = await backend.launch(spec())
        await backend.wait_healthy(warm, 120)
        await backend.stop(warm, grace_s=10)
        for _ in range(count):
            t0 = time.perf_counter()
            instance = await backend.launch(spec())
            await backend.wait_healthy(instance, 60)
            if instance.state is not InstanceState.HEALTHY:
                raise SystemExit(f"cold start failed: {instance.failure}")
            results.append(time.perf_counter() - t0)
            await backend.stop(instance, grace_s=10)

    asyncio.run(timed())
    return results


def main() -> None:
    args = parse_args()
    wrk = loadgen.ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="pier-bench-backends-"))
    model_dir = hosting.train_model(work / "model")
    body_file = work / "body.json"
    body_file.write_bytes(json.dumps(BODY).encode())
    platforms: dict[str, hosting.Platform] = {}
    runs: dict[str, list[dict[str, float]]] = {"process": [], "docker": []}
    try:
        for backend in ("process", "docker"):
            t0 = time.perf_counter()
            platforms[backend] = start(work / f"home-{backend}", backend, args.base_image)
            deploy(platforms[backend], model_dir, "bench")
            hosting.say(f"{backend}: InService after {time.perf_counter() - t0:.1f} s")
        scripts = {}
        path = "/endpoints/bench/invocations"
        for backend, plat in platforms.items():
            headers = hosting.signed_headers(plat, path, body_file.read_bytes())
            scripts[backend] = hosting.write_signed_lua(work / f"{backend}.lua", body_file, headers)
            loadgen.run_wrk(wrk, plat.port, path, scripts[backend], args.connections, 2, 1)
        for round_no in range(1, args.rounds + 1):
            for backend, plat in platforms.items():
                load = loadgen.run_wrk(
                    wrk, plat.port, path, scripts[backend], args.connections, args.duration, 1
                )
                runs[backend].append({"rps": load.rps, "p50_ms": load.p50_ms,
                                      "p99_ms": load.p99_ms})  # fmt: skip
                hosting.say(f"  round {round_no} c{args.connections} {backend:<7} "
                            f"{load.rps:>8,.0f} req/s  p50 {load.p50_ms:.2f} ms  "
                            f"p99 {load.p99_ms:.2f} ms")  # fmt: skip
    finally:
        for plat in platforms.values():
            hosting.stop_platform(plat)
    starts = cold_starts(model_dir, args.base_image, args.starts, work)
    median = {b: statistics.median(r["rps"] for r in rs) for b, rs in runs.items()}
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "connections": args.connections,
        "duration_s": args.duration,
        "runs": runs,
        "median_rps": median,
        "throughput_ratio": median["docker"] / median["process"],
        "cold_start_s": {"runs": starts, "median": statistics.median(starts)},
        "targets": TARGETS,
    }
    out = HERE / "results" / "backends.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    hosting.say(
        f"c{args.connections}: process {median['process']:,.0f} req/s, docker "
        f"{median['docker']:,.0f} req/s (ratio {result['throughput_ratio']:.2f}); container "
        f"cold start (launch -> healthy) median {statistics.median(starts):.2f} s; {out}"
    )


if __name__ == "__main__":
    main()
