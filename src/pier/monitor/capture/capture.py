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
- With `durable=True` (PIER_CAPTURE_DURABLE), a crash loses no acknowledged record: the
  runtime awaits `capture` (not `offer`) before it answers, which queues the record, wakes the
  writer at once and returns when the batch holding it is in the kernel (a group commit: the
  records that arrive while a batch is written form the next one). A record that cannot be
  written is still counted and logged, and the invocation still answered.
- A clean stop (SIGTERM, `pier down`): nothing. The platform awaits `aclose()`, which writes
  the queue, closes every file and uploads every S3 file.

Only successful invocations are captured: SageMaker's records always carry the model's output
(endpointOutput), and a request the platform or the model refused (ValidationError, ModelError)
is not captured — AWS documents nothing else, and Model Monitor's analyses expect both halves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry

from pier.contract.capture_config import CaptureSettings
from pier.monitor.capture.record import Event
from pier.monitor.capture.writer import (
    DEFAULT_FILE_MAX_AGE_S,
    DEFAULT_FILE_MAX_BYTES,
    CaptureMetrics,
    Writer,
)
from pier.storage import S3ClientFactory, s3_client

log = logging.getLogger("pier.capture")

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_FLUSH_INTERVAL_S = 1.0


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
        durable: bool = False,
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
        self.durable = durable
        # Durable mode: resolved once the records now in _pending are written (group commit).
        self._written: asyncio.Future[None] | None = None

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

    async def capture(
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
        """Durable mode's `offer`: sample and queue, then return once the record is written
        (in the kernel: a SIGKILL of the platform loses none of it). Never raises for I/O."""
        queued = len(self._pending)
        self.offer(settings, endpoint, variant, inference_id, request, request_type,
                   response, response_type)  # fmt: skip
        if len(self._pending) == queued or self._wake is None:  # not sampled, dropped
            return  # (counted), or no writer task yet (not started: nothing to wait for)
        written = self._written
        if written is None:
            written = self._written = asyncio.get_running_loop().create_future()
        self._wake.set()  # no interval to wait for: write now, with whatever else came
        await asyncio.shield(written)

    def offer_paired(
        self,
        settings: CaptureSettings,
        endpoint: str,
        variant: str,
        event_id: str,
        inference_id: str | None,
        request: bytes,
        request_type: str | None,
        response: bytes,
        response_type: str | None,
        status: int,
        model_latency_us: int,
    ) -> None:
        """Queue one half of a mirrored request (production or shadow variant), sampled by the
        router already (both halves or neither), errors included. Never blocks."""
        pending = self._pending
        if len(pending) >= self._queue_size or self._stopped:
            reason = "stopped" if self._stopped else "overload"
            self.metrics.dropped.labels(endpoint, variant, reason).inc()
            return
        pending.append(
            Event(settings, endpoint, variant, self._clock(), inference_id, request,
                  request_type, response, response_type, event_id, status, model_latency_us)
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
        written, self._written = self._written, None
        loop = asyncio.get_running_loop()
        try:
            if batch:
                await loop.run_in_executor(self._thread, self.writer.write, batch)
            else:
                await loop.run_in_executor(self._thread, self.writer.tick)
        except Exception:  # a bug, not I/O (the writer handles that): log, keep capturing
            log.exception("data capture: writing a batch of %d record(s) failed", len(batch))
        finally:
            if written is not None and not written.done():
                written.set_result(None)  # durable mode: its invocations may answer now

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


__all__ = ["Capturer", "default_base"]
