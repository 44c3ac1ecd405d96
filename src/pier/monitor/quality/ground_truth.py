"""Ground truth: validate SageMaker's ground-truth JSON Lines, append them to a store, read a
window back.

A record, one per line (SageMaker Model Monitor's format):

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the inference's InferenceId, or its capture eventId>"},
     "eventVersion": "0"}

`data` is text: CSV, or the JSON text of a value (`"1"`, `"\\"cat\\""`) — or, for an inference
that was a batch of rows, several labels in row order (`"3.1,2.7"`, `"[3.1, 2.7]"`).

The store is laid out as SageMaker expects ground truth in S3, one prefix per endpoint:
`{root}/{endpoint}/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl`, the hour being the upload's
(UTC). `root` is `$PIER_HOME/ground-truth` unless the platform is given an `s3://` prefix
(or another `file:` directory). An upload is validated whole before anything is written, and
becomes one file, written under a temporary name, synced and renamed (one PutObject on S3):
readers never see half an upload.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pier.monitor.errors import MonitorError
from pier.monitor.quality.quality import GroundTruth, QualityError, parse_labels
from pier.storage import (
    Location,
    S3Client,
    S3ClientFactory,
    S3Location,
    child,
    describe,
    read_lines,
    resolve,
    s3_client,
)

CONTENT_TYPES = frozenset({"application/jsonlines", "application/x-ndjson", "application/jsonl"})
DEFAULT_DIR = "ground-truth"  # under the pier home
LOCATION_FILE = "ground-truth.uri"  # in the home: where the running platform stores labels
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class LineProblem:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


class GroundTruthError(MonitorError):
    """Lines that are not ground-truth records; `problems` names each (up to MAX_PROBLEMS)."""

    def __init__(self, problems: Sequence[LineProblem], more: int = 0) -> None:
        text = str(problems[0]) if problems else "no ground-truth records"
        if len(problems) + more > 1:
            text += f" (and {len(problems) + more - 1} more bad line(s))"
        super().__init__(text)
        self.problems = list(problems)
        self.more = more

    @property
    def line(self) -> int | None:
        return self.problems[0].line if self.problems else None


@dataclass(frozen=True)
class Upload:
    """A validated body: its records' lines (without newlines) and how many labels they hold."""

    lines: list[bytes]
    ids: list[str]
    labels: int

    @property
    def records(self) -> int:
        return len(self.lines)


def problem_of(record: Any) -> str | None:
    """What is wrong with a parsed line as a ground-truth record, or None."""
    if not isinstance(record, dict):
        return "a record is a JSON object"
    data = record.get("groundTruthData")
    if not isinstance(data, dict):
        return "groundTruthData is missing or not an object"
    meta = record.get("eventMetadata")
    if not isinstance(meta, dict):
        return "eventMetadata is missing or not an object"
    event_id = meta.get("eventId")
    if not isinstance(event_id, str) or not event_id.strip():
        return "eventMetadata.eventId must be a non-empty string (the inference's InferenceId)"
    if record.get("eventVersion") != "0":
        return f'eventVersion must be "0", not {orjson.dumps(record.get("eventVersion")).decode()}'
    try:
        parse_labels(data)
    except QualityError as exc:
        return f"groundTruthData.{exc.message}"
    return None


