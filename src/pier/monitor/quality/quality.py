"""Model quality from ground truth: captured predictions joined with labels by id, and metrics
per variant and time bucket. Pure: no files, no network (pier.monitor.quality.captures reads them).

Ids. A ground-truth record's `eventMetadata.eventId` names a captured inference by the
`inferenceId` its caller gave (InvokeEndpoint's InferenceId), falling back to the capture's own
`eventId`, as SageMaker Model Monitor merges them.

Rows. A captured output may hold several predictions (a batch); a ground-truth record then holds
a list of as many labels, in the same order: CSV `"3.1,2.7"` (or one per line), or JSON
`"[3.1, 2.7]"`. SageMaker's convention is one label per inference; pier's is a list when an
inference is a batch. A capture whose prediction and label counts differ is counted, not used.

Predictions are read from the captured `endpointOutput` (CSV, JSON or BASE64 of either):
MLflow's `{"predictions": [...]}`, a bare JSON list or value, or CSV lines. A row is a value, a
list (a CSV line, a JSON list) or an object (a JSON object, e.g. a model's DataFrame output or
SageMaker's `{"predicted_label": 1, "score": 0.8}`). `inference_attribute` and
`probability_attribute` pick a row's label and probability (a key of an object, a 0-based
column of a list), as Model Monitor's InferenceAttribute and ProbabilityAttribute do; without
them, pier reads a one-value row as the prediction, a longer list (classification) as class
probabilities, and an object by its usual keys (see `LABEL_KEYS`, `PROBABILITY_KEYS`).

Nothing is dropped silently: captures without a label, labels without a capture, labels that
replace an earlier one for the same id, and captures that cannot be scored (with the reason)
are all counted in the report.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from pier.monitor.errors import MonitorError
from pier.monitor.quality.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Metrics,
    binary_metrics,
    multiclass_metrics,
    regression_metrics,
)

LABEL_KEYS = ("predicted_label", "label", "prediction", "class")
PROBABILITY_KEYS = ("probabilities", "probability", "scores", "score")
MAX_EXAMPLES = 5


class Problem(StrEnum):
    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"


class QualityError(MonitorError):
    """A label, a prediction or options that cannot be scored; the message says why."""


@dataclass(frozen=True)
class QualityOptions:
    problem: Problem = Problem.REGRESSION
    positive_label: str = "1"  # binary: the class precision, recall, F1 and AUC are about
    probability_threshold: float = 0.5  # binary, score only: positive when score >= this
    inference_attribute: str | None = None
    probability_attribute: str | None = None
    classes: tuple[str, ...] | None = None  # columns of probability vectors (default 0..k-1)
    bucket_seconds: int = 3600

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0:
            raise QualityError("the bucket must be a positive number of seconds")
        if not 0.0 <= self.probability_threshold <= 1.0:
            raise QualityError("the probability threshold must be between 0 and 1")

    @property
    def positive(self) -> str:
        return canonical_class(self.positive_label)


# ------------------------------------------------------------------------------- values
def canonical_class(value: object) -> str:
    """One spelling per class, so a CSV label `"1"` equals a JSON prediction `1` or `1.0`:
    integral numbers as integers, booleans (and "true"/"false") as 1 and 0, other text as is."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered in ("true", "false"):
            return "1" if lowered == "true" else "0"
        try:
            return _number_text(float(text))
        except ValueError:
            return text
    raise QualityError(f"a class must be a value, not {_kind(value)}")


