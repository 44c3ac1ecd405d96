"""What the boto3 hosting tests share besides fixtures: the names of their endpoints, the
probe and the two models' answers to it, AWS's ARNs and errors as boto3 shows them, and a load
generator (`Load`) for the tests that update or crash an endpoint under traffic."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.platform_fixtures import (
    ACCOUNT,
    REGION,
    LinearModel,
    Platform,
    predictions,
    split_json,
    wait_for,
)

SHORT = {"Delay": 1, "MaxAttempts": 120}  # AWS's waiters poll every 30 s; pier is faster
ROUTING = "routing"
ROLLING = "rolling"
LIFECYCLE = "lifecycle"
MISSING = "missing-model"
BROKEN = "broken-model"
HASTY = "hasty"
PHOENIX = "phoenix"
GREETING = "hello from the container definition"
PROBE = [[1.0, 2.0]]  # model A answers 15.0, model B 98.0
WEIGHT_TOLERANCE = 0.08  # 500 draws at p=0.8: one standard deviation is 0.018


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], response["Error"]["Message"], status


@dataclass(frozen=True)
class Models:
    a: LinearModel
    b: LinearModel
    broken: Path
    missing: Path

    def which(self, prediction: float) -> str:
        """'A' or 'B': which model gave this answer to PROBE."""
        for label, model in (("A", self.a), ("B", self.b)):
            if abs(model.predict(PROBE)[0] - prediction) < 1e-6:
                return label
        raise AssertionError(f"{prediction} is neither model's answer to {PROBE}")


def variant(name: str, model: str, weight: float = 1.0, count: int = 1) -> dict[str, Any]:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


@dataclass
class Created:
    arn: str
    first: dict[str, Any]  # DescribeEndpoint right after CreateEndpoint


def create_and_wait(sm: Any, name: str, config: str) -> Created:
    endpoint_arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=config)["EndpointArn"]
    first = sm.describe_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)
    return Created(endpoint_arn, first)


def invoke(rt: Any, endpoint: str, rows: list[list[float]] = PROBE, **kw: Any) -> Any:
    response = rt.invoke_endpoint(
        EndpointName=endpoint, Body=split_json(rows), ContentType="application/json", **kw
    )
    return response["InvokedProductionVariant"], predictions(response["Body"].read())


@dataclass
class Load:
    """Invokes an endpoint from `threads` threads (one boto3 client each) until stopped."""

    platform: Platform
    models: Models
    endpoint: str
    threads: int = 1
    answers: list[list[str]] = field(default_factory=list)  # per thread: 'A' / 'B' in order
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for i in range(self.threads):
            self.answers.append([])
            client = self.platform.client("sagemaker-runtime")
            worker = threading.Thread(target=self._run, args=(client, self.answers[i]))
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, client: Any, answers: list[str]) -> None:
        while not self._stop.is_set():
            try:
                _, got = invoke(client, self.endpoint)
                answers.append(self.models.which(got[0]))
            except Exception as exc:
                with self._lock:
                    self.errors.append(repr(exc))

    def ok(self) -> int:
        return sum(len(a) for a in self.answers)

    def wait_answers(self, more: int, timeout: float = 20) -> None:
        target = self.ok() + more
        wait_for(lambda: self.ok() >= target, timeout, 0.02, f"{more} more answers")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(90)


def describe_variants(sm: Any, name: str) -> dict[str, dict[str, Any]]:
    d = sm.describe_endpoint(EndpointName=name)
    return {v["VariantName"]: v for v in d["ProductionVariants"]}
