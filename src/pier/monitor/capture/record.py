"""SageMaker's data capture records and file names: one JSON line per sampled invocation.

A record is `captureData.endpointInput|endpointOutput` (observedContentType, mode, data,
encoding), `eventMetadata` (eventId, inferenceId when the caller sent one, inferenceTime) and
`eventVersion` "0"; files are `{endpoint}/{variant}/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{uuid}.jsonl`
(pier.monitor.capture.capture's docstring has the whole format and what can be lost).
"""

from __future__ import annotations

import base64
import functools
import os
import time
import uuid
from typing import Any, NamedTuple

import orjson

from pier.contract.capture_config import CaptureSettings, media_type

_OCTET_STREAM = "application/octet-stream"


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
    # A mirrored request's half (pier.router.mirror): the id it shares with its pair, the
    # model's status and latency. None for every other record.
    event_id: str | None = None
    status: int | None = None
    model_latency_us: int | None = None


@functools.lru_cache(maxsize=1024)
def _text_encoding(
    content_type: str | None, csv_types: frozenset[str], json_types: frozenset[str]
) -> str | None:
    """CSV or JSON when the media type is listed (a few distinct headers: cached)."""
    media = media_type(content_type) if content_type else ""
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
    metadata: dict[str, Any] = {"eventId": event.event_id or event_id or event_ids(1)[0]}
    if event.inference_id is not None:
        metadata["inferenceId"] = event.inference_id
    metadata["inferenceTime"] = _second(int(event.time))[0]
    if event.status is not None:
        # pier's own keys, only on the records of mirrored requests (shadow variants): what
        # `pier compare` needs besides the payloads. Readers of SageMaker's format skip them.
        metadata["pierStatus"] = event.status
        metadata["pierModelLatencyMicros"] = event.model_latency_us
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


__all__ = ["Event", "build_record", "event_ids", "file_name", "hour_path"]