def _number_text(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x.is_integer() else repr(x)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QualityError(f"{what} {_show(value)} is not a number")
    try:
        x = float(value)
    except ValueError:
        raise QualityError(f"{what} {_show(value)} is not a number") from None
    if not math.isfinite(x):
        raise QualityError(f"{what} {_show(value)} is not a finite number")
    return x


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__


def _show(value: object) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _csv_rows(text: str) -> list[list[str]]:
    return [[f.strip() for f in row] for row in csv.reader(io.StringIO(text)) if row]


# ------------------------------------------------------------------------------- labels
def parse_labels(ground_truth_data: Mapping[str, Any]) -> list[Any]:
    """The label(s) of a ground-truth record's `groundTruthData`: one, or a list for a batch.

    CSV: fields separated by commas or lines (`"1"`, `"3.1,2.7"`); JSON: the text of a value or
    of a list of values (`"1"`, `"\\"cat\\""`, `"[3.1, 2.7]"`)."""
    data = ground_truth_data.get("data")
    encoding = ground_truth_data.get("encoding")
    if not isinstance(data, str):
        raise QualityError(f"data must be a string, not {_kind(data)}")
    if encoding == "CSV":
        labels: list[Any] = [f for row in _csv_rows(data) for f in row]
        if not labels or any(f == "" for f in labels):
            raise QualityError(f"data {_show(data)} holds an empty CSV field or none")
        return labels
    if encoding == "JSON":
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise QualityError(f"data {_show(data)} is not JSON (encoding is JSON)") from None
        values = value if isinstance(value, list) else [value]
        if not values:
            raise QualityError("data is an empty JSON list")
        for v in values:
            if v is None or isinstance(v, dict | list):
                raise QualityError(
                    f"data {_show(data)}: a label is a number, a string or a boolean, "
                    f"not {'null' if v is None else _kind(v)}"
                )
        return values
    raise QualityError(f"encoding must be CSV or JSON, not {_show(encoding)}")


# -------------------------------------------------------------------------- predictions
@dataclass(frozen=True, slots=True)
class Predicted:
    """One scored row: a number (regression) or a class, with a probability if known."""

    value: float | None = None  # regression
    label: str | None = None  # classification, canonical
    score: float | None = None  # binary: probability of the positive class
    probabilities: tuple[float, ...] | None = None  # multiclass: one per class


def output_rows(endpoint_output: Mapping[str, Any]) -> list[Any]:
    """The prediction rows of a captured `endpointOutput`."""
    encoding = endpoint_output.get("encoding")
    data = endpoint_output.get("data")
    if not isinstance(data, str):
        raise QualityError("the captured output has no data")
    if encoding == "BASE64":
        content_type = str(endpoint_output.get("observedContentType", "")).lower()
        if "json" in content_type:
            encoding = "JSON"
        elif "csv" in content_type or content_type.startswith("text/plain"):
            encoding = "CSV"
        else:
            raise QualityError(
                f"the captured output is BASE64 of {content_type or 'no content type'}: pier "
                "reads JSON and CSV (list them in CaptureContentTypeHeader)"
            )
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise QualityError("the captured output is not base64 of UTF-8 text") from None
    if encoding == "CSV":
        return [row[0] if len(row) == 1 else row for row in _csv_rows(data)]
    if encoding == "JSON":
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise QualityError("the captured output is not JSON (encoding is JSON)") from None
        if isinstance(value, dict) and "predictions" in value:
            value = value["predictions"]
        return value if isinstance(value, list) else [value]
    raise QualityError(f"unknown encoding {_show(encoding)} of the captured output")


def _unwrap(value: Any) -> Any:
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _attribute(row: Any, attribute: str, what: str) -> Any:
    if isinstance(row, dict):
        if attribute not in row:
            raise QualityError(f"the {what} attribute {attribute!r} is not in {_show(row)}")
        return row[attribute]
    if not attribute.isdigit():
        raise QualityError(
            f"the {what} attribute {attribute!r} is a key, but the row {_show(row)} is not an "
            "object (use a 0-based column number)"
        )
    fields = row if isinstance(row, list) else [row]
    index = int(attribute)
    if index >= len(fields):
        raise QualityError(f"the row {_show(row)} has no column {index} ({what} attribute)")
    return fields[index]


def _first_key(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        if k in row:
            return row[k]
    return None


def predicted_row(row: Any, options: QualityOptions) -> Predicted:
    """Read one prediction row for `options.problem`."""
    if options.problem is Problem.REGRESSION:
        if options.inference_attribute is not None:
            value = _attribute(row, options.inference_attribute, "inference")
        elif isinstance(row, dict):
            value = next(iter(row.values())) if len(row) == 1 else _first_key(row, LABEL_KEYS)
            if value is None:
                raise QualityError(
                    f"which key of {_show(row)} is the prediction? Set the inference attribute"
                )
        else:
            value = _unwrap(row)
            if isinstance(value, list):
                raise QualityError(
                    f"the row {_show(row)} holds {len(value)} values: set the inference "
                    "attribute to the column of the prediction"
                )
        return Predicted(value=_number(_unwrap(value), "the prediction"))
    return _classified(row, options)


def _classified(row: Any, options: QualityOptions) -> Predicted:
    label: Any = None
    probability: Any = None
    if options.inference_attribute is not None:
        label = _attribute(row, options.inference_attribute, "inference")
    if options.probability_attribute is not None:
        probability = _attribute(row, options.probability_attribute, "probability")
    if options.inference_attribute is None and options.probability_attribute is None:
        if isinstance(row, dict):
            label, probability = _first_key(row, LABEL_KEYS), _first_key(row, PROBABILITY_KEYS)
        else:
            value = _unwrap(row)
            if isinstance(value, list):
                probability = value  # one probability per class
            else:
                label = value
    label, probability = _unwrap(label), _unwrap(probability)
    if label is None and probability is None:
        raise QualityError(f"no predicted class or probability in {_show(row)}")
    return _with_probability(
        None if label is None else canonical_class(label), probability, options
    )


def _with_probability(label: str | None, probability: Any, options: QualityOptions) -> Predicted:
    if probability is None:
        assert label is not None
        return Predicted(label=label)
    binary = options.problem is Problem.BINARY
    if isinstance(probability, list):
        vector = tuple(_number(p, "a probability") for p in probability)
        classes = options.classes or tuple(str(i) for i in range(len(vector)))
        if len(classes) != len(vector):
            raise QualityError(
                f"{len(vector)} probabilities for the {len(classes)} classes {list(classes)}"
            )
        if label is None:
            label = classes[max(range(len(vector)), key=vector.__getitem__)]
        if not binary:
            return Predicted(label=label, probabilities=vector)
        if options.positive not in classes:
            raise QualityError(
                f"the positive label {options.positive!r} is not among the classes "
                f"{list(classes)} of the probabilities"
            )
        return Predicted(label=label, score=vector[classes.index(options.positive)])
    score = _number(probability, "the probability")
    if not binary:
        if label is None:
            raise QualityError("a single score cannot say which of several classes: no label")
        return Predicted(label=label)  # no vector: no AUC, the label still counts
    if label is None:
        label = options.positive if score >= options.probability_threshold else NOT_POSITIVE
    return Predicted(label=label, score=score)


NOT_POSITIVE = "\x00not-positive"  # binary, score below the threshold: some other class


def predicted_rows(endpoint_output: Mapping[str, Any], options: QualityOptions) -> list[Predicted]:
    return [predicted_row(r, options) for r in output_rows(endpoint_output)]


# --------------------------------------------------------------------------------- join
@dataclass(frozen=True, slots=True)
class Captured:
    """What the join needs of a captured record."""

    variant: str
    time: float  # inferenceTime, epoch seconds
    event_id: str
    inference_id: str | None
    output: Mapping[str, Any] | None  # captureData.endpointOutput


@dataclass(frozen=True, slots=True)
class GroundTruth:
    event_id: str  # eventMetadata.eventId: an inferenceId, or a capture's eventId
    data: Mapping[str, Any]  # groundTruthData


def captured_from_record(record: Any, variant: str) -> Captured:
    """A capture file's line (parsed) as `Captured`; QualityError if it is not one."""
    if not isinstance(record, dict):
        raise QualityError("a capture record is a JSON object")
    meta = record.get("eventMetadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("eventId"), str):
        raise QualityError("a capture record without eventMetadata.eventId")
    try:
        at = datetime.strptime(str(meta.get("inferenceTime")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise QualityError(
            f"inferenceTime {meta.get('inferenceTime')!r} is not yyyy-mm-ddThh:mm:ssZ"
        ) from None
    inference_id = meta.get("inferenceId")
    capture = record.get("captureData")
    output = capture.get("endpointOutput") if isinstance(capture, dict) else None
    return Captured(
        variant=variant,
        time=at.replace(tzinfo=UTC).timestamp(),
        event_id=meta["eventId"],
        inference_id=inference_id if isinstance(inference_id, str) else None,
        output=output if isinstance(output, dict) else None,
    )


def ground_truth_from_record(record: Mapping[str, Any]) -> GroundTruth:
    """A validated ground-truth record (see pier.monitor.quality.ground_truth) as `GroundTruth`."""
    return GroundTruth(record["eventMetadata"]["eventId"], record["groundTruthData"])


# ------------------------------------------------------------------------------- report
@dataclass
class BucketQuality:
    """Quality of one variant over one time bucket (or the whole window: `total`)."""

    variant: str
    start: datetime
    end: datetime
    count: int = 0  # rows scored (a batch inference counts its rows)
    metrics: Metrics = field(default_factory=dict)
    inferences: int = 0  # captures with a label that were scored
    captures_without_label: int = 0
    unscorable: int = 0  # captures with a label that could not be scored (see problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "count": self.count,
            **self.metrics,
            "inferences": self.inferences,
            "captures_without_label": self.captures_without_label,
            "unscorable": self.unscorable,
        }


@dataclass
class QualityReport:
    problem: Problem
    start: datetime | None
    end: datetime | None
    bucket_seconds: int
    buckets: list[BucketQuality]  # by variant, then time; buckets with no capture are absent
    totals: dict[str, BucketQuality]  # variant -> the whole window
    captures: int = 0
    labels: int = 0
    labels_without_capture: int = 0
    replaced_labels: int = 0  # a later label for the same id replaced an earlier one
    shared_ids: int = 0  # captures whose id another capture already has (each is scored)
    # why captures with a label were unscorable: row_count_mismatch, unreadable
    problems: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def metric_names(self) -> tuple[str, ...]:
        if self.problem is Problem.REGRESSION:
            return REGRESSION_METRICS
        return CLASSIFICATION_METRICS

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": str(self.problem),
            "start": _iso(self.start) if self.start else None,
            "end": _iso(self.end) if self.end else None,
            "bucket_seconds": self.bucket_seconds,
            "variants": {
                v: {
                    "total": total.to_dict(),
                    "buckets": [b.to_dict() for b in self.buckets if b.variant == v],
                }
                for v, total in self.totals.items()
            },
            "captures": self.captures,
            "labels": self.labels,
            "labels_without_capture": self.labels_without_capture,
            "replaced_labels": self.replaced_labels,
            "shared_ids": self.shared_ids,
            "problems": self.problems,
            "examples": self.examples,
        }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Group:
    bucket: BucketQuality
    labels: list[Any] = field(default_factory=list)
    predicted: list[Predicted] = field(default_factory=list)


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def compute(
    captures: Iterable[Captured],
    ground_truth: Iterable[GroundTruth],
    options: QualityOptions | None = None,
    start: float | None = None,
    end: float | None = None,
) -> QualityReport:
    """Join and score. Captures outside [start, end) (epoch seconds) are left out; labels are
    taken in order, a later one for an id replacing an earlier one."""
    options = options or QualityOptions()
    labels: dict[str, GroundTruth] = {}
    report = QualityReport(
        options.problem,
        None if start is None else _when(start),
        None if end is None else _when(end),
        options.bucket_seconds,
        [],
        {},
    )
    for gt in ground_truth:
        report.labels += 1
        if gt.event_id in labels:
            report.replaced_labels += 1
        labels[gt.event_id] = gt
    groups: dict[tuple[str, float], _Group] = {}
    totals: dict[str, _Group] = {}
    used: set[str] = set()
    seen: set[str] = set()
    problems: Counter[str] = Counter()
    step = options.bucket_seconds
    for c in captures:
        if (start is not None and c.time < start) or (end is not None and c.time >= end):
            continue
        report.captures += 1
        key_start = math.floor(c.time / step) * step
        group = groups.get((c.variant, key_start))
        if group is None:
            bucket = BucketQuality(c.variant, _when(key_start), _when(key_start + step))
            group = groups[(c.variant, key_start)] = _Group(bucket)
        total = totals.get(c.variant)
        if total is None:
            bucket = BucketQuality(
                c.variant, report.start or _when(c.time), report.end or _when(c.time)
            )
            total = totals[c.variant] = _Group(bucket)
        own_id = c.inference_id or c.event_id
        if own_id in seen:
            report.shared_ids += 1
        seen.add(own_id)
        match = next((i for i in (c.inference_id, c.event_id) if i and i in labels), None)
        if match is None:
            group.bucket.captures_without_label += 1
            total.bucket.captures_without_label += 1
            continue
        used.add(match)
        try:
            if c.output is None:
                raise QualityError("the capture holds no endpointOutput (CaptureOptions)")
            predicted = predicted_rows(c.output, options)
            truth = parse_labels(labels[match].data)
            if len(truth) != len(predicted):
                raise _RowMismatch(
                    f"{len(predicted)} prediction(s) but {len(truth)} label(s): a batch needs "
                    "one label per row, in order"
                )
            truth = [_label_value(t, options) for t in truth]
        except QualityError as exc:
            problems["row_count_mismatch" if isinstance(exc, _RowMismatch) else "unreadable"] += 1
            group.bucket.unscorable += 1
            total.bucket.unscorable += 1
            if len(report.examples) < MAX_EXAMPLES:
                report.examples.append(f"{c.variant} {match}: {exc.message}")
            continue
        for g in (group, total):
            g.labels.extend(truth)
            g.predicted.extend(predicted)
            g.bucket.inferences += 1
    report.labels_without_capture = len(set(labels) - used)
    report.problems = dict(problems)
    if options.problem is Problem.BINARY:
        _check_positive(totals.values(), options)
    for g in [*groups.values(), *totals.values()]:
        g.bucket.count = len(g.labels)
        g.bucket.metrics = _score(g.labels, g.predicted, options)
    report.buckets = [groups[k].bucket for k in sorted(groups)]
    report.totals = {v: totals[v].bucket for v in sorted(totals)}
    return report


class _RowMismatch(QualityError):
    """A batch's predictions and labels differ in number."""


def _label_value(value: Any, options: QualityOptions) -> Any:
    if options.problem is Problem.REGRESSION:
        return _number(value, "the label")
    return canonical_class(value)


def _check_positive(totals: Iterable[_Group], options: QualityOptions) -> None:
    seen: set[str] = set()
    for g in totals:
        seen.update(g.labels)
        seen.update(p.label for p in g.predicted if p.label is not None)
    seen.discard(NOT_POSITIVE)
    # Two classes or more, none of them the positive one: a wrong --positive-label, not a
    # window that happens to hold one class (no fraud this hour).
    if len(seen) >= 2 and options.positive not in seen:
        raise QualityError(
            f"the positive label {options.positive!r} is neither a label nor a prediction; "
            f"classes seen: {', '.join(sorted(seen)[:10])} (choose one with the positive label)"
        )


def _score(labels: list[Any], predicted: list[Predicted], options: QualityOptions) -> Metrics:
    if options.problem is Problem.REGRESSION:
        return regression_metrics(labels, [p.value for p in predicted])  # type: ignore[misc]
    if options.problem is Problem.BINARY:
        positive = options.positive
        scores = [p.score for p in predicted]
        return binary_metrics(
            [t == positive for t in labels],
            [p.label == positive for p in predicted],
            None if any(s is None for s in scores) else scores,  # type: ignore[arg-type]
        )
    vectors = [p.probabilities for p in predicted]
    complete = vectors and all(v is not None for v in vectors)
    classes = None
    if complete:
        width = {len(v) for v in vectors if v is not None}
        if len(width) == 1:
            classes = options.classes or tuple(str(i) for i in range(width.pop()))
    return multiclass_metrics(
        labels,
        [p.label or "" for p in predicted],
        vectors if classes else None,  # type: ignore[arg-type]
        classes,
    )


__all__ = [
    "LABEL_KEYS",
    "PROBABILITY_KEYS",
    "BucketQuality",
    "Captured",
    "GroundTruth",
    "Predicted",
    "Problem",
    "QualityError",
    "QualityOptions",
    "QualityReport",
    "canonical_class",
    "captured_from_record",
    "compute",
    "ground_truth_from_record",
    "output_rows",
    "parse_labels",
    "predicted_row",
    "predicted_rows",
]
