"""Data capture through a real `pier up`: SageMaker's records and layout, to a local directory
and to S3 (moto's standalone server), sampling, a destination that cannot be written, and what
DescribeEndpoint and UpdateEndpoint do with DataCaptureConfig.

The platform is a subprocess spoken to with boto3; records are read back from the files and
objects it wrote, after a clean stop (SIGTERM) that must lose none.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    BIN,
    REGION,
    Platform,
    free_port,
    kill_leftovers,
    platform_env,
    predictions,
    save_linear_model,
    split_json,
    wait_for,
)
from tests.e2e.test_endpoint_metrics import sample, scrape

pytestmark = pytest.mark.slow
BUCKET = "capture"
N_JSON, N_CSV = 12, 8
N_HALF = 200
N_S3 = 10
LAYOUT = re.compile(r"^(\d{4})/(\d\d)/(\d\d)/(\d\d)/\d\d-\d\d-\d{3}-[0-9a-f-]{36}\.jsonl$")


def capture_config(destination: str, percentage: int = 100, **extra: Any) -> dict[str, Any]:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
        **extra,
    }


@dataclass
class Scene:
    platform: Platform
    root: Path
    s3: Any
    moto: subprocess.Popen[bytes]

    def destination(self, name: str) -> Path:
        return self.root / "captured" / name


def start_moto(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with (root / "moto.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError((root / "moto.log").read_text())
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(url + "/moto-api/", timeout=2).status_code < 500
        return False

    wait_for(up, 60, what="moto_server")
    return proc, url


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("capture")
    moto, s3_url = start_moto(root)
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    s3 = boto3.client(
        "s3", endpoint_url=s3_url, region_name=REGION,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    # The platform finds S3 the way boto3 users point it elsewhere: AWS_ENDPOINT_URL_S3.
    env = {**aws, "AWS_ENDPOINT_URL_S3": s3_url}
    p = Platform(root / "home", free_port(), None, "sqlite", env=env)
    try:
        p.start()
        scene = Scene(p, root, s3, moto)
        blocker = root / "a-regular-file"
        blocker.write_text("capture cannot make a directory under me")
        save_linear_model(root / "model", 1.0, 2.0, 10.0)
        sm = p.client("sagemaker")
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(root / "model")})
        configs = {
            "full": capture_config(scene.destination("full").as_uri()),
            "half": capture_config(scene.destination("half").as_uri(), 50),
            "tos3": capture_config(f"s3://{BUCKET}/data/", KmsKeyId="alias/capture"),
            "broken": capture_config((blocker / "capture").as_uri()),
            "off": {**capture_config(scene.destination("off").as_uri()), "EnableCapture": False},
        }
        for name, config in configs.items():
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[variant("primary", "m")],
                DataCaptureConfig=config,
            )
        for name in ("full", "half", "tos3", "broken"):
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for name in ("full", "half", "tos3", "broken"):
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)
        yield scene
        assert p.proc is not None
        if p.proc.poll() is None:
            assert p.terminate() == 0, p.log_tail()
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        kill_leftovers(p.home)
        moto.terminate()
        moto.wait(10)


def invoke(runtime: Any, endpoint: str, rows: list[list[float]], **extra: Any) -> list[float]:
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=split_json(rows), ContentType="application/json", **extra
    )
    assert answer["InvokedProductionVariant"] == "primary"
    return predictions(answer["Body"].read())


def test_describe_endpoint_shows_capture(scene: Scene) -> None:
    sm = scene.platform.client("sagemaker")
    described = sm.describe_endpoint(EndpointName="half")["DataCaptureConfig"]
    assert described == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 50,
        "DestinationS3Uri": scene.destination("half").as_uri(),
    }
    described = sm.describe_endpoint(EndpointName="tos3")["DataCaptureConfig"]
    assert described["KmsKeyId"] == "alias/capture"
    assert described["DestinationS3Uri"] == f"s3://{BUCKET}/data/"
    config = sm.describe_endpoint_config(EndpointConfigName="full")["DataCaptureConfig"]
    assert config["DestinationS3Uri"] == scene.destination("full").as_uri()


def test_refuses_a_destination_pier_cannot_write(scene: Scene) -> None:
    sm = scene.platform.client("sagemaker")
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.create_endpoint_config(
            EndpointConfigName="ftp",
            ProductionVariants=[variant("primary", "m")],
            DataCaptureConfig=capture_config("ftp://host/x"),
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "s3://bucket/prefix" in error["Message"]


def test_unwritable_destination_never_fails_an_invocation(scene: Scene) -> None:
    """Capture to a path under a regular file: every invocation answers, the failure is logged
    and the records are counted as dropped; UpdateEndpoint to a config without capture stops
    it (DescribeEndpoint: Stopped)."""
    p = scene.platform
    runtime = p.client("sagemaker-runtime")
    for i in range(5):
        assert invoke(runtime, "broken", [[float(i), 1.0]]) == [i + 2.0 + 10.0]
    dropped = {"endpoint": "broken", "variant": "primary", "reason": "write_error"}

    def counted() -> float:
        return sample(scrape(p), "pier_capture_dropped_records_total", **dropped)

    assert wait_for(lambda: counted() == 5, 30, what="5 dropped records") is True
    log = (p.home / "logs" / "platform.log").read_text()
    assert "data capture of broken/primary" in log
    assert "record(s) dropped" in log
    # ... and `pier status` shows it beside the endpoint, not only the log and the metric.
    status = subprocess.run(
        [str(BIN / "pier"), "status", "--home", str(p.home)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**platform_env(), "COLUMNS": "250"},
    )  # fmt: skip
    (line,) = [row for row in status.stdout.splitlines() if " broken " in row]
    assert "Started, 5 records not written (destination; see the log)" in line

    sm = p.client("sagemaker")
    sm.update_endpoint(EndpointName="broken", EndpointConfigName="off")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="broken", WaiterConfig=SHORT)
    described = sm.describe_endpoint(EndpointName="broken")
    assert described["EndpointConfigName"] == "off"
    assert described["DataCaptureConfig"]["CaptureStatus"] == "Stopped"
    assert described["DataCaptureConfig"]["EnableCapture"] is False
    for _ in range(3):
        invoke(runtime, "broken", [[1.0, 1.0]])
    metrics = scrape(p)
    assert sample(metrics, "pier_capture_dropped_records_total", **dropped) == 5
    assert not scene.destination("off").exists()


def read_records(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(path relative to root, record) for every line of every capture file under root."""
    out = []
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            out.append((path.relative_to(root).as_posix(), json.loads(line)))
    return out


