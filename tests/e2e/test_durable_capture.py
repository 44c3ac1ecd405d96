"""Durable data capture (PIER_CAPTURE_DURABLE=true) through a real `pier up`: after a SIGKILL of
the platform under load, every invocation boto3 saw answered is in the capture files.

(In the default, asynchronous mode the records of the last flush interval are lost by such a
kill: docs/monitoring.md.) Clients run concurrently, so durable mode's group commits hold
several records; the platform is killed while they still send.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    Platform,
    _serve_children,
    free_port,
    save_linear_model,
    split_json,
)
from tests.e2e.test_data_capture import capture_config

pytestmark = pytest.mark.slow
CLIENTS = 8
ACKNOWLEDGED_BEFORE_KILL = 400


def test_a_sigkill_loses_no_acknowledged_record(tmp_path: Path) -> None:
    p = Platform(
        tmp_path / "home", free_port(), None, "sqlite", env={"PIER_CAPTURE_DURABLE": "true"}
    )
    destination = tmp_path / "captured"
    try:
        p.start()
        save_linear_model(tmp_path / "model", 1.0, 2.0, 10.0)
        sm = p.client("sagemaker")
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(tmp_path / "model")})
        sm.create_endpoint_config(
            EndpointConfigName="durable",
            ProductionVariants=[variant("primary", "m")],
            DataCaptureConfig=capture_config(destination.as_uri()),
        )
        sm.create_endpoint(EndpointName="durable", EndpointConfigName="durable")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="durable", WaiterConfig=SHORT)

        acknowledged: set[str] = set()
        lock = threading.Lock()
        enough = threading.Event()

        def client(n: int) -> None:
            runtime = p.client("sagemaker-runtime")
            i = 0
            while True:  # until the platform is gone
                inference_id = f"c{n}-{i}"
                try:
                    runtime.invoke_endpoint(
                        EndpointName="durable", Body=split_json([[float(i), 1.0]]),
                        ContentType="application/json", InferenceId=inference_id,
                    )  # fmt: skip
                except Exception:
                    return
                with lock:
                    acknowledged.add(inference_id)
                    if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                        enough.set()
                i += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        assert enough.wait(300), f"only {len(acknowledged)} invocations answered"
        p.kill()  # SIGKILL while the clients still send
        for t in threads:
            t.join(60)
        with lock:
            answered = set(acknowledged)
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        for serve in _serve_children(p.home):  # instances outlive a SIGKILLed platform
            with contextlib.suppress(ProcessLookupError):
                os.kill(serve.pid, signal.SIGKILL)

    captured: list[dict[str, Any]] = []
    for path in sorted(destination.rglob("*.jsonl")):
        # a kill can cut the record being written, never an acknowledged one
        text = path.read_text()
        complete = text[: text.rfind("\n") + 1]
        captured += [json.loads(line) for line in complete.splitlines()]
    ids = {r["eventMetadata"]["inferenceId"] for r in captured}
    assert len(answered) >= ACKNOWLEDGED_BEFORE_KILL
    missing = answered - ids
    assert not missing, f"{len(missing)} of {len(answered)} acknowledged records lost"
