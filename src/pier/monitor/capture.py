"""Data capture: SageMaker's JSONL records of sampled invocations, written off the hot path.

An EndpointConfig's DataCaptureConfig becomes a `CaptureSettings` on the endpoint's route. After
an answer went out, the invoke path calls `Capturer.offer`: one random draw (the sampling
percentage), then the request and response are appended to a bounded in-memory queue. Nothing
is encoded, awaited or written there. A writer task wakes every `flush_interval_s` (or when a
batch is full), swaps the queue for an empty one and hands the batch to one writer thread,
which builds the records (eventId, base64, JSON) and appends them to files.

Records and files are SageMaker's:
    {DestinationS3Uri}/{EndpointName}/{VariantName}/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl
one JSON object per line (`captureData.endpointInput|endpointOutput` with observedContentType,
mode, data, encoding; `eventMetadata` with eventId, inferenceId when the caller sent
X-Amzn-SageMaker-Inference-Id, inferenceTime; `eventVersion` "0"). The encoding is CSV or JSON
when the media type is listed in CaptureContentTypeHeader's CsvContentTypes / JsonContentTypes
(and the body is UTF-8), BASE64 otherwise. A file holds one hour (of the records'
inferenceTime), at most `file_max_bytes` and at most `file_max_age_s` of records; its name is
the time of its first record.

Destinations: `s3://bucket/prefix` (boto3's default credential chain; AWS_ENDPOINT_URL_S3 or
AWS_ENDPOINT_URL pick another S3 endpoint), `file:///absolute/dir`, or `file:relative/dir`
under the platform's capture directory (`$PIER_HOME/capture/`). An S3 file is written to a
spool directory first and uploaded with one PutObject when it rolls (with SSE-KMS when the
config names KmsKeyId); a failed upload stays in the spool and is retried with back-off, and a
spool left by a crash is uploaded at the next start.

What can be lost, and how it shows:
- Overload: the queue holds at most `queue_size` records; what does not fit is dropped and
  counted in `pier_capture_dropped_records_total{reason="overload"}`.
- A destination that cannot be written (a local path under a regular file, a full disk): the
  records are dropped, logged, and counted with `reason="write_error"`. An invocation never
  fails because of capture.
- A crash (SIGKILL, power aside): the queued records and the batch being written, that is at
  most one flush interval of traffic (1 s by default) and never more than 2 × `queue_size`
  records. Written batches are in the kernel's page cache (a crash can cut a file's last line);
  S3 spool files survive and are uploaded at the next start.
- A clean stop (SIGTERM, `pier down`): nothing. The platform awaits `aclose()`, which writes
  the queue, closes every file and uploads every S3 file.

Only successful invocations are captured: SageMaker's records always carry the model's output
(endpointOutput), and a request the platform or the model refused (ValidationError, ModelError)
is not captured — AWS documents nothing else, and Model Monitor's analyses expect both halves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson
from prometheus_client import CollectorRegistry, Counter

from pier.storage import Location, S3Client, S3ClientFactory, resolve, s3_client

log = logging.getLogger("pier.capture")

SPOOL_DIR = "spool"  # under the capture directory: S3 files before their upload
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_FILE_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_FILE_MAX_AGE_S = 60.0
_RETRY_MAX_S = 300.0
_BUFFER = 256 * 1024  # per open file: a batch reaches the kernel in a few writes
_OCTET_STREAM = "application/octet-stream"


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """An endpoint's DataCaptureConfig, parsed once when its route is published."""

    destination: str
    percentage: int
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str] = frozenset()
    json_types: frozenset[str] = frozenset()
    kms_key_id: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> CaptureSettings | None:
        """None when the config captures nothing (absent, EnableCapture false, 0 %)."""
        if not config or not config.get("EnableCapture", True):
            return None
        percentage = int(config.get("InitialSamplingPercentage", 0))
        destination = config.get("DestinationS3Uri")
        if percentage <= 0 or not destination:
            return None
        modes = {o.get("CaptureMode") for o in config.get("CaptureOptions", [])}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination=str(destination),
            percentage=min(percentage, 100),
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            csv_types=frozenset(_media_type(t) for t in header.get("CsvContentTypes", [])),
            json_types=frozenset(_media_type(t) for t in header.get("JsonContentTypes", [])),
            kms_key_id=config.get("KmsKeyId") or None,
        )


