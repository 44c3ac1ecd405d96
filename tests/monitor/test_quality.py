"""pier.monitor.quality.quality: predictions read from captured outputs, labels, the join by
inferenceId / eventId, batches, unmatched counts, and metrics per variant and bucket.

Capture records are written here in SageMaker's documented format, not by pier's writer."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from pier.monitor.quality.quality import (
    Captured,
    GroundTruth,
    Predicted,
    Problem,
    QualityError,
    QualityOptions,
    canonical_class,
    captured_from_record,
    compute,
    output_rows,
    parse_labels,
    predicted_rows,
)

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC).timestamp()
REG = QualityOptions()
BIN = QualityOptions(problem=Problem.BINARY)
MULTI = QualityOptions(problem=Problem.MULTICLASS)


def output(data: Any, encoding: str = "JSON", content_type: str = "application/json") -> dict:
    text = data if isinstance(data, str) else json.dumps(data)
    if encoding == "BASE64":
        text = base64.b64encode(text.encode()).decode()
    return {
        "observedContentType": content_type,
        "mode": "OUTPUT",
        "data": text,
        "encoding": encoding,
    }


def record(
    event_id: str, at: float, out: dict | None, inference_id: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"eventId": event_id}
    if inference_id is not None:
        meta["inferenceId"] = inference_id
    meta["inferenceTime"] = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data: dict[str, Any] = {
        "endpointInput": {
            "observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"
        }
    }  # fmt: skip
    if out is not None:
        data["endpointOutput"] = out
    return {"captureData": data, "eventMetadata": meta, "eventVersion": "0"}


def cap(
    event_id: str,
    predictions: Any,
    at: float = T0,
    variant: str = "a",
    inference_id: str | None = None,
) -> Captured:
    out = output({"predictions": predictions})
    return captured_from_record(record(event_id, at, out, inference_id), variant)


def gt(event_id: str, data: str, encoding: str = "CSV") -> GroundTruth:
    return GroundTruth(event_id, {"data": data, "encoding": encoding})


# --------------------------------------------------------------------------------- labels
@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        ("1.5", "CSV", ["1.5"]),
        ("3.1,2.7", "CSV", ["3.1", "2.7"]),
        ("3.1\n2.7\n", "CSV", ["3.1", "2.7"]),
        ("1", "JSON", [1]),
        ('"cat"', "JSON", ["cat"]),
        ("[3.1, 2.7]", "JSON", [3.1, 2.7]),
        ("true", "JSON", [True]),
    ],
)
def test_labels(data: str, encoding: str, expected: list[Any]) -> None:
    assert parse_labels({"data": data, "encoding": encoding}) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"data": 1, "encoding": "CSV"}, "data must be a string, not int"),
        ({"data": "1", "encoding": "XML"}, "encoding must be CSV or JSON, not 'XML'"),
        ({"data": "1", "encoding": None}, "encoding must be CSV or JSON, not null"),
        ({"data": "", "encoding": "CSV"}, "holds an empty CSV field or none"),
        ({"data": "1,,2", "encoding": "CSV"}, "holds an empty CSV field"),
        ({"data": "{oops", "encoding": "JSON"}, "is not JSON"),
        ({"data": "[]", "encoding": "JSON"}, "empty JSON list"),
        ({"data": '{"label": 1}', "encoding": "JSON"}, "not an object"),
        ({"data": "[1, null]", "encoding": "JSON"}, "not null"),
    ],
)
def test_bad_labels(given: dict[str, Any], message: str) -> None:
    with pytest.raises(QualityError, match=message.replace("[", r"\[")):
        parse_labels(given)


def test_canonical_classes() -> None:
    assert canonical_class(1) == canonical_class("1") == canonical_class(1.0) == "1"
    assert canonical_class(" 1.0 ") == "1"
    assert canonical_class(True) == canonical_class("TRUE") == "1"
    assert canonical_class("false") == "0"
    assert canonical_class(0.25) == canonical_class("0.25") == "0.25"
    assert canonical_class("cat") == "cat"
    with pytest.raises(QualityError, match="not a list"):
        canonical_class([1])


# ---------------------------------------------------------------------------- predictions
def test_mlflow_json_csv_and_plain_lists() -> None:
    assert output_rows(output({"predictions": [1.5, 2.5]})) == [1.5, 2.5]
    assert output_rows(output([1.5, 2.5])) == [1.5, 2.5]
    assert output_rows(output(7)) == [7]
    assert output_rows(output("1.5\n2.5\n", "CSV", "text/csv")) == ["1.5", "2.5"]
    assert output_rows(output("0.2,0.8\n", "CSV", "text/csv")) == [["0.2", "0.8"]]
    assert output_rows(output({"predictions": [1.5]}, "BASE64")) == [1.5]
    assert output_rows(output("4\n", "BASE64", "text/csv; charset=utf-8")) == ["4"]
    with pytest.raises(QualityError, match="BASE64 of application/x-npy"):
        output_rows(output("xx", "BASE64", "application/x-npy"))
    with pytest.raises(QualityError, match="not JSON"):
        output_rows(output("{", "JSON"))


def test_regression_rows() -> None:
    got = predicted_rows(output({"predictions": [1, [2.5], {"prediction": 3}]}), REG)
    assert [p.value for p in got] == [1.0, 2.5, 3.0]
    with pytest.raises(QualityError, match="holds 2 values: set the inference attribute"):
        predicted_rows(output({"predictions": [[1, 2]]}), REG)
    by_column = QualityOptions(inference_attribute="1")
    assert predicted_rows(output("a,4.5", "CSV", "text/csv"), by_column)[0].value == 4.5
    by_key = QualityOptions(inference_attribute="y")
    assert predicted_rows(output([{"y": 2, "z": 3}]), by_key)[0].value == 2.0
    with pytest.raises(QualityError, match="'y' is not in"):
        predicted_rows(output([{"z": 3}]), by_key)
    with pytest.raises(QualityError, match="is not a number"):
        predicted_rows(output(["abc"]), REG)
    with pytest.raises(QualityError, match="not a finite number"):
        predicted_rows(output("nan", "CSV", "text/csv"), REG)


def test_classification_rows() -> None:
    # labels only
    assert predicted_rows(output([1, 0, "1"]), BIN) == [
        Predicted(label="1"), Predicted(label="0"), Predicted(label="1")
    ]  # fmt: skip
    # probability vectors (predict_proba): class = argmax, binary score = P(positive)
    vectors = predicted_rows(output([[0.2, 0.8], [0.9, 0.1]]), BIN)
    assert vectors == [Predicted(label="1", score=0.8), Predicted(label="0", score=0.1)]
    multi = predicted_rows(output([[0.2, 0.5, 0.3]]), MULTI)
    assert multi == [Predicted(label="1", probabilities=(0.2, 0.5, 0.3))]
    named = QualityOptions(problem=Problem.MULTICLASS, classes=("cat", "dog", "eel"))
    assert predicted_rows(output([[0.2, 0.5, 0.3]]), named)[0].label == "dog"
    # SageMaker's built-in algorithms: {"predicted_label", "score"}
    sm = predicted_rows(output({"predictions": [{"predicted_label": 1, "score": 0.7}]}), BIN)
    assert sm == [Predicted(label="1", score=0.7)]
    # a bare score column: positive at or above the threshold
    scores = QualityOptions(problem=Problem.BINARY, probability_attribute="0")
    got = predicted_rows(output("0.7\n0.2\n0.5\n", "CSV", "text/csv"), scores)
    assert [(p.label == "1", p.score) for p in got] == [(True, 0.7), (False, 0.2), (True, 0.5)]
    # CSV label and score columns
    both = QualityOptions(
        problem=Problem.BINARY, inference_attribute="0", probability_attribute="1"
    )
    assert predicted_rows(output("1,0.9\n", "CSV", "text/csv"), both) == [
        Predicted(label="1", score=0.9)
    ]
    with pytest.raises(QualityError, match="3 probabilities for the 2 classes"):
        predicted_rows(
            output([[0.2, 0.5, 0.3]]), QualityOptions(Problem.BINARY, classes=("0", "1"))
        )
    with pytest.raises(QualityError, match="positive label 'yes' is not among"):
        predicted_rows(output([[0.2, 0.8]]), QualityOptions(Problem.BINARY, positive_label="yes"))
    with pytest.raises(QualityError, match="no predicted class or probability"):
        predicted_rows(output([{"other": 1}]), BIN)


# ---------------------------------------------------------------------------- capture records
def test_capture_records() -> None:
    c = captured_from_record(record("e1", T0 + 61, output([1]), "order-1"), "champion")
    assert (c.variant, c.time, c.event_id, c.inference_id) == ("champion", T0 + 61, "e1", "order-1")
    no_output = captured_from_record(record("e2", T0, None), "v")
    assert no_output.output is None
    assert no_output.inference_id is None
    with pytest.raises(QualityError, match=r"without eventMetadata\.eventId"):
        captured_from_record({"eventMetadata": {}}, "v")
    bad_time = record("e3", T0, None)
    bad_time["eventMetadata"]["inferenceTime"] = "yesterday"
    with pytest.raises(QualityError, match="'yesterday' is not yyyy-mm-ddThh:mm:ssZ"):
        captured_from_record(bad_time, "v")


# ------------------------------------------------------------------------------------ join
def test_join_by_inference_id_then_event_id() -> None:
    captures = [
        cap("e1", [10.0], inference_id="order-1"),  # labelled by its inferenceId
        cap("e2", [20.0]),  # no inferenceId: labelled by its eventId
        cap("e3", [30.0], inference_id="order-3"),  # labelled by eventId although it has one
        cap("e4", [40.0], inference_id="order-4"),  # no label
    ]
    labels = [gt("order-1", "11"), gt("e2", "18"), gt("e3", "30"), gt("nobody", "1")]
    report = compute(captures, labels, REG)
    total = report.totals["a"]
    assert total.count == 3
    assert total.inferences == 3
    assert total.captures_without_label == 1
    assert report.labels_without_capture == 1
    assert report.captures == 4
    assert report.labels == 4
    # errors 1, -2, 0
    assert total.metrics["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert total.metrics["mae"] == pytest.approx(1.0)


def test_batches_need_one_label_per_row() -> None:
    captures = [
        cap("e1", [1.0, 2.0, 3.0], inference_id="batch"),
        cap("e2", [1.0, 2.0], inference_id="short"),
        cap("e3", [5.0], inference_id="json"),
    ]
    labels = [gt("batch", "1.5,2,2.5"), gt("short", "1"), gt("json", "[6]", "JSON")]
    report = compute(captures, labels, REG)
    total = report.totals["a"]
    assert total.count == 4  # three rows of the batch, one of "json"
    assert total.inferences == 2
    assert total.unscorable == 1
    assert report.problems == {"row_count_mismatch": 1}
    assert report.examples == ["a short: 2 prediction(s) but 1 label(s): a batch needs one label "
                               "per row, in order"]  # fmt: skip
    assert total.metrics["mae"] == pytest.approx((0.5 + 0 + 0.5 + 1) / 4)


def test_replaced_labels_shared_ids_and_unreadable_outputs() -> None:
    captures = [
        cap("e1", [1.0], inference_id="x"),
        cap("e2", [3.0], inference_id="x"),  # the caller reused an id: both are scored
        captured_from_record(record("e3", T0, None, "no-output"), "a"),
        captured_from_record(record("e4", T0, output("xx", "BASE64", "image/png"), "png"), "a"),
    ]
    labels = [gt("x", "100"), gt("x", "2"), gt("no-output", "1"), gt("png", "1")]
    report = compute(captures, labels, REG)
    assert report.replaced_labels == 1
    assert report.shared_ids == 1
    assert report.totals["a"].count == 2
    assert report.totals["a"].metrics["mae"] == 1.0  # against the later label, 2
    assert report.problems == {"unreadable": 2}
    assert report.totals["a"].unscorable == 2
    assert report.labels_without_capture == 0
    assert any("no endpointOutput" in e for e in report.examples)


def test_buckets_variants_and_window() -> None:
    captures = [
        cap("a1", [1.0], T0 + 10, "champion"),
        cap("a2", [2.0], T0 + 3600 + 5, "champion"),
        cap("a3", [4.0], T0 + 3600 + 7, "champion"),
        cap("b1", [1.0], T0 + 20, "challenger"),
        cap("b2", [9.0], T0 + 30, "challenger"),  # unlabelled
        cap("old", [1.0], T0 - 7200, "champion"),  # before the window
    ]
    labels = [gt(i, "2") for i in ("a1", "a2", "a3", "b1", "old")]
    report = compute(captures, labels, REG, start=T0, end=T0 + 7200)
    rows = [(b.variant, b.start.hour, b.count, b.metrics["mae"]) for b in report.buckets]
    assert rows == [
        ("challenger", 6, 1, 1.0),
        ("champion", 6, 1, 1.0),
        ("champion", 7, 2, 1.0),
    ]
    assert report.buckets[0].captures_without_label == 1
    assert report.totals["champion"].count == 3
    assert report.totals["champion"].start == datetime.fromtimestamp(T0, UTC)
    assert report.labels_without_capture == 1  # "old": its capture is outside the window
    assert report.captures == 5
    quarter = compute(captures, labels, QualityOptions(bucket_seconds=900), T0, T0 + 7200)
    assert [b.start.minute for b in quarter.buckets if b.variant == "champion"] == [0, 0]


def test_binary_quality_with_scores() -> None:
    preds = [
        {"predicted_label": p, "score": s} for p, s in ((1, 0.9), (0, 0.2), (1, 0.6), (0, 0.4))
    ]
    captures = [cap(f"e{i}", [p]) for i, p in enumerate(preds)]
    labels = [gt(f"e{i}", y) for i, y in enumerate(["1", "0", "0", "1"])]
    m = compute(captures, labels, BIN).totals["a"].metrics
    assert m == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "auc": 0.75}


def test_binary_without_scores_has_no_auc_and_checks_the_positive_label() -> None:
    captures = [cap("e1", ["yes"]), cap("e2", ["no"])]
    labels = [gt("e1", "yes"), gt("e2", "yes")]
    with pytest.raises(QualityError, match="positive label '1' is neither a label nor"):
        compute(captures, labels, BIN)
    # one class only (no positive this hour): not a wrong positive label
    quiet = compute([cap("e1", ["0"])], [gt("e1", "0")], BIN).totals["a"].metrics
    assert quiet == {"accuracy": 1.0, "precision": None, "recall": None, "f1": None, "auc": None}
    opts = QualityOptions(problem=Problem.BINARY, positive_label="yes")
    m = compute(captures, labels, opts).totals["a"].metrics
    assert m == {"accuracy": 0.5, "precision": 1.0, "recall": 0.5, "f1": 2 / 3, "auc": None}


def test_multiclass_quality() -> None:
    vectors = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]]
    captures = [cap(f"e{i}", [v]) for i, v in enumerate(vectors)]
    labels = [gt(f"e{i}", y) for i, y in enumerate(["0", "1", "2", "1"])]
    m = compute(captures, labels, MULTI).totals["a"].metrics
    assert m["accuracy"] == 0.75
    assert m["auc"] is not None
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score([0, 1, 2, 1], vectors, multi_class="ovr", average="macro")
    assert m["auc"] == pytest.approx(expected)


def test_report_as_json() -> None:
    report = compute([cap("e1", [1.0], T0 + 1)], [gt("e1", "2")], REG, T0, T0 + 3600)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["variants"]["a"]["total"] == {
        "variant": "a",
        "start": "2026-11-30T06:00:00Z",
        "end": "2026-11-30T07:00:00Z",
        "count": 1,
        "rmse": 1.0,
        "mae": 1.0,
        "r2": None,
        "inferences": 1,
        "captures_without_label": 0,
        "unscorable": 0,
    }
    assert data["variants"]["a"]["buckets"][0]["start"] == "2026-11-30T06:00:00Z"
    assert data["labels_without_capture"] == 0


def test_options_are_checked() -> None:
    with pytest.raises(QualityError, match="positive number of seconds"):
        QualityOptions(bucket_seconds=0)
    with pytest.raises(QualityError, match="between 0 and 1"):
        QualityOptions(probability_threshold=2)
