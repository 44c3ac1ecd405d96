"""Rollouts benchmark: deployment guardrails under steady load.

    .venv/bin/python benchmarks/rollouts/run.py               # ≈ 4 min
    .venv/bin/python benchmarks/rollouts/run.py --help

Starts `pier up` (temporary home, free port, no MLflow), deploys endpoint `rollouts` on model A
(one instance), and keeps 8 concurrent requests in flight through the runtime API (POST
/endpoints/rollouts/invocations, one botocore SigV4 signature replayed, as benchmarks/hosting
does) for the whole run. Models A and B answer differently, so every answer says which fleet
gave it. Then, in order: a CANARY update to B (25%), a LINEAR update to A (50% steps), a
rolling update to B on two instances (batches of one), and a CANARY update to A (50%) watched
by an alarm that is set to ALARM during the canary's bake (an auto-rollback). For each: the
requests that failed (non-2xx or no answer; target 0), p99 latency during the rollout against
the 10 s before it (target ≤ 1.5×), and for the rollback the time from the SetAlarmState call
to the last request the new fleet answered (target ≤ 2 s). Timings are reported, never
asserted. Writes benchmarks/rollouts/results/latest.json. See benchmarks/rollouts/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

# benchmarks/hosting's parts (the platform, the signature) and benchmarks/serving's procs.
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serving"))
sys.path.insert(0, str(HERE.parent / "hosting"))

from bench import say  # noqa: E402
from pier_platform import Platform, start_platform, stop_platform  # noqa: E402
from signed_requests import signed_headers  # noqa: E402

ENDPOINT = "rollouts"
PATH = f"/endpoints/{ENDPOINT}/invocations"
BODY = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}).encode()
ANSWERS = {15.0: "A", 98.0: "B"}  # the two models' answers to BODY
TARGETS = {"failed": 0, "p99_ratio": 1.5, "alarm_to_old_fleet_s": 2.0}


def save_models(root: Path) -> dict[str, Path]:
    """Models A (y = a + 2b + 10) and B (y = -3a + 0.5b + 100) as MLflow sklearn models."""
    import logging
    import warnings

    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 5.0], "b": [1.0, 0.0, 1.0, 2.0, -1.0]})
    out = {}
    for name, (ca, cb, c) in {"a": (1.0, 2.0, 10.0), "b": (-3.0, 0.5, 100.0)}.items():
        path = root / f"model-{name}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.sklearn.save_model(
                LinearRegression().fit(X, X["a"] * ca + X["b"] * cb + c), str(path),
                serialization_format="cloudpickle", pip_requirements=["mlflow", "scikit-learn"],
            )  # fmt: skip
        out[name] = path
    return out


@dataclass
class Load:
    """`concurrency` requests always in flight (asyncio + httpx, in a thread of its own)."""

    plat: Platform
    concurrency: int = 8
    # (sent, answered, status, fleet label or "")
    records: list[tuple[float, float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _headers: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        self._headers = signed_headers(self.plat, PATH, BODY)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()

    def resign(self) -> None:
        """A fresh signature (pier accepts one for 15 minutes, as AWS does)."""
        self._headers = signed_headers(self.plat, PATH, BODY)

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.plat.url, limits=limits, timeout=60) as c:
            await asyncio.gather(*(self._worker(c) for _ in range(self.concurrency)))

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            sent = time.time()
            try:
                r = await client.post(PATH, content=BODY, headers=self._headers)
                label = ""
                if r.status_code == 200:
                    label = ANSWERS.get(round(float(r.json()["predictions"][0]), 6), "?")
                self.records.append((sent, time.time(), r.status_code, label))
            except Exception:
                self.records.append((sent, time.time(), 0, ""))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def window(self, start: float, end: float) -> list[tuple[float, float, int, str]]:
        return [r for r in list(self.records) if start <= r[0] and r[1] <= end]


def p99_ms(records: list[tuple[float, float, int, str]]) -> float | None:
    latencies = sorted((got - sent) * 1000 for sent, got, status, _ in records if status == 200)
    if not latencies:
        return None
    return latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]


def wait_in_service(sm: Any) -> None:
    while sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] != "InService":
        time.sleep(0.1)


def wait_baking(sm: Any) -> None:
    while True:
        d = sm.describe_endpoint(EndpointName=ENDPOINT)
        pending = d.get("PendingDeploymentSummary", {}).get("ProductionVariants", [{}])[0]
        if any(s["Status"] == "Baking" for s in pending.get("VariantStatus", [])):
            return
        if d["EndpointStatus"] != "Updating":
            raise RuntimeError(f"the update ended before it baked: {d.get('FailureReason')}")
        time.sleep(0.05)


def canary(percent: int, wait: int, *alarms: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": wait,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": percent},
            }
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def scenario(
    name: str, load: Load, sm: Any, cw: Any, config: str, deployment: dict[str, Any],
    baseline_s: float, alarm: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One update under the running load; its figures."""
    load.resign()
    before_start = time.time()
    time.sleep(baseline_s)
    start = time.time()
    sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=config,
                       DeploymentConfig=deployment)  # fmt: skip
    fired = None
    if alarm is not None:
        wait_baking(sm)
        time.sleep(2)  # the canary takes traffic
        fired = time.time()
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="benchmark")
    wait_in_service(sm)
    end = time.time()
    time.sleep(1)
    before, during = load.window(before_start, start), load.window(start, end)
    failed = [r for r in load.window(start, end + 1) if r[2] != 200]
    d = sm.describe_endpoint(EndpointName=ENDPOINT)
    out: dict[str, Any] = {
        "scenario": name,
        "to": config,
        "ended_on": d["EndpointConfigName"],
        "failure_reason": d.get("FailureReason"),
        "seconds": round(end - start, 1),
        "requests": len(during),
        "failed": len(failed),
        "p99_before_ms": p99_ms(before),
        "p99_during_ms": p99_ms(during),
    }
    if out["p99_before_ms"] and out["p99_during_ms"]:
        out["p99_ratio"] = round(out["p99_during_ms"] / out["p99_before_ms"], 2)
    if fired is not None:
        new_label = "A" if config.startswith("cfg-a") else "B"
        new_after = [r[0] for r in load.window(fired - 60, end + 1) if r[3] == new_label]
        last_new = max(new_after) if new_after else fired
        out["alarm_to_old_fleet_s"] = round(max(0.0, last_new - fired), 3)
    say(json.dumps(out))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    p.add_argument("--wait", type=int, default=5, help="WaitIntervalInSeconds of each step (5)")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds measured before (10)")
    p.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="pier-rollouts-") as tmp:
        root = Path(tmp)
        models = save_models(root)
        plat = start_platform(root / "home", root / "platform.log")
        results: list[dict[str, Any]] = []
        load = Load(plat, args.concurrency)
        try:
            sm, _ = plat.clients()
            import boto3

            cw = boto3.client("cloudwatch", endpoint_url=plat.url, region_name="us-east-1",
                              aws_access_key_id=plat.key_id,
                              aws_secret_access_key=plat.secret)  # fmt: skip
            for name, path in models.items():
                sm.create_model(ModelName=f"model-{name}",
                                PrimaryContainer={"ModelDataUrl": str(path)})  # fmt: skip
                for count in (1, 2):
                    sm.create_endpoint_config(
                        EndpointConfigName=f"cfg-{name}{'-two' if count == 2 else ''}",
                        ProductionVariants=[{"VariantName": "main", "ModelName": f"model-{name}",
                                             "InitialInstanceCount": count,
                                             "InstanceType": "ml.m5.large"}],
                    )  # fmt: skip
            sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="cfg-a")
            wait_in_service(sm)
            cw.put_metric_alarm(
                AlarmName="rollouts-errors", Namespace="AWS/SageMaker",
                MetricName="Invocation5XXErrors",
                Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT},
                            {"Name": "VariantName", "Value": "main"}],
                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )  # fmt: skip
            load.start()
            w = args.wait
            linear = {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR", "WaitIntervalInSeconds": w,
                        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                    }
                }
            }  # fmt: skip
            rolling = {
                "RollingUpdatePolicy": {
                    "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                    "WaitIntervalInSeconds": w,
                }
            }
            runs = [
                ("canary 25%", "cfg-b", canary(25, w), None),
                ("linear 50% steps", "cfg-a", linear, None),
                ("rolling, batches of 1 (1 -> 2 instances)", "cfg-b-two", rolling, None),
                ("canary 50% + alarm -> rollback", "cfg-a",
                 canary(50, 120, "rollouts-errors"), "rollouts-errors"),
            ]  # fmt: skip
            for name, config, deployment, alarm in runs:
                say(f"-- {name}")
                results.append(scenario(name, load, sm, cw, config, deployment, args.baseline,
                                        alarm))  # fmt: skip
        finally:
            load.stop()
            plat.instances(ENDPOINT)
            stop_platform(plat)
    verdicts = {
        r["scenario"]: {
            "failed": r["failed"] == TARGETS["failed"],
            "p99_ratio": r.get("p99_ratio", 99) <= TARGETS["p99_ratio"],
            **(
                {"alarm_to_old_fleet_s": r["alarm_to_old_fleet_s"] <= 2.0}
                if "alarm_to_old_fleet_s" in r
                else {}
            ),
        }
        for r in results
    }
    report = {
        "started": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "concurrency": args.concurrency,
        "wait_interval_s": args.wait,
        "targets": TARGETS,
        "results": results,
        "verdicts": verdicts,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    say(f"\n{'scenario':45} {'requests':>8} {'failed':>6} {'p99 before':>10} "
        f"{'p99 during':>10} {'ratio':>5} {'alarm->old':>10}")  # fmt: skip
    for r in results:
        say(f"{r['scenario']:45} {r['requests']:>8} {r['failed']:>6} "
            f"{r['p99_before_ms'] or 0:>8.1f}ms {r['p99_during_ms'] or 0:>8.1f}ms "
            f"{r.get('p99_ratio', 0):>5.2f} {r.get('alarm_to_old_fleet_s', '-'):>10}")  # fmt: skip
    say(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