def _media_type(content_type: str) -> str:
    """`Text/CSV; charset=utf-8` -> `text/csv`."""
    return content_type.split(";", 1)[0].strip().lower()


# ----------------------------------------------------------------------------- records
class Event(NamedTuple):
    """One sampled invocation, as the hot path hands it over (nothing encoded yet)."""

    settings: CaptureSettings
    endpoint: str
    variant: str
    time: float  # epoch seconds, when the answer went out
    inference_id: str | None
    request: bytes
    request_type: str | None
    response: bytes
    response_type: str | None


@functools.lru_cache(maxsize=1024)
def _text_encoding(
    content_type: str | None, csv_types: frozenset[str], json_types: frozenset[str]
) -> str | None:
    """CSV or JSON when the media type is listed (a few distinct headers: cached)."""
    media = _media_type(content_type) if content_type else ""
    if media in csv_types:
        return "CSV"
    return "JSON" if media in json_types else None


def _payload(
    body: bytes, content_type: str | None, mode: str, settings: CaptureSettings
) -> dict[str, str]:
    encoding = _text_encoding(content_type, settings.csv_types, settings.json_types)
    data = None
    if encoding is not None:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = None  # not text after all: BASE64 keeps it intact
    if encoding is None:
        encoding, data = "BASE64", base64.b64encode(body).decode("ascii")
    return {
        "observedContentType": content_type or _OCTET_STREAM,
        "mode": mode,
        "data": data or "",
        "encoding": encoding,
    }


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122's 10xx


def event_ids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs as text, from one urandom call: a few times cheaper
    than str(uuid.uuid4()) each, which was half the cost of a record."""
    h = os.urandom(16 * count).hex()
    return [
        f"{h[j : j + 8]}-{h[j + 8 : j + 12]}-4{h[j + 13 : j + 16]}-"
        f"{_VARIANT[h[j + 16]]}{h[j + 17 : j + 20]}-{h[j + 20 : j + 32]}"
        for j in range(0, 32 * count, 32)
    ]


@functools.lru_cache(maxsize=256)
def _second(t: int) -> tuple[str, str]:
    """(inferenceTime, hour directory) of an epoch second: the records of a batch share a few."""
    gm = time.gmtime(t)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", gm), time.strftime("%Y/%m/%d/%H", gm)


def build_record(event: Event, event_id: str | None = None) -> bytes:
    """One line of a capture file (with its newline)."""
    s = event.settings
    capture: dict[str, Any] = {}
    if s.capture_input:
        capture["endpointInput"] = _payload(event.request, event.request_type, "INPUT", s)
    if s.capture_output:
        capture["endpointOutput"] = _payload(event.response, event.response_type, "OUTPUT", s)
    metadata = {"eventId": event_id or event_ids(1)[0]}
    if event.inference_id is not None:
        metadata["inferenceId"] = event.inference_id
    metadata["inferenceTime"] = _second(int(event.time))[0]
    record = {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def hour_path(t: float) -> str:
    """`yyyy/mm/dd/hh` of an epoch time, in UTC."""
    return _second(int(t))[1]


def file_name(t: float) -> str:
    """SageMaker's capture file name: `{MM}-{SS}-{mmm}-{uuid}.jsonl` of the first record."""
    gm = time.gmtime(t)
    millis = int((t - int(t)) * 1000)
    return f"{gm.tm_min:02d}-{gm.tm_sec:02d}-{millis:03d}-{uuid.uuid4()}.jsonl"


# ----------------------------------------------------------------------------- metrics
class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.records = Counter(
            "pier_capture_records",
            "Captured records delivered to their destination (a local file, or an uploaded "
            "S3 object)", ["endpoint", "variant"], registry=registry,
        )  # fmt: skip
        self.dropped = Counter(
            "pier_capture_dropped_records",
            "Sampled records that were not captured: reason overload (the capture queue was "
            "full), write_error (the destination could not be written), stopped (offered "
            "after the capturer stopped)", ["endpoint", "variant", "reason"], registry=registry,
        )  # fmt: skip
        self.upload_errors = Counter(
            "pier_capture_upload_errors",
            "Failed uploads of a capture file to S3 (the file stays in the spool and is "
            "retried)", ["endpoint", "variant"], registry=registry,
        )  # fmt: skip


