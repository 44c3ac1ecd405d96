"""Invocation latency while a large monitoring execution runs: analysis in a thread of the
platform's process (before) vs in a worker process (after, the default), in one run.

For each mode (`PIER_MONITORING_WORKER=thread`, then `process`) a `pier up` serves one endpoint
(a linear sklearn model, two features) whose capture destination holds `--rows` captured rows
(1,000 records of `--rows`/1,000 rows, inferred 10 minutes ago), with a baseline. One client
thread invokes the endpoint back to back: `--requests` times with nothing else running
(idle), then while a NOW monitoring schedule's execution analyses the window, until the
execution ends. Reported per mode: p50/p99 of both phases and the execution's duration; and
the ratio thread/process of the p99 during the execution. Timings are reported, never asserted.

    .venv/bin/python benchmarks/monitor/invocation_p99.py                 # 1,000,000 rows
    .venv/bin/python benchmarks/monitor/invocation_p99.py --rows 100000   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "serving"))
import procs  # noqa: E402  (benchmarks/serving: launching, readiness, stopping)

RESULTS = HERE / "results"
ROLE = "arn:aws:iam::000000000000:role/pier"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_model(path: Path) -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 5.0], "b": [1.0, 0.0, 1.0, 2.0, -1.0]})
    model = LinearRegression().fit(X, X["a"] + 2 * X["b"])
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(X, model.predict(X)),
        serialization_format="cloudpickle", pip_requirements=["mlflow", "scikit-learn"],
    )  # fmt: skip


def make_capture(root: Path, rows: int, when: datetime) -> None:
    """`rows` rows in 1,000 SageMaker capture records, in SageMaker's layout."""
    import numpy as np

    rng = np.random.default_rng(0)
    per = max(1, rows // 1000)
    directory = root / "bench" / "main" / when.strftime("%Y/%m/%d/%H")
    directory.mkdir(parents=True, exist_ok=True)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    with (directory / "00-00-000-bench.jsonl").open("w") as out:
        for i in range(1000):
            data = np.round(rng.normal([0.0, 5.0], [1.0, 2.0], (per, 2)), 4).tolist()
            body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": data}})
            record = {
                "captureData": {
                    "endpointInput": {"observedContentType": "application/json",
                                      "mode": "INPUT", "data": body, "encoding": "JSON"},
                    "endpointOutput": {"observedContentType": "application/json",
                                       "mode": "OUTPUT", "data": '{"predictions": [1.0]}',
                                       "encoding": "JSON"},
                },
                "eventMetadata": {"eventId": f"bench-{i}", "inferenceTime": stamp},
                "eventVersion": "0",
            }  # fmt: skip
            out.write(json.dumps(record) + "\n")


def make_baseline(directory: Path) -> None:
    import numpy as np
    import pandas as pd

    from pier.monitor.stats.baseline import suggest_baseline, write_baseline

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.normal(5, 2, 5000)})
    write_baseline(suggest_baseline(frame), directory)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_mode(mode: str, work: Path, model: Path, capture: Path, baseline: Path,
             requests: int) -> dict[str, Any]:  # fmt: skip
    import boto3

    home = work / f"home-{mode}"
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    env["PIER_MONITORING_WORKER"] = mode
    pier = Path(sys.executable).with_name("pier")
    cmd = [str(pier), "up", "--home", str(home), "--port", str(port), "--no-mlflow"]
    proc = procs.launch(cmd, env, work / f"pier-up-{mode}.log")
    try:
        procs.wait_ready(proc, port, "/ping", time.perf_counter(), work / f"pier-up-{mode}.log",
                         timeout_s=300.0)  # fmt: skip
        creds = json.loads((home / "credentials.json").read_text())
        session = boto3.Session(aws_access_key_id=creds["access_key_id"],
                                aws_secret_access_key=creds["secret_access_key"],
                                region_name="us-east-1")  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        sm = session.client("sagemaker", endpoint_url=url)
        rt = session.client("sagemaker-runtime", endpoint_url=url)
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(model)})
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "main", "ModelName": "m",
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
            DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 1,
                               "DestinationS3Uri": capture.as_uri(),
                               "CaptureOptions": [{"CaptureMode": "Input"}]},
        )  # fmt: skip
        sm.create_endpoint(EndpointName="bench", EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="bench", WaiterConfig={"Delay": 1, "MaxAttempts": 300}
        )
        body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})

        def invoke() -> float:
            t0 = time.perf_counter()
            rt.invoke_endpoint(EndpointName="bench", Body=body, ContentType="application/json")
            return (time.perf_counter() - t0) * 1000

        for _ in range(20):  # warm up connections and the instance
            invoke()
        idle = [invoke() for _ in range(requests)]
        during: list[float] = []
        done = threading.Event()

        def client() -> None:
            while not done.is_set():
                during.append(invoke())

        thread = threading.Thread(target=client)
        job = {
            "MonitoringInputs": [{"EndpointInput": {"EndpointName": "bench",
                                                    "LocalPath": "/opt/ml/processing/input"}}],
            "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                "S3Uri": (work / f"reports-{mode}").as_uri(),
                "LocalPath": "/opt/ml/processing/output"}}]},
            "MonitoringResources": {"ClusterConfig": {"InstanceCount": 1,
                                                      "InstanceType": "ml.m5.large",
                                                      "VolumeSizeInGB": 20}},
            "MonitoringAppSpecification": {"ImageUri": "pier/model-monitor"},
            "RoleArn": ROLE,
            "BaselineConfig": {
                "ConstraintsResource": {"S3Uri": (baseline / "constraints.json").as_uri()},
                "StatisticsResource": {"S3Uri": (baseline / "statistics.json").as_uri()},
            },
        }  # fmt: skip
        thread.start()
        started = time.perf_counter()
        sm.create_monitoring_schedule(
            MonitoringScheduleName="now",
            MonitoringScheduleConfig={
                "MonitoringJobDefinition": job,
                "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1H",
                                   "DataAnalysisEndTime": "-PT0H"},
            },
        )  # fmt: skip
        status = "Pending"
        while status in ("Pending", "InProgress"):
            time.sleep(0.5)
            found = sm.list_monitoring_executions(MonitoringScheduleName="now")
            summaries = found["MonitoringExecutionSummaries"]
            status = summaries[0]["MonitoringExecutionStatus"] if summaries else "Pending"
        seconds = time.perf_counter() - started
        done.set()
        thread.join()
        result = {
            "mode": mode,
            "execution_status": status,
            "execution_seconds": round(seconds, 2),
            "idle": {"requests": len(idle), "p50_ms": round(statistics.median(idle), 2),
                     "p99_ms": round(percentile(idle, 0.99), 2)},
            "during": {"requests": len(during), "p50_ms": round(statistics.median(during), 2),
                       "p99_ms": round(percentile(during, 0.99), 2),
                       "max_ms": round(max(during), 2)},
        }  # fmt: skip
        say(f"{mode}: {json.dumps(result)}")
        return result
    finally:
        procs.stop(proc, grace_s=45.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="idle-phase invocations")
    parser.add_argument("--output", type=Path, default=RESULTS / "invocation_p99.json")
    args = parser.parse_args()
    load_start = load()
    with tempfile.TemporaryDirectory(prefix="pier-monitor-p99-") as tmp:
        work = Path(tmp)
        say(f"making the model, the baseline and {args.rows:,} captured rows")
        make_model(work / "model")
        make_baseline(work / "baseline")
        capture = work / "capture"
        make_capture(capture, args.rows, datetime.now(UTC) - timedelta(minutes=10))
        runs = [run_mode(m, work, work / "model", capture, work / "baseline", args.requests)
                for m in ("thread", "process")]  # fmt: skip
    thread, process = runs
    doc = {
        "rows": args.rows,
        "runs": runs,
        "p99_during_ratio_thread_over_process": round(
            thread["during"]["p99_ms"] / process["during"]["p99_ms"], 2
        ),
        "p50_during_ratio_thread_over_process": round(
            thread["during"]["p50_ms"] / process["during"]["p50_ms"], 2
        ),
        "load_average": {"start": load_start, "end": load()},
        "cpus": os.cpu_count(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    say(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
