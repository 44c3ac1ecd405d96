"""Data capture units: SageMaker's record format, sampling, batching, overload, file layout,
rolling, write errors, and the S3 spool (against moto's in-process S3)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from prometheus_client import CollectorRegistry

from pier.contract.capture_config import CaptureSettings
from pier.monitor.capture.capture import Capturer
from pier.monitor.capture.record import Event, build_record, file_name
from pier.monitor.capture.writer import CaptureMetrics, Writer

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NAME = re.compile(r"^\d\d-\d\d-\d{3}-[0-9a-f-]{36}\.jsonl$")
T0 = 1_795_000_000.25  # 2026-11-18 11:06:40.250 UTC


def settings(destination: str = "file:///tmp/x", **changes: Any) -> CaptureSettings:
    base: dict[str, Any] = {
        "destination": destination,
        "percentage": 100,
        "capture_input": True,
        "capture_output": True,
        "csv_types": frozenset({"text/csv"}),
        "json_types": frozenset({"application/json"}),
    }
    base.update(changes)
    return CaptureSettings(**base)


def event(s: CaptureSettings, t: float = T0, **changes: Any) -> Event:
    base: dict[str, Any] = {
        "settings": s,
        "endpoint": "ep",
        "variant": "AllTraffic",
        "time": t,
        "inference_id": None,
        "request": b'{"a": 1}',
        "request_type": "application/json",
        "response": b'{"predictions": [3.0]}',
        "response_type": "application/json",
    }
    base.update(changes)
    return Event(**base)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def lines(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


# ----------------------------------------------------------------------------- settings


def test_settings_from_sagemaker_config() -> None:
    config = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 40,
        "DestinationS3Uri": "s3://b/p",
        "KmsKeyId": "alias/k",
        "CaptureOptions": [{"CaptureMode": "Input"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["Text/CSV"],
            "JsonContentTypes": ["application/json", "application/jsonlines"],
        },
    }
    s = CaptureSettings.from_config(config)
    assert s == CaptureSettings(
        "s3://b/p", 40, True, False, frozenset({"text/csv"}),
        frozenset({"application/json", "application/jsonlines"}), "alias/k",
    )  # fmt: skip
    both = CaptureSettings.from_config({**config, "CaptureOptions": [{"CaptureMode": "Output"}]})
    assert both is not None
    assert (both.capture_input, both.capture_output) == (False, True)
    both = CaptureSettings.from_config(
        {**config, "CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}
    )
    assert both is not None
    assert (both.capture_input, both.capture_output) == (True, True)
    # Nothing captured: no settings, so the hot path does nothing.
    assert CaptureSettings.from_config(None) is None
    assert CaptureSettings.from_config({**config, "EnableCapture": False}) is None
    assert CaptureSettings.from_config({**config, "InitialSamplingPercentage": 0}) is None


# ----------------------------------------------------------------------------- records


def test_record_json_and_csv() -> None:
    s = settings()
    record = json.loads(build_record(event(s, inference_id="req-7")))
    assert list(record) == ["captureData", "eventMetadata", "eventVersion"]
    assert record["captureData"] == {
        "endpointInput": {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": '{"a": 1}',
            "encoding": "JSON",
        },
        "endpointOutput": {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": '{"predictions": [3.0]}',
            "encoding": "JSON",
        },
    }
    meta = record["eventMetadata"]
    assert list(meta) == ["eventId", "inferenceId", "inferenceTime"]
    assert str(uuid.UUID(meta["eventId"])) == meta["eventId"]
    assert meta["inferenceId"] == "req-7"
    assert meta["inferenceTime"] == "2026-11-18T11:06:40Z"
    assert ISO_Z.match(meta["inferenceTime"])
    assert record["eventVersion"] == "0"

    csv = json.loads(
        build_record(
            event(s, request=b"1,2\n3,4", request_type="text/csv; charset=utf-8",
                  response=b"5.0\n6.0", response_type="text/csv")
        )
    )  # fmt: skip
    assert csv["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv; charset=utf-8",  # observed as sent
        "mode": "INPUT",
        "data": "1,2\n3,4",
        "encoding": "CSV",
    }
    assert csv["captureData"]["endpointOutput"]["encoding"] == "CSV"
    assert "inferenceId" not in csv["eventMetadata"]


def test_record_base64() -> None:
    # Not listed in CaptureContentTypeHeader: BASE64, as SageMaker does by default.
    s = settings(csv_types=frozenset(), json_types=frozenset())
    raw = bytes(range(256))
    record = json.loads(
        build_record(event(s, request=raw, request_type="application/x-npy", response=b"{}"))
    )
    given = record["captureData"]["endpointInput"]
    assert given["encoding"] == "BASE64"
    assert base64.b64decode(given["data"]) == raw
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    # Listed as JSON, but not UTF-8: BASE64 keeps the bytes intact.
    s = settings()
    record = json.loads(build_record(event(s, request=b"\xff\xfe{}")))
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    # No Content-Type at all.
    record = json.loads(build_record(event(s, request_type=None)))
    assert record["captureData"]["endpointInput"]["observedContentType"] == (
        "application/octet-stream"
    )
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"


def test_record_capture_options() -> None:
    only_in = json.loads(build_record(event(settings(capture_output=False))))
    assert list(only_in["captureData"]) == ["endpointInput"]
    only_out = json.loads(build_record(event(settings(capture_input=False))))
    assert list(only_out["captureData"]) == ["endpointOutput"]


def test_file_name_is_sagemakers() -> None:
    name = file_name(T0)
    assert NAME.match(name)
    assert name.startswith("06-40-250-")


# ----------------------------------------------------------------------------- capturer


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def capturer(tmp_path: Path, **options: Any) -> tuple[Capturer, CollectorRegistry]:
    registry = CollectorRegistry()
    return Capturer(tmp_path / "base", registry, **options), registry


def offer(c: Capturer, s: CaptureSettings, n: int, **changes: Any) -> None:
    for i in range(n):
        c.offer(
            s,
            changes.get("endpoint", "ep"),
            changes.get("variant", "AllTraffic"),
            f"id-{i}",
            f'{{"i": {i}}}'.encode(),
            "application/json",
            b"[1.0]",
            "application/json",
        )


def test_sampling_statistics_with_a_fixed_seed(tmp_path: Path) -> None:
    n, percentage = 20_000, 30
    c, _ = capturer(tmp_path, rng=random.Random(20261118), queue_size=n)
    offer(c, settings(percentage=percentage), n)
    p = percentage / 100
    sigma = (n * p * (1 - p)) ** 0.5
    assert abs(c.queued() - n * p) < 4 * sigma  # 6000 ± 260
    # The same seed draws the same sample.
    again, _ = capturer(tmp_path, rng=random.Random(20261118), queue_size=n)
    offer(again, settings(percentage=percentage), n)
    assert again.queued() == c.queued()
    full, _ = capturer(tmp_path, rng=random.Random(1))
    offer(full, settings(percentage=100), 500)
    assert full.queued() == 500


def test_batches_are_written_by_the_writer_task(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    s = settings(dest.as_uri())

    async def main() -> None:
        c, registry = capturer(tmp_path, flush_interval_s=0.05, queue_size=1000)
        await c.start()
        offer(c, s, 7)
        assert not dest.exists()  # nothing written on the hot path
        for _ in range(100):
            await asyncio.sleep(0.02)
            if sample(registry, "pier_capture_records_total", endpoint="ep", variant="AllTraffic"):
                break
        assert len(lines(dest)) == 7  # one interval later, without a stop
        offer(c, s, 3)
        await c.aclose()
        records = lines(dest)
        assert [r["eventMetadata"]["inferenceId"] for r in records] == [
            *(f"id-{i}" for i in range(7)), *(f"id-{i}" for i in range(3))
        ]  # fmt: skip
        assert len({r["eventMetadata"]["eventId"] for r in records}) == 10
        labels = {"endpoint": "ep", "variant": "AllTraffic"}
        assert sample(registry, "pier_capture_records_total", **labels) == 10

    asyncio.run(main())


def test_durable_capture_returns_once_the_record_is_written(tmp_path: Path) -> None:
    # The interval is an hour: only durable mode's own wake-up can have written the records.
    dest = tmp_path / "dest"
    s = settings(dest.as_uri())

    async def one(c: Capturer, i: int) -> list[dict[str, Any]]:
        await c.capture(s, "ep", "AllTraffic", f"id-{i}", b"{}", "application/json",
                        b"[1.0]", "application/json")  # fmt: skip
        return lines(dest)  # read as soon as the invocation could be answered

    async def main() -> None:
        c, registry = capturer(tmp_path, flush_interval_s=3600, durable=True)
        await c.start()
        assert len(await one(c, 0)) == 1
        # concurrent invocations share batches (group commit); each sees its own record
        seen = await asyncio.gather(*(one(c, i) for i in range(1, 41)))
        for i, records in enumerate(seen, 1):
            assert f"id-{i}" in {r["eventMetadata"]["inferenceId"] for r in records}
        assert len(lines(dest)) == 41
        labels = {"endpoint": "ep", "variant": "AllTraffic"}
        assert sample(registry, "pier_capture_records_total", **labels) == 41
        # not sampled: nothing to wait for
        await c.capture(settings(dest.as_uri(), percentage=0), "ep", "AllTraffic", None,
                        b"{}", None, b"[1.0]", None)  # fmt: skip
        await c.aclose()
        # after the stop: dropped and counted, never waited for
        await c.capture(s, "ep", "AllTraffic", None, b"{}", None, b"[1.0]", None)
        assert len(lines(dest)) == 41
        assert sample(registry, "pier_capture_dropped_records_total", reason="stopped", **labels)

    asyncio.run(main())


def test_a_full_batch_wakes_the_writer_early(tmp_path: Path) -> None:
    dest = tmp_path / "dest"

    async def main() -> None:
        c, _ = capturer(tmp_path, flush_interval_s=3600, queue_size=100, batch_size=10)
        await c.start()
        offer(c, settings(dest.as_uri()), 10)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if dest.exists() and len(lines(dest)) == 10:
                break
        assert len(lines(dest)) == 10
        await c.aclose()

    asyncio.run(main())


def test_overload_drops_are_counted_and_the_rest_written(tmp_path: Path) -> None:
    dest = tmp_path / "dest"

    async def main() -> None:
        c, registry = capturer(tmp_path, queue_size=5, flush_interval_s=3600, batch_size=100)
        await c.start()
        offer(c, settings(dest.as_uri()), 8)
        offer(c, settings(dest.as_uri()), 2, variant="B")
        labels = {"endpoint": "ep", "reason": "overload"}
        assert sample(registry, "pier_capture_dropped_records_total", variant="AllTraffic",
                      **labels) == 3  # fmt: skip
        assert sample(registry, "pier_capture_dropped_records_total", variant="B", **labels) == 2
        await c.aclose()  # a clean stop writes everything that was queued
        assert len(lines(dest)) == 5
        offer(c, settings(dest.as_uri()), 1)  # after the stop: counted, not silently lost
        stopped = {"endpoint": "ep", "variant": "AllTraffic", "reason": "stopped"}
        assert sample(registry, "pier_capture_dropped_records_total", **stopped) == 1

    asyncio.run(main())


def test_layout_and_rolling_by_hour_age_and_size(tmp_path: Path) -> None:
    clock = Clock(T0)
    registry = CollectorRegistry()
    w = Writer(tmp_path, CaptureMetrics(registry), clock, file_max_bytes=10_000, file_max_age_s=60)
    dest = tmp_path / "dest"
    s = settings(dest.as_uri())
    w.write([event(s, clock.t), event(s, clock.t + 1)])
    clock.t += 30
    w.write([event(s, clock.t)])  # same file: 30 s old
    clock.t += 31
    w.write([event(s, clock.t)])  # 61 s old: a new file
    hour = dest / "ep" / "AllTraffic" / "2026" / "11" / "18" / "11"
    files = sorted(hour.iterdir())
    assert [len(f.read_text().splitlines()) for f in files] == [3, 1]
    assert all(NAME.match(f.name) for f in files)
    assert files[0].name.startswith("06-40-250-")  # the first record's minute-second-millis
    assert files[1].name.startswith("07-41-250-")
    # A batch across an hour boundary goes to two hour directories.
    end = 1_795_003_200.0 - 0.5  # 11:59:59.5
    w.write([event(s, end), event(s, end + 1.0)])
    assert sorted(p.name for p in hour.parent.iterdir()) == ["11", "12"]
    # 11:59:59.5 joined the open 11 o'clock file; 12:00:00.5 opened one in 12/.
    assert [len(f.read_text().splitlines()) for f in sorted(hour.iterdir())] == [3, 2]
    assert [f.name[:9] for f in (hour.parent / "12").iterdir()] == ["00-00-500"]
    # Size: a file that reached file_max_bytes is closed before the next batch.
    small = Writer(tmp_path, CaptureMetrics(CollectorRegistry()), clock, file_max_bytes=1)
    sized = tmp_path / "sized"
    for _ in range(3):
        small.write([event(settings(sized.as_uri()), clock.t)])
    assert len(list(sized.rglob("*.jsonl"))) == 3
    # With no traffic, an aged file is closed by the writer's tick.
    w.tick()
    assert not w._files or all(clock.t - f.opened < 60 for f in w._files.values())
    w.close()
    small.close()
    assert sample(registry, "pier_capture_records_total", endpoint="ep", variant="AllTraffic") == 6


def test_an_unwritable_destination_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = settings((blocker / "capture").as_uri())
    good = settings((tmp_path / "good").as_uri())

    async def main() -> CollectorRegistry:
        c, registry = capturer(tmp_path, flush_interval_s=3600)
        await c.start()
        offer(c, bad, 4)
        offer(c, good, 2, variant="ok")
        await c.aclose()
        return registry

    with caplog.at_level(logging.ERROR, logger="pier.capture"):
        registry = asyncio.run(main())
    failed = {"endpoint": "ep", "variant": "AllTraffic", "reason": "write_error"}
    assert sample(registry, "pier_capture_dropped_records_total", **failed) == 4
    assert len(lines(tmp_path / "good")) == 2  # other destinations carry on
    assert any("4 record(s) dropped" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- S3


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def objects(client: Any, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_s3_files_are_uploaded_when_they_roll(tmp_path: Path, s3: Any) -> None:
    s3.create_bucket(Bucket="cap")
    clock = Clock(T0)
    registry = CollectorRegistry()
    w = Writer(tmp_path, CaptureMetrics(registry), clock, file_max_age_s=60)
    s = settings("s3://cap/data/capture/", kms_key_id="alias/capture")
    w.write([event(s, clock.t) for _ in range(3)])
    assert objects(s3, "cap") == {}  # still being written, in the spool
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1
    clock.t += 61
    w.tick()
    w.close()
    found = objects(s3, "cap")
    (key, body), *_ = found.items()
    assert len(found) == 1
    prefix = "data/capture/ep/AllTraffic/2026/11/18/11/"
    assert key.startswith(prefix)
    assert NAME.match(key[len(prefix) :])
    assert len(body.splitlines()) == 3
    head = s3.head_object(Bucket="cap", Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert list((tmp_path / "spool").iterdir()) == []
    assert sample(registry, "pier_capture_records_total", endpoint="ep", variant="AllTraffic") == 3


def test_failed_uploads_stay_in_the_spool_and_a_restart_uploads_them(
    tmp_path: Path, s3: Any
) -> None:
    registry = CollectorRegistry()
    w = Writer(tmp_path, CaptureMetrics(registry), Clock(T0))
    w.write([event(settings("s3://later/p"), T0) for _ in range(2)])
    w.close()  # the bucket does not exist: the upload fails, the file stays
    labels = {"endpoint": "ep", "variant": "AllTraffic"}
    assert sample(registry, "pier_capture_upload_errors_total", **labels) >= 1
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1
    # A crash while writing another file: its last line is cut.
    crashed = Writer(tmp_path, CaptureMetrics(CollectorRegistry()), Clock(T0))
    crashed.write([event(settings("s3://later/q"), T0)])
    open_file = next(iter(crashed._files.values()))
    open_file.handle.write(b'{"captureData": {"endpointIn')
    open_file.handle.flush()
    open_file.handle.close()  # the process died here: what was written stays
    s3.create_bucket(Bucket="later")
    again = CollectorRegistry()
    restarted = Writer(tmp_path, CaptureMetrics(again), Clock(T0))
    assert restarted.recover() == 2
    restarted.close()
    found = objects(s3, "later")
    assert sorted(k.split("/")[0] for k in found) == ["p", "q"]
    for body in found.values():
        for line in body.splitlines():
            json.loads(line)  # every line whole
    assert sum(len(b.splitlines()) for b in found.values()) == 3
    assert sample(again, "pier_capture_records_total", **labels) == 3
    assert list((tmp_path / "spool").iterdir()) == []


FULL_DISK_SCRIPT = """
import json, resource, signal, sys
from pathlib import Path
from prometheus_client import CollectorRegistry
from pier.monitor.capture.writer import CaptureMetrics, Writer
from tests.monitor.test_capture import T0, event, settings