# ----------------------------------------------------------------------------- S3
@dataclass
class _Spooled:
    """A closed S3 capture file waiting for its upload (`{id}.jsonl` + `{id}.json`)."""

    data: Path
    meta: Path
    bucket: str
    key: str
    kms_key_id: str | None
    endpoint: str
    variant: str
    records: int
    attempts: int = 0
    next_try: float = 0.0

    def save_meta(self) -> None:
        meta = {
            "bucket": self.bucket,
            "key": self.key,
            "kms_key_id": self.kms_key_id,
            "endpoint": self.endpoint,
            "variant": self.variant,
            "records": self.records,
        }
        self.meta.write_bytes(orjson.dumps(meta))

    @classmethod
    def load(cls, meta: Path) -> _Spooled:
        m = json.loads(meta.read_text())
        return cls(
            meta.with_suffix(".jsonl"), meta, m["bucket"], m["key"], m.get("kms_key_id"),
            m["endpoint"], m["variant"], int(m.get("records", 0)),
        )  # fmt: skip


# ----------------------------------------------------------------------------- files
@dataclass
class _OpenFile:
    path: Path  # where the bytes go: the destination directory, or the spool
    hour: str
    opened: float  # clock time
    handle: BinaryIO
    spooled: _Spooled | None = None  # set for an S3 file
    size: int = 0
    records: int = 0


_FileKey = tuple[str, str | None, str, str]  # destination, KMS key, endpoint, variant


