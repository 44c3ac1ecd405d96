"""Captured records (SageMaker's documented JSONL) read back as rows: every encoding, MLflow's
JSON formats, headerless CSV, the time window and the hour layout, what cannot be read."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pier.monitor.capture.captured import (
    ReadStats,
    Unreadable,
    read_batches,
    read_window,
    record_rows,
)
from pier.monitor.stats.profile import InferredType, profile_frame

FEATURES = ["age", "income", "plan"]
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def record(
    data: str,
    content_type: str = "application/json",
    encoding: str = "JSON",
    when: datetime = T0,
) -> dict[str, Any]:
    """A capture record as SageMaker documents it."""
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": content_type,
                "mode": "INPUT",
                "data": data,
                "encoding": encoding,
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": '{"predictions": [1.0]}',
                "encoding": "JSON",
            },
        },
        "eventMetadata": {
            "eventId": "3f0c4c2e-5b4e-4d43-9a53-0d1c8f1e7a21",
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }


def rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    names, values = record_rows(rec, FEATURES)
    return [dict(zip(names, r, strict=False)) for r in values]


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["age", "income", "plan"], "data": [[31, 5.5, "gold"]]}},
        {"dataframe_split": {"data": [[31, 5.5, "gold"]]}},  # no columns: the baseline's
        {"dataframe_records": [{"age": 31, "income": 5.5, "plan": "gold"}]},
        {"instances": [{"age": 31, "income": 5.5, "plan": "gold"}]},
        {"instances": [[31, 5.5, "gold"]]},
        {"inputs": {"age": [31], "income": [5.5], "plan": ["gold"]}},
        {"inputs": [[31, 5.5, "gold"]]},
        [{"age": 31, "income": 5.5, "plan": "gold"}],
        {"age": 31, "income": 5.5, "plan": "gold"},
    ],
)
def test_mlflow_json_formats(body: Any) -> None:
    assert rows(record(json.dumps(body))) == [{"age": 31, "income": 5.5, "plan": "gold"}]


def test_json_lines_and_params_beside_the_data() -> None:
    lines = '{"age": 1, "plan": "a"}\n{"age": 2, "plan": "b"}\n'
    assert rows(record(lines, "application/jsonlines")) == [
        {"age": 1, "plan": "a"},
        {"age": 2, "plan": "b"},
    ]
    body = {"dataframe_records": [{"age": 3}], "params": {"threshold": 0.5}}
    assert rows(record(json.dumps(body))) == [{"age": 3}]


def test_headerless_csv_takes_the_baseline_feature_names() -> None:
    rec = record("31,5.5,gold\n42,,silver\n", "text/csv", "CSV")
    assert rows(rec) == [
        {"age": 31, "income": 5.5, "plan": "gold"},
        {"age": 42, "income": None, "plan": "silver"},
    ]


def test_csv_with_a_header_and_extra_columns() -> None:
    assert rows(record("age,income\n31,5.5\n", "text/csv", "CSV")) == [{"age": 31, "income": 5.5}]
    names, _ = record_rows(record("1,2,3,4\n", "text/csv", "CSV"), FEATURES)
    assert names == ["age", "income", "plan", "_c3"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/csv", "31,5.5,gold\n"),
        ("application/json", '{"dataframe_split": {"data": [[31, 5.5, "gold"]]}}'),
        ("application/json; charset=utf-8", '{"instances": [[31, 5.5, "gold"]]}'),
    ],
)
def test_base64_bodies_are_read_by_their_content_type(content_type: str, body: str) -> None:
    encoded = base64.b64encode(body.encode()).decode()
    assert rows(record(encoded, content_type, "BASE64")) == [
        {"age": 31, "income": 5.5, "plan": "gold"}
    ]


@pytest.mark.parametrize(
    ("rec", "reason"),
    [
        (record(base64.b64encode(b"\x89PNG").decode(), "image/png", "BASE64"), "UTF-8"),
        (record(base64.b64encode(b"abc").decode(), "image/png", "BASE64"), "not CSV or JSON"),
        (record("{not json", "application/json"), "does not parse"),
        (record('{"instances": [[[1, 2], [3, 4]]]}'), "nested lists (tensors)"),
        (record('{"dataframe_split": {"columns": ["a"]}}'), "without a data list"),
        (record('{"predict": {"a": [1]}}'), "without dataframe_split"),
        (record("x", encoding="XML"), "unknown encoding XML"),
        ({"captureData": {"endpointOutput": {}}, "eventMetadata": {}}, "no endpointInput"),
    ],
)
def test_unreadable_records_say_why(rec: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unreadable) as caught:
        record_rows(rec, FEATURES)
    assert reason in str(caught.value)


def test_batches_keep_column_kinds_and_count_what_failed() -> None:
    records = [
        record('{"dataframe_records": [{"age": 31, "income": 5.5, "plan": "gold"}]}'),
        record("42,,silver\n", "text/csv", "CSV"),
        record('{"instances": [{"age": 50, "income": 7, "plan": "gold", "extra": true}]}'),
        record("{broken"),
    ]
    stats = ReadStats()
    [frame] = list(read_batches(records, FEATURES, stats))
    assert list(frame.columns) == ["age", "income", "plan", "extra"]
    assert str(frame["age"].dtype) == "Int64"
    assert frame["income"].dtype == "float64"
    assert frame["income"].isna().tolist() == [False, True, False]
    assert stats.rows == 3
    assert stats.unreadable == {"a JSON body that does not parse": 1}
    profile = profile_frame(frame)
    assert profile.features["age"].inferred_type == InferredType.INTEGRAL
    assert profile.features["income"].inferred_type == InferredType.FRACTIONAL
    assert profile.features["plan"].inferred_type == InferredType.STRING


def test_batches_are_cut_at_batch_rows() -> None:
    records = [record(json.dumps({"inputs": [[i, 1.0, "a"]] * 10})) for i in range(5)]
    stats = ReadStats()
    sizes = [len(b) for b in read_batches(records, FEATURES, stats, batch_rows=25)]
    assert sizes == [30, 20]


def write_capture(root: Path, endpoint: str, variant: str, records: list[dict[str, Any]]) -> None:
    """Records in SageMaker's layout: {root}/{endpoint}/{variant}/yyyy/mm/dd/hh/*.jsonl."""
    by_hour: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        when = datetime.strptime(r["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
        by_hour.setdefault(when.strftime("%Y/%m/%d/%H"), []).append(r)
    for hour, group in by_hour.items():
        directory = root / endpoint / variant / hour
        directory.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r) + "\n" for r in group)
        (directory / f"00-00-000-{variant}.jsonl").write_text(lines)


