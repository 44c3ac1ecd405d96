"""The console's pure parts: sessions and links, the identity check, charts, invoke forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pier.contract.sigv4 import Credentials
from pier.errors import ValidationException
from pier.platform.console.charts import Line, chart, minute
from pier.platform.console.identity import Identity, check
from pier.platform.console.pages import versions
from pier.platform.console.sessions import SessionStore
from pier.platform.console.signature import body, read_form


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_and_sign_in_issues_a_new_id() -> None:
    clock = Clock()
    store = SessionStore(ttl_s=10, link_ttl_s=5, clock=clock)
    anonymous = store.anonymous()
    assert anonymous.identity is None
    signed = store.sign_in(Identity("AK"), previous=anonymous.id)
    assert signed.id != anonymous.id
    assert store.get(anonymous.id) is None  # the pre-sign-in id is worth nothing
    assert store.get(signed.id) is signed
    assert signed.csrf_ok(signed.csrf)
    assert not signed.csrf_ok(None)
    assert not signed.csrf_ok(anonymous.csrf)
    clock.now += 10
    assert store.get(signed.id) is None
    assert store.get("") is None


def test_one_time_links_are_single_use_and_expire() -> None:
    clock = Clock()
    store = SessionStore(ttl_s=10, link_ttl_s=5, clock=clock)
    token = store.new_link(Identity("AK"))
    assert store.redeem_link(token) == Identity("AK")
    assert store.redeem_link(token) is None
    late = store.new_link(Identity("AK"))
    clock.now += 5
    assert store.redeem_link(late) is None
    assert store.redeem_link("made-up") is None


def test_the_identity_check() -> None:
    creds = Credentials("AKPRTEST", "s3cret")

    def lookup(key: str) -> Credentials | None:
        return creds if key == "AKPRTEST" else None

    assert check(lookup, "AKPRTEST", "s3cret") == Identity("AKPRTEST")
    assert check(lookup, "AKPRTEST", "s3cre") is None
    assert check(lookup, "AKPRTEST", "") is None
    assert check(lookup, "OTHER", "s3cret") is None


def test_a_chart_fills_counts_and_breaks_latencies() -> None:
    start = minute(1_800_000_000)
    end = start + 5 * 60
    counts = Line("Invocations", "s-main", {start: 2.0, start + 120: 5.0}, counts=True)
    latency = Line("ModelLatency", "s-main", {start: 10.0, start + 120: 30.0}, counts=False)
    c = chart("Invocations", "count", [counts], start, end)
    assert len(c.series[0].segments) == 1
    assert len(c.series[0].segments[0].split()) == 5  # every minute, 0 where none came
    assert c.series[0].latest == "0"
    assert [t for _, t in c.y_labels] == ["0", "2.5", "5"]  # a round top above the peak
    gap = chart("ModelLatency", "µs", [latency], start, end)
    assert gap.series[0].segments == []  # no line across the minute without requests
    assert len(gap.series[0].dots) == 2  # each lone minute is a dot
    assert gap.series[0].latest == "30"
    assert chart("x", "count", [Line("x", "s", {}, counts=False)], start, end).empty


def test_an_invoke_form_from_a_signature_and_back(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text(
        "signature:\n  inputs: '"
        + json.dumps(
            [
                {"type": "double", "name": "a"},
                {"type": "long", "name": "n"},
                {"type": "string", "name": "s"},
                {"type": "boolean", "name": "b"},
            ]
        )
        + "'\n"
    )
    example = {"dataframe_split": {"columns": ["n", "a", "s", "b"], "data": [[1, 0.5, "x", True]]}}
    (tmp_path / "serving_input_example.json").write_text(json.dumps(example))
    form = read_form(tmp_path)
    assert [c.name for c in form.columns] == ["a", "n", "s", "b"]
    assert form.rows == [["0.5", "1", "x", "true"]]
    fields = {"r0c0": "1.5", "r0c1": "2", "r0c2": "<y>", "r0c3": "false"}
    sent = json.loads(body(form, fields, 1))
    assert sent == {
        "dataframe_split": {"columns": ["a", "n", "s", "b"], "data": [[1.5, 2, "<y>", False]]}
    }
    with pytest.raises(ValidationException, match=r"row 1, column n \(long\)"):
        body(form, {**fields, "r0c1": "2.5"}, 1)
    with pytest.raises(ValidationException, match="rows must be between"):
        body(form, fields, 0)


def test_a_model_without_a_column_signature_gets_its_example_as_json(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "input_example.json").write_text(json.dumps({"inputs": [[1, 2]]}))
    form = read_form(tmp_path)
    assert not form.tabular
    assert json.loads(form.raw) == {"inputs": [[1, 2]]}
    assert not read_form(tmp_path / "missing").tabular


def test_registry_versions_link_to_the_mlflow_ui() -> None:
    variant = {
        "DeployedImages": [
            {"ResolvedImage": "pier/mlflow-pyfunc@models:/diabetes/3"},
            {"ResolvedImage": "pier/mlflow-pyfunc"},  # a directory model: no version
        ]
    }
    assert versions(variant, "http://127.0.0.1:5000") == [
        {"text": "diabetes v3", "url": "http://127.0.0.1:5000/#/models/diabetes/versions/3"}
    ]
    assert versions(variant, None) == [{"text": "diabetes v3", "url": ""}]