def check_layout(relative: str, record: dict[str, Any]) -> None:
    """`yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl`, the hour of the record's inferenceTime."""
    found = LAYOUT.match(relative)
    assert found, relative
    at = datetime.strptime(record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert found.groups() == (f"{at:%Y}", f"{at:%m}", f"{at:%d}", f"{at:%H}")
    assert abs((at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) < 3600
    assert record["eventVersion"] == "0"


def test_records_after_a_clean_stop(scene: Scene) -> None:
    """Every invocation sent before SIGTERM is in the files (and S3) afterwards: exactly."""
    p = scene.platform
    runtime = p.client("sagemaker-runtime")
    sent: dict[str, tuple[str, bytes, list[float]]] = {}
    for i in range(N_JSON):
        rows = [[float(i), 0.5]]
        got = invoke(runtime, "full", rows, InferenceId=f"json-{i}")
        sent[f"json-{i}"] = ("application/json", split_json(rows), got)
    for i in range(N_CSV):
        body = f"{i},2\n".encode()
        answer = runtime.invoke_endpoint(
            EndpointName="full", Body=body, ContentType="text/csv", Accept="text/csv",
            InferenceId=f"csv-{i}",
        )  # fmt: skip
        got = [float(x) for x in answer["Body"].read().decode().split()]
        assert got == [i + 4.0 + 10.0]
        sent[f"csv-{i}"] = ("text/csv", body, got)
    for i in range(N_HALF):
        invoke(runtime, "half", [[float(i), 0.0]])
    for i in range(N_S3):
        invoke(runtime, "tos3", [[float(i), 1.0]], InferenceId=f"s3-{i}")

    assert p.terminate() == 0, p.log_tail()  # SIGTERM right away: the clean stop writes all

    records = read_records(scene.destination("full") / "full" / "primary")
    assert len(records) == N_JSON + N_CSV
    assert {r["eventMetadata"]["inferenceId"] for _, r in records} == set(sent)
    assert len({r["eventMetadata"]["eventId"] for _, r in records}) == len(records)
    for relative, record in records:
        check_layout(relative, record)
        content_type, body, got = sent[record["eventMetadata"]["inferenceId"]]
        given = record["captureData"]["endpointInput"]
        answer = record["captureData"]["endpointOutput"]
        assert given["mode"] == "INPUT"
        assert answer["mode"] == "OUTPUT"
        assert given["observedContentType"] == content_type
        assert given["data"] == body.decode()
        if content_type == "text/csv":
            assert given["encoding"] == answer["encoding"] == "CSV"
            assert answer["observedContentType"].startswith("text/csv")
            assert [float(x) for x in answer["data"].split()] == got
        else:
            assert given["encoding"] == answer["encoding"] == "JSON"
            assert predictions(answer["data"].encode()) == got

    half = read_records(scene.destination("half") / "half" / "primary")
    # Binomial(200, 0.5): 100 ± 7.1; 4 standard deviations either side.
    assert 72 <= len(half) <= 128, len(half)

    listed = scene.s3.list_objects_v2(Bucket=BUCKET, Prefix="data/").get("Contents", [])
    s3_records = []
    for item in listed:
        key = item["Key"]
        assert key.startswith("data/tos3/primary/"), key
        body = scene.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        for line in body.splitlines():
            record = json.loads(line)
            check_layout(key[len("data/tos3/primary/") :], record)
            s3_records.append(record)
    assert sorted(r["eventMetadata"]["inferenceId"] for r in s3_records) == sorted(
        f"s3-{i}" for i in range(N_S3)
    )
    for record in s3_records:
        payload = json.loads(record["captureData"]["endpointInput"]["data"])
        assert payload["dataframe_split"]["columns"] == ["a", "b"]
    assert not list((p.home / "capture" / "spool").glob("*"))  # every upload done