@dataclass
class Writer:
    """The writer thread's side: builds records, appends them, rolls and uploads files.

    Called from one thread at a time (the capturer's writer thread); uploads run in a second
    thread so that a slow S3 never holds up local files.
    """

    base: Path  # relative file: destinations and the spool live here
    metrics: CaptureMetrics
    clock: Callable[[], float] = time.time
    file_max_bytes: int = DEFAULT_FILE_MAX_BYTES
    file_max_age_s: float = DEFAULT_FILE_MAX_AGE_S
    s3_client_factory: S3ClientFactory = s3_client
    _files: dict[_FileKey, _OpenFile] = field(default_factory=dict)
    _targets: dict[str, Location] = field(default_factory=dict)
    _uploads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="pier-capture-s3")
    )
    _waiting: list[_Spooled] = field(default_factory=list)  # failed uploads, to retry
    _failing: dict[str, float] = field(default_factory=dict)  # destination -> last log time
    _client: S3Client | None = None

    @property
    def spool(self) -> Path:
        return self.base / SPOOL_DIR

    # ---------------------------------------------------------------- writing
    def write(self, events: Iterable[Event]) -> None:
        """Append the events' records to their files (grouped, one write per file)."""
        groups: dict[tuple[_FileKey, str], list[Event]] = {}
        for e in events:
            key = (e.settings.destination, e.settings.kms_key_id, e.endpoint, e.variant)
            groups.setdefault((key, hour_path(e.time)), []).append(e)
        for (key, hour), group in groups.items():
            try:
                self._append(key, hour, group)
            except Exception as exc:  # never let one destination stop the others
                self._failed(key, len(group), exc)
        self.tick()

    def _append(self, key: _FileKey, hour: str, events: list[Event]) -> None:
        current = self._files.get(key)
        now = self.clock()
        if current is not None and (
            current.hour != hour
            or current.size >= self.file_max_bytes
            or now - current.opened >= self.file_max_age_s
        ):
            self._close(key)
            current = None
        if current is None:
            current = self._open(key, hour, events[0].time, now)
        # Each record straight into the file's buffer (freed at once: building them all
        # first and joining costs twice as much), then one flush for the batch.
        write, size = current.handle.write, 0
        for e, event_id in zip(events, event_ids(len(events)), strict=True):
            size += write(build_record(e, event_id))
        current.handle.flush()  # in the kernel now: a crash of pier loses none of it
        current.size += size
        current.records += len(events)
        if current.spooled is None:
            self.metrics.records.labels(key[2], key[3]).inc(len(events))
        self._failing.pop(key[0], None)

    def _open(self, key: _FileKey, hour: str, first: float, now: float) -> _OpenFile:
        destination, kms, endpoint, variant = key
        target = self._targets.get(destination)
        if target is None:
            target = self._targets[destination] = resolve(destination, self.base)
        name = file_name(first)
        relative = f"{endpoint}/{variant}/{hour}/{name}"
        if isinstance(target, Path):
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            opened = _OpenFile(path, hour, now, path.open("ab", buffering=_BUFFER))
        else:
            self.spool.mkdir(parents=True, exist_ok=True)
            stem = uuid.uuid4().hex
            s3_key = f"{target.prefix}/{relative}" if target.prefix else relative
            spooled = _Spooled(
                self.spool / f"{stem}.jsonl", self.spool / f"{stem}.json",
                target.bucket, s3_key, kms, endpoint, variant, 0,
            )  # fmt: skip
            spooled.save_meta()  # first: a crash leaves data the next start can upload
            handle = spooled.data.open("ab", buffering=_BUFFER)
            opened = _OpenFile(spooled.data, hour, now, handle, spooled)
        self._files[key] = opened
        return opened

    def _close(self, key: _FileKey) -> None:
        current = self._files.pop(key)
        with contextlib.suppress(OSError):
            current.handle.close()
        if current.spooled is not None:
            current.spooled.records = current.records
            with contextlib.suppress(OSError):
                current.spooled.save_meta()
            self._uploads.submit(self._upload, current.spooled)

    def _failed(self, key: _FileKey, count: int, exc: Exception) -> None:
        destination, _, endpoint, variant = key
        self.metrics.dropped.labels(endpoint, variant, "write_error").inc(count)
        stale = self._files.pop(key, None)
        if stale is not None:
            with contextlib.suppress(OSError):
                stale.handle.close()
        now = time.monotonic()
        last = self._failing.get(destination)
        if last is None or now - last >= 60:  # once a minute per destination, not per batch
            self._failing[destination] = now
            log.error(
                "data capture of %s/%s to %s failed, %d record(s) dropped: %s",
                endpoint, variant, destination, count, exc,
            )  # fmt: skip

    def tick(self) -> None:
        """Close files past their age (so S3 objects appear without new traffic); retry due
        uploads."""
        now = self.clock()
        for key, f in list(self._files.items()):
            if now - f.opened >= self.file_max_age_s:
                self._close(key)
        due = [s for s in self._waiting if s.next_try <= time.monotonic()]
        for s in due:
            self._waiting.remove(s)
            self._uploads.submit(self._upload, s)

    def close(self) -> None:
        """Close every file and wait for every upload (failed ones are tried once more and
        then left in the spool for the next start)."""
        for key in list(self._files):
            self._close(key)
        retry, self._waiting = self._waiting, []
        for s in retry:
            self._uploads.submit(self._upload, s)
        self._uploads.shutdown(wait=True)
        if self._waiting:
            log.warning(
                "%d capture file(s) could not be uploaded; they stay in %s and are uploaded "
                "when pier starts again", len(self._waiting), self.spool,
            )  # fmt: skip

    # ---------------------------------------------------------------- S3
    def recover(self) -> int:
        """Upload what a previous run left in the spool (a crash, or S3 unreachable); the
        number of files found."""
        if not self.spool.is_dir():
            return 0
        found = 0
        for meta in sorted(self.spool.glob("*.json")):
            try:
                spooled = _Spooled.load(meta)
                if not spooled.data.exists():
                    meta.unlink()
                    continue
                spooled.records = _complete_lines(spooled.data)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring capture spool entry %s: %s", meta, exc)
                continue
            found += 1
            self._uploads.submit(self._upload, spooled)
        if found:
            log.info("uploading %d capture file(s) left in %s", found, self.spool)
        return found

    def _upload(self, spooled: _Spooled) -> None:
        """In the upload thread: one PutObject, then the spool files go."""
        try:
            if self._client is None:
                self._client = self.s3_client_factory()
            extra: dict[str, str] = {}
            if spooled.kms_key_id:
                extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": spooled.kms_key_id}
            body = spooled.data.read_bytes()
            self._client.put_object(
                Bucket=spooled.bucket, Key=spooled.key, Body=body,
                ContentType="application/jsonl", **extra,
            )  # fmt: skip
        except Exception as exc:
            spooled.attempts += 1
            delay = min(_RETRY_MAX_S, 2.0**spooled.attempts)
            spooled.next_try = time.monotonic() + delay
            self.metrics.upload_errors.labels(spooled.endpoint, spooled.variant).inc()
            log.warning(
                "upload of capture file s3://%s/%s failed (attempt %d, next in %.0f s): %s",
                spooled.bucket, spooled.key, spooled.attempts, delay, exc,
            )  # fmt: skip
            self._waiting.append(spooled)  # list.append is atomic; tick() picks it up
            return
        self.metrics.records.labels(spooled.endpoint, spooled.variant).inc(spooled.records)
        for path in (spooled.data, spooled.meta):
            path.unlink(missing_ok=True)


