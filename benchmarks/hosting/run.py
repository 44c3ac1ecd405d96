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
import contextlib
import http.client
import importlib.util
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "serving"))

import loadgen  # noqa: E402  (benchmarks/serving: wrk script, runner and parser)
import procs  # noqa: E402  (benchmarks/serving: launching, readiness, stopping)

RESULTS = HERE / "results"
REGION = "us-east-1"
MODEL = "bench-diabetes"
CONFIG = "bench-diabetes-config"
VARIANT = "primary"
POLL_S = 0.05  # DescribeEndpoint polling period
OTHER_BENCH = "benchmarks/serving/run.py"
TARGETS = {"throughput_ratio": 0.8, "added_p50_ms": 0.5, "in_service_s": 2.0}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(text, flush=True)


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
    return args


# ------------------------------------------------------------------------------ the machine
def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_other_benchmark(max_s: float) -> dict[str, Any]:
    """Wait (polling every 20 s) until no serving benchmark runs; what was waited and seen."""
    started = time.monotonic()
    seen = False
    while True:
        done = subprocess.run(
            ["pgrep", "-f", OTHER_BENCH], capture_output=True, text=True, check=False
        )
        running = done.stdout.split()
        if not running:
            break
        seen = True
        waited = time.monotonic() - started
        if waited >= max_s:
            say(f"{OTHER_BENCH} still running after {waited:.0f} s: measuring anyway")
            return {"waited_s": round(waited), "other_benchmark_running": True}
        say(f"waiting for {OTHER_BENCH} (pid {', '.join(running)}) to end; load {load_average()}")
        time.sleep(20)
    return {"waited_s": round(time.monotonic() - started), "other_benchmark_seen": seen}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


def background_cores(window_s: float = 1.0) -> float:
    """Cores the machine keeps busy over `window_s` (call it while this benchmark is idle)."""
    before = machine_busy_seconds()
    time.sleep(window_s)
    return (machine_busy_seconds() - before) / window_s


def wait_for_quiet_machine(max_s: float, threshold: float) -> dict[str, Any]:
    """Wait (polling every 10 s) until other processes keep under `threshold` cores busy."""
    started = time.monotonic()
    while True:
        busy = background_cores(2.0)
        waited = time.monotonic() - started
        if busy < threshold:
            return {"quiet_wait_s": round(waited), "background_cores": round(busy, 2)}
        if waited >= max_s:
            say(f"the machine is still busy ({busy:.2f} cores) after {waited:.0f} s: measuring")
            return {
                "quiet_wait_s": round(waited),
                "background_cores": round(busy, 2),
                "still_busy": True,
            }
        say(f"other processes keep {busy:.2f} cores busy; waiting (load {load_average()})")
        time.sleep(8)


def wait_quiet(
    pids: list[int], window_s: float = 0.5, max_cores: float = 0.05, timeout_s: float = 30.0
) -> float:
    """Wait until `pids` together use under `max_cores` CPU; the seconds waited.

    A new instance imports MLflow in the background after its /ping says 200: measuring before
    that ends would charge it to whatever runs next.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(window_s)
        if sum(cpu_seconds(p) for p in pids) - before < max_cores * window_s:
            break
    return time.monotonic() - started


# ------------------------------------------------------------------------------ the platform
def train_model(out_dir: Path) -> Path:
    """examples/train_diabetes.py's train(), imported by path."""
    spec = importlib.util.spec_from_file_location(
        "train_diabetes", ROOT / "examples" / "train_diabetes.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path: Path = module.train(out_dir)
    return path


@dataclass
class Platform:
    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    key_id: str
    secret: str
    instance_pids: dict[int, int | None] = field(default_factory=dict)  # pid -> start ticks

    @property
    def url(self) -> str:
        return f"http://{procs.HOST}:{self.port}"

    def clients(self) -> tuple[Any, Any]:
        import boto3

        session = boto3.Session(
            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret, region_name=REGION
        )
        return (
            session.client("sagemaker", endpoint_url=self.url),
            session.client("sagemaker-runtime", endpoint_url=self.url),
        )

    def instances(self, endpoint: str) -> list[dict[str, Any]]:
        """The instance records (home/instances/<id>/instance.json) of one endpoint."""
        out = []
        for record in sorted((self.home / "instances").glob("*/instance.json")):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(record.read_text())
                if data["spec"]["endpoint"] == endpoint:
                    out.append(data)
                    self.instance_pids[int(data["pid"])] = data.get("start_ticks")
        return out


def start_platform(home: Path, log_path: Path) -> Platform:
    port = procs.free_port()
    pier = Path(sys.executable).with_name("pier")
    # The platform's own settings come from its command line only, not from this shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    cmd = [str(pier), "up", "--home", str(home), "--port", str(port), "--no-mlflow"]
    t0 = time.perf_counter()
    proc = procs.launch(cmd, env, log_path)
    ready = procs.wait_ready(proc, port, "/ping", t0, log_path, timeout_s=120.0)
    creds = json.loads((home / "credentials.json").read_text())
    say(f"pier up on port {port} (pid {proc.pid}), answering /ping after {ready:.2f} s")
    return Platform(proc, port, home, creds["access_key_id"], creds["secret_access_key"])


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] in "ZXx" else int(fields[19])


