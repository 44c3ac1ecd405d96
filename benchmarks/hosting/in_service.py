"""CreateEndpoint -> InService: endpoints created one by one, timed, and where the time went."""

from __future__ import annotations

import contextlib
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import say
from machine_load import cpu_seconds, load_average, machine_busy_seconds, wait_quiet
from pier_platform import Platform

MODEL = "bench-diabetes"
CONFIG = "bench-diabetes-config"
VARIANT = "primary"
POLL_S = 0.05  # DescribeEndpoint polling period


def create_endpoints(
    sm: Any, plat: Platform, model_dir: Path, count: int, env: dict[str, str]
) -> list[dict[str, Any]]:
    """Create `count` endpoints one after another; CreateEndpoint -> InService for each."""
    container: dict[str, Any] = {"ModelDataUrl": str(model_dir)}
    if env:
        container["Environment"] = env
    sm.create_model(ModelName=MODEL, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=CONFIG,
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": MODEL,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    out = []
    for i in range(1, count + 1):
        name = f"bench-{i}"
        wait_quiet([plat.proc.pid, *plat.instance_pids])
        loadavg = load_average()
        ours0 = sum(cpu_seconds(p) for p in (os.getpid(), plat.proc.pid, *plat.instance_pids))
        busy0 = machine_busy_seconds()
        wall0 = time.time()
        t0 = time.perf_counter()
        sm.create_endpoint(EndpointName=name, EndpointConfigName=CONFIG)
        created = time.perf_counter() - t0
        polls = 0
        while True:
            described = sm.describe_endpoint(EndpointName=name)
            polls += 1
            status = described["EndpointStatus"]
            if status != "Creating":
                break
            time.sleep(POLL_S)
        elapsed = time.perf_counter() - t0
        busy = machine_busy_seconds() - busy0
        if status != "InService":
            raise RuntimeError(f"{name} is {status}: {described.get('FailureReason', '')}")
        instances = plat.instances(name)
        if len(instances) != 1:
            raise RuntimeError(f"{name}: expected 1 instance record, found {len(instances)}")
        # this script, the platform and every instance (the new one included) against the rest
        ours = sum(cpu_seconds(p) for p in (os.getpid(), plat.proc.pid, *plat.instance_pids))
        others = max(0.0, (busy - (ours - ours0)) / elapsed)
        log = plat.home / "instances" / instances[0]["spec"]["instance_id"] / "serve.log"
        phases = in_service_phases(instances[0], log, wall0, wall0 + elapsed)
        say(
            f"{name}: InService {elapsed:.2f} s after CreateEndpoint (the call took "
            f"{created * 1e3:.0f} ms; {polls} DescribeEndpoint calls; load {loadavg}; "
            f"other processes {others:.2f} cores)"
        )
        if phases:
            say("    " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
        out.append(
            {
                "endpoint": name,
                "in_service_s": round(elapsed, 4),
                "create_call_ms": round(created * 1e3, 1),
                "describe_calls": polls,
                "load_average_before": loadavg,
                "others_cores_during": round(others, 3),
                "instance_url": instances[0]["url"],
                "phases_s": phases,
            }
        )
    return out


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _log_time(line: str) -> float | None:
    """The wall-clock time (epoch seconds) of a log line, written in local time."""
    found = _LOG_TIME.match(line)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def in_service_phases(record: dict[str, Any], log: Path, created: float, seen: float) -> dict:
    """Where the time from CreateEndpoint to InService went, in seconds (from the logs).

    `created` and `seen` are epoch seconds: the CreateEndpoint call and the first
    DescribeEndpoint that said InService. Log times have millisecond resolution.
    """
    launched = datetime.fromisoformat(record["started_at"]).timestamp()
    marks: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            t = _log_time(line)
            if t is None:
                continue
            if "pier.serving: pier serve " in line:
                marks.setdefault("serving", t)
            elif "pier.serving: model loaded in" in line:
                marks.setdefault("loaded", t)
            elif "pier.serving: model warm" in line:
                marks.setdefault("warm", t)
    if len(marks) < 3:
        return {}
    return {
        "platform_until_launch": round(launched - created, 3),
        "process_start_and_imports": round(marks["serving"] - launched, 3),
        "model_load": round(marks["loaded"] - marks["serving"], 3),
        "warm_up_request": round(marks["warm"] - marks["loaded"], 3),
        "until_describe_says_in_service": round(seen - marks["warm"], 3),
    }


def delete_endpoint(sm: Any, name: str, timeout_s: float = 60.0) -> None:
    from botocore.exceptions import ClientError

    sm.delete_endpoint(EndpointName=name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            sm.describe_endpoint(EndpointName=name)
        except ClientError:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} was not deleted within {timeout_s:g} s")