def _complete_lines(path: Path) -> int:
    """Cut a file left by a crash after its last complete line; the number of lines."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as f:
            f.truncate(end)
    return data.count(b"\n", 0, end)


# ----------------------------------------------------------------------------- capturer
class Capturer:
    """The event loop's side: `offer` on the hot path, a writer task, `aclose` on stop."""

    def __init__(
        self,
        base: Path,
        registry: CollectorRegistry | None = None,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        batch_size: int | None = None,
        file_max_bytes: int = DEFAULT_FILE_MAX_BYTES,
        file_max_age_s: float = DEFAULT_FILE_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        s3_client_factory: S3ClientFactory = s3_client,
    ) -> None:
        if queue_size < 1 or flush_interval_s <= 0:
            raise ValueError("queue_size must be ≥ 1 and flush_interval_s > 0")
        self.metrics = CaptureMetrics(registry)
        self.writer = Writer(
            base, self.metrics, clock, file_max_bytes, file_max_age_s,
            s3_client_factory,
        )  # fmt: skip
        self._queue_size = queue_size
        self._batch_size = batch_size or max(1, queue_size // 4)
        self._interval = flush_interval_s
        self._clock = clock
        self._random = (rng or random.Random()).random
        self._pending: deque[Event] = deque()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="pier-capture")
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stopped = False

    # ------------------------------------------------------------ the hot path
    def offer(
        self,
        settings: CaptureSettings,
        endpoint: str,
        variant: str,
        inference_id: str | None,
        request: bytes,
        request_type: str | None,
        response: bytes,
        response_type: str | None,
    ) -> None:
        """Sample and queue one successful invocation. Never blocks, never raises for I/O."""
        if settings.percentage < 100 and self._random() * 100.0 >= settings.percentage:
            return
        pending = self._pending
        if len(pending) >= self._queue_size or self._stopped:
            reason = "stopped" if self._stopped else "overload"
            self.metrics.dropped.labels(endpoint, variant, reason).inc()
            return
        pending.append(
            Event(settings, endpoint, variant, self._clock(), inference_id,
                  request, request_type, response, response_type)
        )  # fmt: skip
        if len(pending) >= self._batch_size and self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._thread, self._recover)
        self._task = asyncio.create_task(self._run(), name="pier-capture")

    def _recover(self) -> None:
        try:
            self.writer.recover()
        except Exception:
            log.exception("could not recover the capture spool")

    async def flush(self) -> None:
        """Write what is queued now (tests, and the writer task itself)."""
        batch, self._pending = self._pending, deque()
        loop = asyncio.get_running_loop()
        try:
            if batch:
                await loop.run_in_executor(self._thread, self.writer.write, batch)
            else:
                await loop.run_in_executor(self._thread, self.writer.tick)
        except Exception:  # a bug, not I/O (the writer handles that): log, keep capturing
            log.exception("data capture: writing a batch of %d record(s) failed", len(batch))

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while not self._closing:
            timer = loop.call_later(self._interval, self._wake.set)
            await self._wake.wait()
            timer.cancel()
            self._wake.clear()
            await self.flush()

    async def aclose(self) -> None:
        """A clean stop: write everything queued, close every file, finish every upload."""
        if self._stopped:
            return
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            await self._task
        self._stopped = True
        await self.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.writer.close)
        self._thread.shutdown(wait=True)

    def queued(self) -> int:
        return len(self._pending)


def default_base(home: Path) -> Path:
    """The capture directory of a pier home (relative file: destinations, the S3 spool)."""
    return home / "capture"


__all__ = [
    "CaptureMetrics",
    "CaptureSettings",
    "Capturer",
    "Event",
    "Writer",
    "build_record",
    "default_base",
    "event_ids",
    "file_name",
    "hour_path",
]
