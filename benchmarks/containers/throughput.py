"""(4) Endpoint throughput at c64: `pier up --backend docker` against the process backend.

Two platforms at once (fresh homes, --no-mlflow), one endpoint each serving the same model
(one variant, one ml.m5.large instance); wrk loads them in turn through the runtime API
(POST /endpoints/NAME/invocations, a SigV4-signed 1-row JSON request replayed), process then
docker in odd rounds, docker then process in even ones. Medians over the rounds; the ratio is
docker ÷ process (target ≥ 0.9).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import PIER, ROOT, clean_env, free_port, one_row_body, say, train_model, wait_ping

sys.path.insert(0, str(ROOT / "benchmarks" / "serving"))
sys.path.insert(0, str(ROOT / "benchmarks" / "hosting"))  # its Platform and SigV4 replay
import loadgen  # (benchmarks/serving: wrk script, runner and parser)
import procs  # (benchmarks/serving: launching, stopping)
from pier_platform import Platform  # (benchmarks/hosting)
from signed_requests import post, signed_headers, write_signed_lua

ENDPOINT = "bench-diabetes"


def start(backend: str, work: Path, base_image: str) -> Any:
    home = work / f"home-{backend}"
    port = free_port()
    cmd = [str(PIER), "up", "--home", str(home), "--port", str(port), "--no-mlflow"]
    if backend == "docker":  # MLflow models run in pier's serving image, built on base_image
        cmd += ["--backend", "docker", "--base-image", base_image]
    log = work / f"pier-up-{backend}.log"
    t0 = time.perf_counter()
    proc = procs.launch(cmd, clean_env(), log)
    wait_ping(port, t0, 120.0, alive=lambda: proc.poll() is None)
    creds = json.loads((home / "credentials.json").read_text())
    return Platform(proc, port, home, creds["access_key_id"], creds["secret_access_key"])


def deploy(plat: Any, model: Path, timeout_s: float) -> float:
    """CreateEndpoint → InService seconds (the docker backend may build its image first)."""
    sm, _ = plat.clients()
    sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(model)})
    sm.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[{"VariantName": "primary", "ModelName": "m",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
                             "InitialVariantWeight": 1.0}],
    )  # fmt: skip
    t0 = time.perf_counter()
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c")
    while time.perf_counter() - t0 < timeout_s:
        described = sm.describe_endpoint(EndpointName=ENDPOINT)
        if described["EndpointStatus"] == "InService":
            return time.perf_counter() - t0
        if described["EndpointStatus"] == "Failed":
            raise RuntimeError(f"the endpoint failed: {described.get('FailureReason')}")
        time.sleep(0.2)
    raise RuntimeError(f"the endpoint was not InService after {timeout_s:.0f} s")


def script(plat: Any, backend: str, body_file: Path, work: Path) -> Path:
    path = f"/endpoints/{ENDPOINT}/invocations"
    body = body_file.read_bytes()
    headers = signed_headers(plat, path, body)
    status, answer = post(plat.port, path, body, headers)
    if status != 200:
        raise RuntimeError(f"{backend}: the signed request answered {status}: {answer[:300]!r}")
    return write_signed_lua(work / f"{backend}.lua", body_file, headers)


def measure(
    work: Path, rounds: int, duration_s: float, connections: int, base_image: str
) -> dict[str, Any]:
    say(f"== (4) throughput at c{connections}: docker backend vs process backend")
    wrk = loadgen.ensure_wrk()
    model = train_model(work / "model-v1", random_state=0)
    body_file = work / "body.json"
    body_file.write_bytes(one_row_body(model))
    platforms: dict[str, Any] = {}
    out: dict[str, Any] = {"connections": connections, "duration_s": duration_s}
    try:
        for backend in ("process", "docker"):
            platforms[backend] = start(backend, work, base_image)
            seconds = deploy(platforms[backend], model, 900.0)
            say(f"  {backend}: InService {seconds:.1f} s after CreateEndpoint")
            out[f"{backend}_in_service_s"] = round(seconds, 2)
        runs: dict[str, list[dict[str, Any]]] = {"process": [], "docker": []}
        path = f"/endpoints/{ENDPOINT}/invocations"
        for r in range(1, rounds + 1):
            order = ("process", "docker") if r % 2 else ("docker", "process")
            for backend in order:
                plat = platforms[backend]
                lua = script(plat, backend, body_file, work)  # signatures last 15 min
                loadgen.run_wrk(wrk, plat.port, path, lua, connections, 2, 1)  # warm-up
                load = loadgen.run_wrk(wrk, plat.port, path, lua, connections, duration_s, 1)
                say(f"  round {r} {backend:<7} {load.rps:>8,.0f} req/s  p50 {load.p50_ms:.2f}"
                    f"  p99 {load.p99_ms:.2f} ms  errors {load.errors}")  # fmt: skip
                runs[backend].append(load.as_dict())
        for backend, loads in runs.items():
            out[backend] = {
                "rps": round(statistics.median(x["rps"] for x in loads), 1),
                "p50_ms": round(statistics.median(x["p50_ms"] for x in loads), 2),
                "p99_ms": round(statistics.median(x["p99_ms"] for x in loads), 2),
                "errors": sum(x["errors"] for x in loads),
                "rounds": loads,
            }
        out["ratio"] = round(out["docker"]["rps"] / out["process"]["rps"], 3)
        per_round = [
            d["rps"] / p["rps"] for d, p in zip(runs["docker"], runs["process"], strict=True)
        ]
        out["ratio_per_round"] = [round(x, 3) for x in per_round]
        out["ran"] = True
    finally:
        for plat in platforms.values():
            procs.stop(plat.proc, grace_s=60.0)
    return out
