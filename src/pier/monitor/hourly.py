"""Hour-partitioned JSON Lines, as SageMaker lays out data capture and ground truth:
`{root}/yyyy/mm/dd/hh/*.jsonl` (UTC hours), in a local directory or under an S3 prefix.

Reading a window lists only the hour directories it touches, so a day costs 24 listings however
much older data the store holds. Files of an hour are read in name order: capture and
ground-truth files are named after the time of their first line, so that is time order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pier.monitor.quality import Captured, QualityError, captured_from_record
from pier.storage import Location, S3Client, S3ClientFactory, child, s3_client


def hours(start: float, end: float) -> list[str]:
    """`yyyy/mm/dd/hh` of every UTC hour that overlaps [start, end]."""
    first = int(start // 3600)
    last = int(end // 3600)
    return [time.strftime("%Y/%m/%d/%H", time.gmtime(h * 3600)) for h in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class Line:
    source: str  # the file (path or s3:// URI)
    number: int  # 1-based
    text: bytes


def _s3_keys(client: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = client.list_objects_v2(**request)
        keys.extend(item["Key"] for item in page.get("Contents", []))
        if not page.get("IsTruncated"):
            return keys
        request["ContinuationToken"] = page["NextContinuationToken"]


def subdirectories(location: Location, s3: S3ClientFactory = s3_client) -> list[str]:
    """Names of the directories (S3: common prefixes) directly under `location`."""
    if isinstance(location, Path):
        if not location.is_dir():
            return []
        return sorted(p.name for p in location.iterdir() if p.is_dir())
    client = s3()
    prefix = f"{location.prefix}/" if location.prefix else ""
    names: list[str] = []
    request: dict[str, Any] = {"Bucket": location.bucket, "Prefix": prefix, "Delimiter": "/"}
    while True:
        page = client.list_objects_v2(**request)
        names.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        if not page.get("IsTruncated"):
            return sorted(names)
        request["ContinuationToken"] = page["NextContinuationToken"]


def read_lines(
    location: Location, start: float, end: float, s3: S3ClientFactory = s3_client
) -> Iterator[Line]:
    """Every non-blank line of the `*.jsonl` files in the hours overlapping [start, end]."""
    client = None
    for hour in hours(start, end):
        if isinstance(location, Path):
            directory = location / hour
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.jsonl")):
                yield from _lines(str(path), path.read_bytes())
            continue
        if client is None:
            client = s3()
        prefix = f"{location.prefix}/{hour}/" if location.prefix else f"{hour}/"
        for key in sorted(_s3_keys(client, location.bucket, prefix)):
            if key.endswith(".jsonl"):
                body = client.get_object(Bucket=location.bucket, Key=key)["Body"].read()
                yield from _lines(f"s3://{location.bucket}/{key}", body)


def _lines(source: str, data: bytes) -> Iterator[Line]:
    for number, text in enumerate(data.split(b"\n"), start=1):
        if text.strip():
            yield Line(source, number, text)


@dataclass
class CaptureWindow:
    """The captured records of one endpoint in a window, with what could not be read."""

    captures: list[Captured]
    variants: list[str]
    bad_lines: int = 0  # not JSON, or not a capture record (e.g. a line cut by a crash)
    example: str | None = None  # the first bad line's file, number and problem


def read_captures(
    destination: Location,
    endpoint: str,
    start: float,
    end: float,
    s3: S3ClientFactory = s3_client,
) -> CaptureWindow:
    """Records under `{destination}/{endpoint}/{variant}/yyyy/mm/dd/hh/` of every variant,
    in the hours overlapping [start, end] (the caller filters by inferenceTime)."""
    root = child(destination, endpoint)
    variants = subdirectories(root, s3)
    window = CaptureWindow([], variants)
    for variant in variants:
        for line in read_lines(child(root, variant), start, end, s3):
            try:
                window.captures.append(captured_from_record(orjson.loads(line.text), variant))
            except (orjson.JSONDecodeError, QualityError) as exc:
                window.bad_lines += 1
                if window.example is None:
                    problem = exc.message if isinstance(exc, QualityError) else "not JSON"
                    window.example = f"{line.source}:{line.number}: {problem}"
    return window


__all__ = [
    "CaptureWindow",
    "Line",
    "hours",
    "read_captures",
    "read_lines",
    "subdirectories",
]