def stop_platform(plat: Platform) -> list[int]:
    """SIGTERM the platform (it drains and stops its instances); pids of instances it left."""
    procs.stop(plat.proc, grace_s=45.0)
    left = []
    for pid, ticks in plat.instance_pids.items():
        if ticks is not None and _start_ticks(pid) == ticks:  # still the instance we saw
            left.append(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while left and time.monotonic() < deadline:
        left = [p for p in left if _start_ticks(p) == plat.instance_pids[p]]
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


# ------------------------------------------------------------------------------ InService
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


# ------------------------------------------------------------------------------ the requests
def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(procs.HOST, port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def signed_headers(plat: Platform, path: str, body: bytes) -> dict[str, str]:
    """The headers of one request signed by botocore, to be replayed verbatim (15 min valid)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=plat.url + path,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(plat.key_id, plat.secret), "sagemaker", REGION).add_auth(request)
    headers = {"Host": f"{procs.HOST}:{plat.port}"}  # signed, though botocore does not set it
    for name in ("Content-Type", "X-Amz-Date", "X-Amz-Content-SHA256", "Authorization"):
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


def write_signed_lua(script: Path, body_file: Path, headers: dict[str, str]) -> Path:
    """loadgen's POST script plus the signed headers."""
    loadgen.write_lua(script, body_file)
    lines = [f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items()]
    with script.open("a") as f:
        f.write("-- a SigV4 signature replayed (benchmarks/hosting/run.py)\n")
        f.write("\n".join(lines) + "\n")
    return script


_METRIC = re.compile(r"^(pier_[a-z_]+?)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.MULTILINE)


def instance_counters(port: int) -> dict[str, float]:
    """The instance's Prometheus samples (GET /metrics), labels summed up."""
    answer = procs.http_get(port, "/metrics", timeout_s=5.0)
    sums: dict[str, float] = {}
    if answer and answer[0] == 200:
        for name, value in _METRIC.findall(answer[1].decode()):
            sums[name] = sums.get(name, 0.0) + float(value)
    return sums


def _per(before: dict[str, float], after: dict[str, float], num: str, den: str) -> float | None:
    d_den = after.get(den, 0.0) - before.get(den, 0.0)
    return (after.get(num, 0.0) - before.get(num, 0.0)) / d_den if d_den else None


# ------------------------------------------------------------------------------ the load
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


# ------------------------------------------------------------------------------ the profile
_AREAS = (  # (area, substring of a Python frame's file): the innermost match names the area
    ("SigV4 verification (pier/contract/sigv4.py)", "pier/contract/sigv4"),
    ("router: pick + upstream client (pier/router)", "pier/router/"),
    ("runtime API: front door + handler (pier/platform)", "pier/platform/app"),
    ("runtime API: front door + handler (pier/platform)", "pier/platform/api"),
    ("runtime API: front door + handler (pier/platform)", "pier/platform/runtime_api"),
    ("uvicorn HTTP protocol (httptools_impl)", "uvicorn/"),
    ("reconciler / control plane", "pier/control/"),
    ("SQLAlchemy", "sqlalchemy/"),
    ("asyncio (tasks, futures, wait_for, timeouts)", "asyncio/"),
)
# The innermost Python frame is the loop's entry: uvloop's own C code runs (socket reads and
# writes, epoll, callback scheduling) with no Python frame of its own.
_LOOP_AREA = "event loop itself (uvloop C code: socket I/O, epoll, scheduling)"
_LOOP_FRAME = "Runner.run (asyncio/runners.py"
# A thread-pool worker blocked on its queue (a futex): py-spy's idle detection misses it here.
_IDLE_WORKER = "_worker (concurrent/futures/thread.py"


def _frame_file(frame: str) -> str:
    # py-spy raw frames: "function (path/file.py:line)"
    start = frame.rfind(" (")
    return frame[start + 2 : -1] if start >= 0 else frame


def _frame_function(frame: str) -> str:
    start = frame.rfind(" (")
    if start < 0:
        return frame
    where = frame[start + 2 : -1].rsplit(":", 1)[0]
    short = "/".join(where.split("/")[-2:])
    return f"{frame[:start]} ({short})"


def _area(frames: list[str]) -> str:
    python = [f for f in frames if ".py:" in f]
    if not python:
        return "native only"
    if python[-1].startswith(_LOOP_FRAME):
        return _LOOP_AREA
    for frame in reversed(python):
        where = _frame_file(frame)
        hit = next((name for name, part in _AREAS if part in where), None)
        if hit:
            return hit
    return "other Python"


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares per function, per area and per thread, from py-spy's raw
    (collapsed) stacks. Shares are of the non-idle samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = [f for f in stack.split(";") if f]
        thread = next((f for f in parts if f.startswith("thread ")), "thread ?")
        frames = [f for f in parts if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        python = [f for f in frames if ".py:" in f]
        if python and python[-1].startswith(_IDLE_WORKER):  # waiting for work
            idle += n
            continue
        total += n
        threads[thread.split(": ", 1)[-1]] += n
        functions = [_frame_function(f) for f in frames]
        own[functions[-1]] += n
        for fn in set(functions):
            inclusive[fn] += n
        areas[_area(frames)] += n

    def shares(counter: Counter[str], k: int = top) -> list[tuple[str, float]]:
        return [(key, round(100 * v / total, 1)) for key, v in counter.most_common(k)]

    return {
        "samples": total,
        "idle_worker_samples_dropped": idle,
        "areas_pct": shares(areas, 20),
        "threads_pct": shares(threads),
        "self_pct": shares(own),
        "inclusive_pct": shares(inclusive, 2 * top),
    }


# ------------------------------------------------------------------------------ reporting
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


def _sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------ main
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

        plat = start_platform(home, work / "logs" / "platform.log")
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