def test_a_window_reads_every_variant_of_its_hours_only(tmp_path: Path) -> None:
    def at(minutes: int, age: int) -> dict[str, Any]:
        return record(f"{age},1.0,a\n", "text/csv", "CSV", T0 + timedelta(minutes=minutes))

    write_capture(tmp_path, "churn", "champion", [at(-1, 1), at(0, 2), at(59, 3), at(60, 4)])
    write_capture(tmp_path, "churn", "challenger", [at(30, 5), at(125, 6)])
    write_capture(tmp_path, "other", "main", [at(10, 7)])
    (tmp_path / "churn" / "champion" / "2026/11/30/06" / "01-00-000-cut.jsonl").write_text(
        '{"captureData": {"endpointInp'  # a line cut by a crash
    )
    stats = ReadStats()
    frames = list(read_window(tmp_path, "churn", T0, T0 + timedelta(hours=1), FEATURES, stats))
    ages = sorted(pd.concat(frames)["age"].tolist())
    assert ages == [2, 3, 5]
    assert stats.records == 3
    assert stats.unreadable == {"a line that is not JSON": 1}
    assert stats.files >= 3


def test_an_empty_window(tmp_path: Path) -> None:
    stats = ReadStats()
    assert list(read_window(tmp_path, "none", T0, T0 + timedelta(hours=1), FEATURES, stats)) == []
    assert stats.to_dict()["records"] == 0