root, limit = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
registry = CollectorRegistry()
writer = Writer(root, CaptureMetrics(registry), lambda: T0, file_max_bytes=10**9)
s = settings((root / "capture").as_uri())
for batch in range(12):
    writer.write([event(s, inference_id=f"{batch}-{i}") for i in range(37)])
writer.close()
labels = {"endpoint": "ep", "variant": "AllTraffic"}
print(json.dumps({
    "delivered": registry.get_sample_value("pier_capture_records_total", labels),
    "dropped": registry.get_sample_value(
        "pier_capture_dropped_records_total", {**labels, "reason": "write_error"}),
}))
"""


def test_a_full_disk_leaves_whole_lines_and_exact_counts(tmp_path: Path) -> None:
    """When the disk fills mid-batch (here: a file-size limit, the same short write the
    kernel gives), the file keeps only whole records, and the counters add up exactly: every
    line on disk counted delivered, every other offered record counted dropped."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path), "20000"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    on_disk = []
    for path in (tmp_path / "capture").rglob("*.jsonl"):  # after a failure, a new file
        data = path.read_bytes()
        assert data.endswith(b"\n"), path  # no partial line
        on_disk += [json.loads(line) for line in data.splitlines()]  # each line parses
    assert 0 < len(on_disk) < 12 * 37
    assert counts["dropped"] > 0
    assert counts["delivered"] == len(on_disk)
    assert counts["delivered"] + counts["dropped"] == 12 * 37
    ids = [r["eventMetadata"]["inferenceId"] for r in on_disk]
    assert len(set(ids)) == len(ids)
