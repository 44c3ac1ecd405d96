"""Invocation bundles: several /invocations requests in one HTTP exchange, router -> instance.

Why: behind `pier up`, every request reached the instance on its own, one by one as the router
forwarded them, so the instance woke for each, read and parsed each, and started a predict call
for the first one to arrive while the rest of the burst was still on its way: it batched 23
requests per predict behind the router against 33 direct at c64, and spent 1.3-1.5 times the
CPU per request (docs/benchmarks.md, "Issue 13: bundles and gather"). A bundle hands the
instance every request the router holds for it at once: one read, one parse, every request
queued for the same predict call, one write back. This is a private hop between pier's
router and pier's own model server (`pier serve` answers POST BUNDLE_PATH); containers of
other images get plain /invocations requests, as SageMaker sends them.

Wire format (all integers little-endian), requests and answers in the same order:

    request item:  u16 len(content-type) | u16 len(accept) | u32 len(body) | the three
    answer item:   u16 status | u16 len(content-type) | u32 len(body) | the two

A header length of ABSENT (0xFFFF) means the header was not sent (it differs from empty).
struct and memoryview rather than a serialisation library: the format is three fields, and
this codec is on the path of every routed request (a JSON envelope would copy every body into
a string and back).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

BUNDLE_PATH = "/pier/invocations-bundle"
CONTENT_TYPE = "application/x-pier-bundle"
ABSENT = 0xFFFF
_REQUEST = struct.Struct("<HHI")
_ANSWER = struct.Struct("<HHI")


class BundleError(ValueError):
    """The bytes are not a well-formed bundle (cut short, or a field out of range)."""


@dataclass(slots=True)
class BundledRequest:
    content_type: bytes | None
    accept: bytes | None
    body: bytes


@dataclass(slots=True)
class BundledAnswer:
    status: int
    content_type: bytes
    body: bytes


def _header(value: bytes | None) -> tuple[int, bytes]:
    if value is None:
        return ABSENT, b""
    if len(value) >= ABSENT:
        raise BundleError(f"a header of {len(value)} bytes does not fit a bundle")
    return len(value), value


def encode_requests(requests: list[BundledRequest]) -> bytes:
    parts: list[bytes] = []
    for r in requests:
        ct_len, ct = _header(r.content_type)
        accept_len, accept = _header(r.accept)
        parts += (_REQUEST.pack(ct_len, accept_len, len(r.body)), ct, accept, r.body)
    return b"".join(parts)


def _take(view: memoryview, at: int, size: int) -> bytes:
    end = at + size
    if end > len(view):
        left = len(view) - at
        raise BundleError(f"cut short: {size} bytes announced at offset {at}, {left} left")
    return bytes(view[at:end])


def decode_requests(data: bytes) -> list[BundledRequest]:
    view, at, out = memoryview(data), 0, []
    while at < len(view):
        if at + _REQUEST.size > len(view):
            raise BundleError(f"cut short: an item header at offset {at}")
        ct_len, accept_len, body_len = _REQUEST.unpack_from(view, at)
        at += _REQUEST.size
        ct = None if ct_len == ABSENT else _take(view, at, ct_len)
        at += 0 if ct is None else ct_len
        accept = None if accept_len == ABSENT else _take(view, at, accept_len)
        at += 0 if accept is None else accept_len
        body = _take(view, at, body_len)
        at += body_len
        out.append(BundledRequest(ct, accept, body))
    return out


def encode_answers(answers: list[BundledAnswer]) -> bytes:
    parts: list[bytes] = []
    for a in answers:
        ct_len, ct = _header(a.content_type)
        parts += (_ANSWER.pack(a.status, ct_len, len(a.body)), ct, a.body)
    return b"".join(parts)


def decode_answers(data: bytes) -> list[BundledAnswer]:
    view, at, out = memoryview(data), 0, []
    while at < len(view):
        if at + _ANSWER.size > len(view):
            raise BundleError(f"cut short: an answer header at offset {at}")
        status, ct_len, body_len = _ANSWER.unpack_from(view, at)
        at += _ANSWER.size
        if ct_len == ABSENT:
            raise BundleError(f"an answer without a content type at offset {at}")
        ct = _take(view, at, ct_len)
        at += ct_len
        body = _take(view, at, body_len)
        at += body_len
        out.append(BundledAnswer(status, ct, body))
    return out