def validate(body: bytes) -> Upload:
    """Every non-blank line must be a ground-truth record; GroundTruthError otherwise."""
    problems: list[LineProblem] = []
    more = 0
    lines: list[bytes] = []
    ids: list[str] = []
    labels = 0
    for number, raw in enumerate(body.split(b"\n"), start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            problem: str | None = f"not valid JSON ({exc})"
        else:
            problem = problem_of(record)
        if problem is not None:
            if len(problems) < MAX_PROBLEMS:
                problems.append(LineProblem(number, problem))
            else:
                more += 1
            continue
        lines.append(text)
        ids.append(record["eventMetadata"]["eventId"])
        labels += len(parse_labels(record["groundTruthData"]))
    if problems or not lines:
        raise GroundTruthError(problems, more)
    return Upload(lines, ids, labels)


def store_uri(configured: str | None, home: Path) -> str:
    """The store a platform with `configured` (PIER_GROUND_TRUTH_URI) uses."""
    return configured or (home / DEFAULT_DIR).as_uri()


def _upload_name(now: float) -> str:
    gm = time.gmtime(now)
    millis = int((now - int(now)) * 1000)
    return f"{gm.tm_min:02d}-{gm.tm_sec:02d}-{millis:03d}-{uuid.uuid4()}.jsonl"


class GroundTruthStore:
    """Ground truth of every endpoint under one root (a directory or an S3 prefix)."""

    def __init__(self, uri: str, home: Path, s3: S3ClientFactory = s3_client) -> None:
        try:
            self.location: Location = resolve(uri, home / DEFAULT_DIR)
        except ValueError:
            raise MonitorError(
                f"ground-truth URI {uri}: pier stores ground truth under s3://bucket/prefix or "
                "in a local directory (file:///path)"
            ) from None
        self.uri = uri
        self._s3 = s3
        self._client: S3Client | None = None

    def __repr__(self) -> str:
        return f"GroundTruthStore({describe(self.location)})"

    def append(self, endpoint: str, upload: Upload, now: float | None = None) -> str:
        """Write one upload as one file; where it went."""
        now = time.time() if now is None else now
        hour = time.strftime("%Y/%m/%d/%H", time.gmtime(now))
        name = _upload_name(now)
        body = b"\n".join(upload.lines) + b"\n"
        target = child(self.location, endpoint, hour)
        if isinstance(target, Path):
            target.mkdir(parents=True, exist_ok=True)
            temporary = target / f".{name}.tmp"  # not *.jsonl: readers skip it
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())  # answered "accepted": it must survive a crash
                os.replace(temporary, target / name)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            return str(target / name)
        assert isinstance(target, S3Location)
        if self._client is None:
            self._client = self._s3()
        key = f"{target.prefix}/{name}"
        self._client.put_object(
            Bucket=target.bucket, Key=key, Body=body, ContentType="application/jsonl"
        )
        return f"s3://{target.bucket}/{key}"

    def read(self, endpoint: str, start: float, end: float) -> GroundTruthWindow:
        """Records uploaded in the hours overlapping [start, end], in upload order."""
        window = GroundTruthWindow([])
        for line in read_lines(child(self.location, endpoint), start, end, self._s3):
            try:
                record = orjson.loads(line.text)
                problem = problem_of(record)
            except orjson.JSONDecodeError:
                problem = "not valid JSON"
            if problem is not None:  # files put there by hand, not through pier
                window.bad_lines += 1
                if window.example is None:
                    window.example = f"{line.source}:{line.number}: {problem}"
                continue
            meta, data = record["eventMetadata"], record["groundTruthData"]
            window.records.append(GroundTruth(meta["eventId"], data))
        return window


@dataclass
class GroundTruthWindow:
    records: list[GroundTruth]
    bad_lines: int = 0
    example: str | None = None

    def __iter__(self) -> Iterator[GroundTruth]:
        return iter(self.records)


def store_for_home(
    home: Path, configured: str | None, s3: S3ClientFactory = s3_client
) -> GroundTruthStore:
    """The store of a pier home: the one its platform last announced in LOCATION_FILE, else the
    configured one, else `$PIER_HOME/ground-truth`."""
    announced = _read(home / LOCATION_FILE)
    return GroundTruthStore(announced or store_uri(configured, home), home, s3)


def announce(home: Path, store: GroundTruthStore) -> None:
    """Record where the platform stores ground truth, for `pier quality` to read it back."""
    (home / LOCATION_FILE).write_text(store.uri + "\n")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_DIR",
    "LOCATION_FILE",
    "GroundTruthError",
    "GroundTruthStore",
    "GroundTruthWindow",
    "LineProblem",
    "Upload",
    "announce",
    "problem_of",
    "store_for_home",
    "store_uri",
    "validate",
]
