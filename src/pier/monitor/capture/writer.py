"""The capture writer: appends records to files, rolls them, and spools and uploads S3 files.

It runs in the capturer's writer thread (pier.monitor.capture.capture, whose docstring says
what can be lost and how it shows). A local destination gets its files directly; an S3 file is
written to the spool first and uploaded with one PutObject when it rolls, retried with back-off,
and a spool left by a crash is uploaded at the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson
from prometheus_client import CollectorRegistry, Counter

from pier.monitor.capture.record import Event, build_record, event_ids, file_name, hour_path
from pier.storage import Location, S3Client, S3ClientFactory, resolve, s3_client

log = logging.getLogger("pier.capture.writer")

SPOOL_DIR = "spool"  # under the capture directory: S3 files before their upload
DEFAULT_FILE_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_FILE_MAX_AGE_S = 60.0
_RETRY_MAX_S = 300.0
_BUFFER = 256 * 1024  # per open file: a batch reaches the kernel in a few writes


_DROP_REASONS = ("overload", "write_error", "stopped")  # pier_capture_dropped_records' reasons


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

    def forget(self, endpoint: str, variants: frozenset[str]) -> None:
        """Remove the series of variants that are no longer routed (the routing table tells).
        A batch of theirs still being written counts again afterwards, once."""
        for variant in variants:
            keys: list[tuple[Counter, tuple[str, ...]]] = [
                (self.records, (endpoint, variant)),
                (self.upload_errors, (endpoint, variant)),
            ]
            keys += [(self.dropped, (endpoint, variant, r)) for r in _DROP_REASONS]
            for metric, labels in keys:
                with contextlib.suppress(KeyError):  # never counted
                    metric.remove(*labels)


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
        start = current.handle.tell()  # the buffer is empty between batches: the file's size
        write, size = current.handle.write, 0
        try:
            for e, event_id in zip(events, event_ids(len(events)), strict=True):
                size += write(build_record(e, event_id))
            current.handle.flush()  # in the kernel now: a crash of pier loses none of it
        except OSError as exc:  # a full disk, a quota: keep the whole lines, count the rest
            kept = self._keep_whole_lines(key, current, start)
            self._failed(key, len(events) - kept, exc)
            return
        current.size += size
        current.records += len(events)
        if current.spooled is None:
            self.metrics.records.labels(key[2], key[3]).inc(len(events))
        self._failing.pop(key[0], None)

    def _keep_whole_lines(self, key: _FileKey, current: _OpenFile, start: int) -> int:
        """After a failed write of a batch that began at offset `start`: close the file, cut
        it after its last complete record (a disk that filled mid-batch leaves part of a
        line, which no reader could parse), and count the batch's records that are whole on
        disk as delivered. Returns that count; the file is closed (an S3 file goes to upload
        with what it holds)."""
        with contextlib.suppress(OSError):
            current.handle.close()  # first: nothing of the buffer may land after the cut
        kept = 0
        try:
            with current.path.open("r+b") as f:
                f.seek(start)
                tail = f.read()
                end = tail.rfind(b"\n") + 1
                f.truncate(start + end)
            kept = tail.count(b"\n", 0, end)
        except OSError as exc:
            log.error("data capture: cannot cut %s after its last record: %s", current.path, exc)
        current.records += kept
        if current.spooled is None:
            self.metrics.records.labels(key[2], key[3]).inc(kept)
        self._close(key)
        return kept

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


__all__ = [
    "DEFAULT_FILE_MAX_AGE_S",
    "DEFAULT_FILE_MAX_BYTES",
    "SPOOL_DIR",
    "CaptureMetrics",
    "Writer",
]
