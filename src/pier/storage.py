"""Storage locations: a local directory or an S3 bucket and prefix, and the one S3 client.

Data capture, its readers, ground truth, monitoring reports and model data all name where their
files live with a URI: `s3://bucket/prefix`, `file:///absolute/dir`, or `file:relative/dir`
under a base directory the caller chooses (the platform's capture directory, its ground-truth
directory). `location_problem` says why a URI is refused (the text of a ValidationException),
`resolve` turns an accepted one into a `Location`, `child` and `describe` work on either kind.

S3 clients come from `s3_client`: boto3's default credential chain, and AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL pick another S3 endpoint (boto3 itself honours them).

Hour-partitioned JSON Lines, as SageMaker lays out data capture and ground truth:
`{root}/yyyy/mm/dd/hh/*.jsonl` (UTC hours), in a local directory or under an S3 prefix.
Reading a window lists only the hour directories it touches, so a day costs 24 listings however
much older data the store holds. Files of an hour are read in name order: capture and
ground-truth files are named after the time of their first line, so that is time order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit


class S3Location(NamedTuple):
    bucket: str
    prefix: str  # without leading or trailing "/"; may be empty


Location = Path | S3Location


class S3Client(Protocol):
    """The calls of a boto3 S3 client that pier makes."""

    def put_object(self, **kwargs: Any) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def head_object(self, **kwargs: Any) -> Any: ...
    def list_objects_v2(self, **kwargs: Any) -> Any: ...


S3ClientFactory = Callable[[], S3Client]


def s3_client() -> S3Client:
    """A boto3 S3 client (an `S3ClientFactory`: callers create one when they first need it)."""
    import boto3
    from botocore.config import Config

    # Bounded, so that a clean stop with S3 unreachable ends (a capture file then stays in
    # its spool) and a dead endpoint fails a request instead of hanging it.
    config = Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
    )
    client: S3Client = boto3.client("s3", config=config)
    return client


def location_problem(uri: str, what: str = "DestinationS3Uri") -> str | None:
    """Why pier cannot store files at `uri` (a message for ValidationException), or None."""
    parsed = urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        return None if parsed.netloc else f"{what} {uri} names no bucket."
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return (
                f"{what} {uri}: a file URI names an absolute directory "
                "(file:///path) or one relative to the platform's capture directory (file:name)."
            )
        if not parsed.path or ".." in Path(unquote(parsed.path)).parts:
            return f"{what} {uri}: the file URI names no directory, or uses '..'."
        return None
    return (
        f"{what} {uri}: pier captures to s3://bucket/prefix or to a local directory (file:///path)."
    )


def resolve(uri: str, base: Path) -> Location:
    """Where `uri` points: a local directory (`file:relative` under `base`) or an S3 bucket and
    prefix; ValueError with `location_problem`'s text when pier cannot use it."""
    problem = location_problem(uri)
    if problem:
        raise ValueError(problem)
    parsed = urlsplit(uri)
    if parsed.scheme.lower() == "s3":
        return S3Location(parsed.netloc, parsed.path.strip("/"))
    path = Path(unquote(parsed.path))
    return path if path.is_absolute() else base / path


def child(location: Location, *parts: str) -> Location:
    """`location/part/...`: a subdirectory, or a longer S3 prefix."""
    if isinstance(location, Path):
        return location.joinpath(*parts)
    prefix = "/".join(p for p in (location.prefix, *parts) if p)
    return S3Location(location.bucket, prefix)


def describe(location: Location) -> str:
    if isinstance(location, Path):
        return str(location)
    return f"s3://{location.bucket}/{location.prefix}"


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


__all__ = [
    "Line",
    "Location",
    "S3Client",
    "S3ClientFactory",
    "S3Location",
    "child",
    "describe",
    "hours",
    "location_problem",
    "read_lines",
    "resolve",
    "s3_client",
    "subdirectories",
]
