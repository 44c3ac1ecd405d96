"""Ground-truth JSONL: validation (line numbers, nothing kept from a bad upload), the store's
layout and atomic files, reading a window back, locally and on S3 (moto in-process); and
pier.monitor.quality.captures reading capture files written here in SageMaker's documented
format."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from pier.monitor.errors import MonitorError
from pier.monitor.quality.captures import read_captures
from pier.monitor.quality.ground_truth import (
    LOCATION_FILE,
    GroundTruthError,
    GroundTruthStore,
    announce,
    store_for_home,
    store_uri,
    validate,
)
from pier.monitor.quality.quality import GroundTruth, compute
from pier.storage import S3Location, hours, subdirectories

T0 = datetime(2026, 11, 30, 6, 41, 7, 250000, tzinfo=UTC).timestamp()


def line(event_id: str = "order-1", data: str = "1.5", encoding: str = "CSV", **extra: Any) -> str:
    record: dict[str, Any] = {
        "groundTruthData": {"data": data, "encoding": encoding},
        "eventMetadata": {"eventId": event_id},
        "eventVersion": "0",
    }
    record.update(extra)
    return json.dumps(record)


def body(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------ validation
def test_a_valid_upload() -> None:
    upload = validate(body(line("a"), "", line("b", "[1, 2, 3]", "JSON"), "   "))
    assert upload.records == 2
    assert upload.ids == ["a", "b"]
    assert upload.labels == 4
    assert json.loads(upload.lines[1])["eventMetadata"]["eventId"] == "b"


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a record is a JSON object"),
        ('{"eventMetadata": {"eventId": "x"}, "eventVersion": "0"}', "groundTruthData is missing"),
        (line(eventMetadata={}), "eventMetadata.eventId must be a non-empty string"),
        (line(eventMetadata={"eventId": " "}), "eventMetadata.eventId must be a non-empty"),
        (line(eventMetadata=[]), "eventMetadata is missing or not an object"),
        (line(eventVersion=0), 'eventVersion must be "0", not 0'),
        (line(data="1", encoding="XML"), "groundTruthData.encoding must be CSV or JSON"),
        (line(data="{x", encoding="JSON"), "groundTruthData.data '{x' is not JSON"),
        (
            line(groundTruthData={"data": 1, "encoding": "CSV"}),
            "groundTruthData.data must be a string, not int",
        ),
        # beyond the parser's limits: a 400 like any bad line, never a 500
        ('{"a": ' * 2000 + "1" + "}" * 2000, "not valid JSON"),
        ("[" * 2000 + "]" * 2000, "not valid JSON"),
        ('{"a": 1' + "0" * 4400 + "}", "not valid JSON"),
        (line(data="[" * 2000 + "]" * 2000, encoding="JSON"), "groundTruthData.data '[[["),
        (line(data="1" + "0" * 4400, encoding="JSON"), "groundTruthData.data '1000"),
    ],
)
def test_each_problem_names_its_line(bad: str, problem: str) -> None:
    with pytest.raises(GroundTruthError) as caught:
        validate(body(line("a"), "", bad, line("c")))
    assert caught.value.line == 3  # blank lines count: it is the file's line number
    assert caught.value.message.startswith(f"line 3: {problem}")
    assert caught.value.problems[0].line == 3


def test_every_bad_line_is_listed_up_to_twenty() -> None:
    lines = [line(f"ok{i}") if i % 2 else "nope" for i in range(50)]
    with pytest.raises(GroundTruthError) as caught:
        validate(body(*lines))
    assert [p.line for p in caught.value.problems] == list(range(1, 40, 2))
    assert caught.value.more == 5
    assert "(and 24 more bad line(s))" in caught.value.message


def test_an_empty_upload_is_refused() -> None:
    with pytest.raises(GroundTruthError, match="no ground-truth records"):
        validate(b"\n \n")


# ----------------------------------------------------------------------------------- store
def test_store_layout_is_sagemakers_per_endpoint(tmp_path: Path) -> None:
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)
    where = store.append("churn", validate(body(line("a"), line("b"))), now=T0)
    path = Path(where)
    assert path.parent == tmp_path / "ground-truth" / "churn" / "2026" / "11" / "30" / "06"
    assert path.name.startswith("41-07-250-")
    assert path.suffix == ".jsonl"
    assert [json.loads(x)["eventMetadata"]["eventId"] for x in path.read_text().splitlines()] == [
        "a",
        "b",
    ]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_read_a_window_in_upload_order(tmp_path: Path) -> None:
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)
    store.append("churn", validate(body(line("a", "1"))), now=T0 - 3 * 3600)  # too old
    store.append("churn", validate(body(line("a", "2"))), now=T0 - 3600)
    store.append("churn", validate(body(line("a", "3"), line("b", "4"))), now=T0)
    store.append("other", validate(body(line("a", "9"))), now=T0)
    got = store.read("churn", T0 - 2 * 3600, T0)
    assert [(r.event_id, r.data["data"]) for r in got] == [("a", "2"), ("a", "3"), ("b", "4")]
    assert got.bad_lines == 0


def test_lines_put_there_by_hand_are_counted_not_fatal(tmp_path: Path) -> None:
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)
    hour = tmp_path / "ground-truth" / "churn" / "2026" / "11" / "30" / "06"
    hour.mkdir(parents=True)
    (hour / "by-hand.jsonl").write_text(line("a") + "\n{cut\n" + line("b", eventVersion="1"))
    (hour / "notes.txt").write_text("not a jsonl file")
    got = store.read("churn", T0, T0)
    assert [r.event_id for r in got] == ["a"]
    assert got.bad_lines == 2
    assert got.example == f"{hour / 'by-hand.jsonl'}:2: not valid JSON"


def test_where_the_store_is(tmp_path: Path) -> None:
    assert store_uri(None, tmp_path) == (tmp_path / "ground-truth").as_uri()
    assert store_uri("s3://b/p", tmp_path) == "s3://b/p"
    assert GroundTruthStore("s3://b/gt/", tmp_path).location == S3Location("b", "gt")
    relative = GroundTruthStore("file:labels", tmp_path).location
    assert relative == tmp_path / "ground-truth" / "labels"
    with pytest.raises(MonitorError, match="ground-truth URI ftp://x"):
        GroundTruthStore("ftp://x", tmp_path)
    # `pier quality` reads where the running platform said it stores ground truth
    announce(tmp_path, GroundTruthStore("s3://b/gt", tmp_path))
    assert (tmp_path / LOCATION_FILE).read_text() == "s3://b/gt\n"
    assert store_for_home(tmp_path, None).location == S3Location("b", "gt")
    (tmp_path / LOCATION_FILE).unlink()
    assert store_for_home(tmp_path, "s3://c/x").location == S3Location("c", "x")


def test_hours_of_a_window() -> None:
    assert hours(T0 - 3600, T0) == ["2026/11/30/05", "2026/11/30/06"]
    assert hours(T0, T0) == ["2026/11/30/06"]
    day = datetime(2026, 12, 31, 23, 30, tzinfo=UTC).timestamp()
    assert hours(day, day + 1800) == ["2026/12/31/23", "2027/01/01/00"]


# ------------------------------------------------------------------------------ captures
def capture_line(event_id: str, at: float, prediction: float, inference_id: str) -> str:
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv", "mode": "INPUT",
                    "data": "1,2", "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "application/json", "mode": "OUTPUT",
                    "data": json.dumps({"predictions": [prediction]}), "encoding": "JSON",
                },
            },
            "eventMetadata": {"eventId": event_id, "inferenceId": inference_id,
                              "inferenceTime": when},
            "eventVersion": "0",
        }
    )  # fmt: skip


def write_captures(root: Path, endpoint: str, variant: str, lines: list[str], at: float) -> Path:
    hour = datetime.fromtimestamp(at, UTC).strftime("%Y/%m/%d/%H")
    path = root / endpoint / variant / hour / "41-07-250-0000.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_captures_of_every_variant(tmp_path: Path) -> None:
    write_captures(tmp_path, "ep", "champion", [capture_line("e1", T0, 1.0, "i1")], T0)
    cut = capture_line("e2", T0, 2.0, "i2")[:40]  # a crash cut the last line
    write_captures(tmp_path, "ep", "challenger", [capture_line("e3", T0, 3.0, "i3"), cut], T0)
    write_captures(tmp_path, "ep", "champion", [capture_line("e9", T0, 9.0, "i9")], T0 - 86400)
    window = read_captures(tmp_path, "ep", T0 - 3600, T0)
    assert window.variants == ["challenger", "champion"]
    assert sorted((c.variant, c.event_id) for c in window.captures) == [
        ("challenger", "e3"),
        ("champion", "e1"),
    ]
    assert window.bad_lines == 1
    assert window.example is not None
    assert window.example.endswith(":2: not JSON")
    assert read_captures(tmp_path, "nothing-here", T0, T0).captures == []


# ------------------------------------------------------------------------------------ S3
@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def test_s3_store_and_capture_destination(tmp_path: Path, s3: Any) -> None:
    s3.create_bucket(Bucket="quality-data")
    store = GroundTruthStore("s3://quality-data/labels", tmp_path)
    where = store.append("ep", validate(body(line("i1", "2"), line("i3", "5"))), now=T0)
    assert where.startswith("s3://quality-data/labels/ep/2026/11/30/06/41-07-250-")
    got = store.read("ep", T0 - 60, T0)
    assert [g.event_id for g in got] == ["i1", "i3"]
    assert not (tmp_path / "ground-truth").exists()

    for variant, lines in {
        "champion": [capture_line("e1", T0, 1.0, "i1")],
        "challenger": [capture_line("e3", T0, 3.0, "i3")],
    }.items():
        key = f"capture/ep/{variant}/2026/11/30/06/41-07-250-x.jsonl"
        s3.put_object(Bucket="quality-data", Key=key, Body=("\n".join(lines) + "\n").encode())
    destination = S3Location("quality-data", "capture")
    assert subdirectories(S3Location("quality-data", "capture/ep")) == ["challenger", "champion"]
    window = read_captures(destination, "ep", T0 - 60, T0)
    report = compute(window.captures, got, start=T0 - 3600, end=T0 + 1)
    assert {v: t.metrics["mae"] for v, t in report.totals.items()} == {
        "challenger": 2.0,
        "champion": 1.0,
    }


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        store.append("ep", validate(body(line("a"))), now=T0)
    hour = tmp_path / "ground-truth" / "ep" / "2026" / "11" / "30" / "06"
    assert list(hour.iterdir()) == []
    assert list(store.read("ep", T0, T0)) == []
    assert isinstance(GroundTruth("a", {}), GroundTruth)
