"""AWS Signature Version 4 verification: pure functions, no I/O.

The canonical request is rebuilt the way botocore signs it (``botocore.auth.SigV4Auth``) for
services other than S3, which is what AWS verifies:

- path: the path *as sent* (already percent-encoded once by the client), with dot segments and
  empty segments removed, then percent-encoded again (``quote(path, safe="/~")``);
- query: each pair decoded and re-encoded with RFC 3986 unreserved characters, sorted;
- headers: the names listed in SignedHeaders, values trimmed and inner whitespace collapsed;
- payload: ``x-amz-content-sha256`` when the client sent it, else the SHA-256 of the body.
  ``UNSIGNED-PAYLOAD`` is refused: AWS's services other than S3 sign the payload (botocore
  never sends it for SageMaker or CloudWatch), and an unsigned body could be replaced in
  transit.

Verification comes in two steps so that a server reads no body for a request it will refuse:
`verify_headers` checks everything the headers carry (the format, the scope, the time, that the
key is ours) and, when ``x-amz-content-sha256`` declares the payload's hash, the signature
itself; `Signed.body` then checks the body against the declared hash, or verifies the signature
with the body's hash. `verify` does both at once.

The Authorization header is accepted on every method; presigned-URL query parameters
(``X-Amz-Algorithm`` ...) on GET and HEAD only: botocore's presigner moves a request's body
into the query string (``SigV4QueryAuth``), which no API of pier reads, so a presigned POST
could only ever reach an API without its input. Messages follow AWS's wording and never contain
a secret or the expected signature.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Generic, TypeVar
from urllib.parse import quote, unquote_to_bytes

from pier.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

__all__ = ["Credentials", "Signed", "verify", "verify_headers"]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TERMINATOR = "aws4_request"
MAX_PRESIGN_EXPIRES = 604800  # seven days, as AWS allows
PRESIGNED_METHODS = frozenset({"GET", "HEAD"})

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_UNKNOWN_KEY = "The security token included in the request is invalid."
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_TIMESTAMP_RE = re.compile(r"\d{8}T\d{6}Z")
_SHA256_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_PARAMS = ("Credential", "Signature", "SignedHeaders")
_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)


C = TypeVar("C", bound=Credentials)


@dataclass(frozen=True)
class _Auth:
    """What the client claims: its credential scope, signed headers, signature and time."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: str
    signature: str
    amz_date: str  # the time in ISO 8601 basic format, as it enters the string to sign
    expires: int | None  # presigned URLs only
    canonical_query: str


@dataclass(slots=True)  # one per request: slotted, not frozen, is the cheapest to build
class Signed(Generic[C]):
    """A request whose headers passed `verify_headers`: `body(...)` finishes the check."""

    credentials: C
    declared: str | None  # x-amz-content-sha256, as sent: the signature is checked already
    _canonical_head: str = field(repr=False)  # the canonical request without its payload line
    _auth: _Auth = field(repr=False)

    def body(self, body: bytes) -> C:
        """The caller's credentials once `body` is known to be what was signed; else raise."""
        actual = _sha256_hex(body)
        if self.declared is not None:
            if actual != self.declared.lower():
                raise InvalidSignature(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                )
            return self.credentials
        _check_signature(self._auth, self.credentials, self._canonical_head, actual)
        return self.credentials


def verify(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], C | None],
    now: datetime,
    *,
    max_skew: timedelta = timedelta(minutes=15),
    services: frozenset[str] = frozenset({"sagemaker"}),
) -> C:
    """Check a request's SigV4 signature; return the caller's credentials (what `lookup`
    returned for its key: a Credentials or a subclass) or raise.

    ``raw_path`` and ``query_string`` are as received (percent-encoded, no ``?``); ``headers``
    has lower-cased names, repeated headers joined with ``","``; a naive ``now`` is UTC.
    Raises MissingAuthenticationToken, IncompleteSignature, InvalidSignature or
    UnrecognizedClient.
    """
    signed = verify_headers(
        method, raw_path, query_string, headers, lookup, now,
        max_skew=max_skew, services=services,
    )  # fmt: skip
    return signed.body(body)


def verify_headers(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    lookup: Callable[[str], C | None],
    now: datetime,
    *,
    max_skew: timedelta = timedelta(minutes=15),
    services: frozenset[str] = frozenset({"sagemaker"}),
) -> Signed[C]:
    """Everything `verify` checks that the request line and headers carry, before any body is
    read: raises as `verify` does; the signature too when the headers declare the payload's
    hash (``x-amz-content-sha256``). `Signed.body` checks the rest."""
    pairs = _query_pairs(query_string)
    authorization = headers.get("authorization")
    presigned = any(key == b"X-Amz-Algorithm" for key, _ in pairs)
    if authorization is not None and presigned:
        raise IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
            "Authorization header should be specified."
        )
    if authorization is not None:
        auth = _from_header(authorization, headers, pairs)
    elif presigned:
        if method.upper() not in PRESIGNED_METHODS:
            raise IncompleteSignature(
                f"Presigned (query-string) requests are accepted on GET and HEAD only, not "
                f"{method.upper()[:10]}: a presigner moves the body into the query string, "
                "which this API does not read. Sign the request with the Authorization header "
                "(as boto3's clients do)."
            )
        auth = _from_query(pairs)
    else:
        raise MissingAuthenticationToken("Missing Authentication Token")

    signed = auth.signed_headers.split(";")
    if "" in signed:
        raise IncompleteSignature("SignedHeaders must be a ';'-separated list of header names.")
    if "host" not in signed:
        raise IncompleteSignature("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    _check_scope(auth, services)
    _check_time(auth, now, max_skew)
    declared = _declared_payload_hash(headers)

    credentials = lookup(auth.access_key_id)
    if credentials is None:
        raise UnrecognizedClient(_UNKNOWN_KEY)

    canonical_head = "\n".join(
        (
            method.upper(),
            _canonical_path(raw_path),
            auth.canonical_query,
            _canonical_headers(signed, headers),
            auth.signed_headers,
        )
    )
    if declared is not None:
        _check_signature(auth, credentials, canonical_head, declared)
    return Signed(credentials, declared, canonical_head, auth)


def _check_signature(auth: _Auth, credentials: Credentials, head: str, payload: str) -> None:
    canonical_request = f"{head}\n{payload}"
    scope = f"{auth.scope_date}/{auth.region}/{auth.service}/{TERMINATOR}"
    string_to_sign = "\n".join(
        (ALGORITHM, auth.amz_date, scope, _sha256_hex(canonical_request.encode()))
    )
    key = _signing_key(credentials.secret_access_key, auth.scope_date, auth.region, auth.service)
    expected = hmac.digest(key, string_to_sign.encode(), "sha256").hex()  # one C call
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise InvalidSignature(SIGNATURE_MISMATCH)


# ------------------------------------------------------------------ canonical request


@functools.lru_cache(maxsize=1024)  # a client calls the same few paths over and over
def _canonical_path(raw_path: str) -> str:
    """botocore's ``SigV4Auth._normalize_url_path``: remove dot segments, encode again."""
    return quote(_remove_dot_segments(raw_path) or "/", safe="/~")


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 5.2.4, plus AWS's removal of empty segments (botocore.utils.remove_dot_segments)
    if not path:
        return ""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def _query_pairs(query_string: str) -> list[tuple[bytes, bytes]]:
    """Decoded (key, value) pairs; bytes so that any percent-encoding survives a round trip.

    "+" is a space, as in form encoding: botocore's ``AWSRequest(params=...)`` sends spaces as
    "+" but signs them as "%20"; a literal "+" arrives as "%2B".
    """
    pairs: list[tuple[bytes, bytes]] = []
    for part in query_string.replace("+", "%20").split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote_to_bytes(key), unquote_to_bytes(value)))
    return pairs


def _canonical_query(pairs: Sequence[tuple[bytes, bytes]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_headers(names: Sequence[str], headers: Mapping[str, str]) -> str:
    lines = []
    for name in names:
        value = headers.get(name)
        if value is None:
            raise InvalidSignature(f"Signed header '{name}' is missing from the request.")
        lines.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(lines)


def _declared_payload_hash(headers: Mapping[str, str]) -> str | None:
    """x-amz-content-sha256 (64 hex digits, as sent), None when absent; raises for others."""
    declared = headers.get("x-amz-content-sha256")
    if declared is None:
        return None
    if declared == UNSIGNED_PAYLOAD:
        raise InvalidSignature(
            f"x-amz-content-sha256: {UNSIGNED_PAYLOAD} is not accepted: this API signs the "
            "payload (as AWS's services other than S3 do). Send the body's SHA-256, or leave "
            "the header out."
        )
    if not _SHA256_HEX_RE.fullmatch(declared):
        raise InvalidSignature(
            f"Unsupported x-amz-content-sha256 value {declared[:40]!r}: expected the SHA-256 of "
            f"the body (chunked signing is not supported)."
        )
    return declared


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=64)  # one derivation per key and day, not four HMACs per request
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# ------------------------------------------------------------------ what the client claims


def _from_header(
    authorization: str, headers: Mapping[str, str], pairs: Sequence[tuple[bytes, bytes]]
) -> _Auth:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        raise IncompleteSignature(
            f"Unsupported Authorization type; only AWS Signature Version 4 ({ALGORITHM}) is "
            "accepted."
        )
    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        if not eq:
            raise IncompleteSignature(
                "Invalid key=value pair (missing equal-sign) in Authorization header."
            )
        name = name.strip()
        if name in params:
            raise IncompleteSignature(f"Authorization header has more than one {name!r}.")
        params[name] = value.strip()
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in _HEADER_PARAMS
        if not params.get(name)
    ]
    if "x-amz-date" in headers:
        amz_date = _parse_amz_date(headers["x-amz-date"], "X-Amz-Date")
    elif "date" in headers:
        amz_date = _parse_http_date(headers["date"])
    else:
        amz_date = ""
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise IncompleteSignature(" ".join(problems))
    return _auth(
        params["Credential"],
        params["SignedHeaders"],
        params["Signature"],
        amz_date,
        None,
        _canonical_query(pairs),
    )


def _from_query(pairs: Sequence[tuple[bytes, bytes]]) -> _Auth:
    params: dict[str, str] = {}
    for key, value in pairs:
        name = key.decode("utf-8", "replace")
        if name in _QUERY_PARAMS:
            if name in params:
                raise IncompleteSignature(
                    f"Query-string parameter {name!r} appears more than once."
                )
            params[name] = value.decode("utf-8", "replace")
    if any(not params.get(name) for name in _QUERY_PARAMS):
        raise IncompleteSignature(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', "
            "'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', and 'X-Amz-Expires'. "
            "Re-examine the query-string parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(
            f"X-Amz-Algorithm only supports {ALGORITHM} (AWS Signature Version 4)."
        )
    raw_expires = params["X-Amz-Expires"]
    if not raw_expires.isascii() or not raw_expires.isdigit():
        raise IncompleteSignature("X-Amz-Expires should be a number of seconds.")
    expires = int(raw_expires)
    if expires > MAX_PRESIGN_EXPIRES:
        raise IncompleteSignature(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}."
        )
    unsigned = [(k, v) for k, v in pairs if k != b"X-Amz-Signature"]
    return _auth(
        params["X-Amz-Credential"],
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        _parse_amz_date(params["X-Amz-Date"], "X-Amz-Date"),
        expires,
        _canonical_query(unsigned),
    )


def _auth(
    credential: str,
    signed_headers: str,
    signature: str,
    amz_date: str,
    expires: int | None,
    canonical_query: str,
) -> _Auth:
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise IncompleteSignature(
            "Credential must have the form "
            "'<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'."
        )
    access_key_id, scope_date, region, service, terminator = parts
    if terminator != TERMINATOR:
        raise InvalidSignature(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not {terminator[:40]!r}."
        )
    return _Auth(
        access_key_id=access_key_id,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
        expires=expires,
        canonical_query=canonical_query,
    )


def _parse_amz_date(value: str, name: str) -> str:
    value = value.strip()
    if _TIMESTAMP_RE.fullmatch(value):
        try:
            _timestamp(value)
        except ValueError:
            pass
        else:
            return value
    raise IncompleteSignature(
        f"{name} must be in ISO-8601 'basic format' (YYYYMMDD'T'HHMMSS'Z'). Got {value[:40]!r}."
    )


@functools.lru_cache(maxsize=64)  # parsed twice per request (format check, then time check)
def _timestamp(value: str) -> datetime:
    """YYYYMMDD'T'HHMMSS'Z' (already matched by _TIMESTAMP_RE) as an aware datetime.

    By hand rather than strptime, which costs ~15 µs on every request; invalid dates (month
    13...) still raise ValueError from datetime itself.
    """
    return datetime(
        int(value[0:4]), int(value[4:6]), int(value[6:8]),
        int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=UTC,
    )  # fmt: skip


def _parse_http_date(value: str) -> str:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise IncompleteSignature(
            f"Date must be an HTTP date (RFC 7231). Got {value[:40]!r}."
        ) from None
    return _utc(parsed).strftime(_TIMESTAMP)


# ------------------------------------------------------------------ scope and time


def _check_scope(auth: _Auth, services: frozenset[str]) -> None:
    if auth.service not in services:
        wanted = " or ".join(f"'{s}'" for s in sorted(services))
        raise InvalidSignature(f"Credential should be scoped to correct service: {wanted}.")
    if auth.scope_date != auth.amz_date[:8]:
        raise InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: {auth.scope_date[:40]!r} != '{auth.amz_date[:8]}', "
            f"from '{auth.amz_date}'."
        )


def _check_time(auth: _Auth, now: datetime, max_skew: timedelta) -> None:
    now = _utc(now).replace(microsecond=0)
    signed_at = _timestamp(auth.amz_date)
    if signed_at > now + max_skew:
        raise InvalidSignature(
            f"Signature not yet current: {auth.amz_date} is still later than "
            f"{_fmt(now + max_skew)} ({_fmt(now)} + {_describe(max_skew)})"
        )
    if auth.expires is not None:
        if now > signed_at + timedelta(seconds=auth.expires):
            raise InvalidSignature(
                f"Signature expired: {auth.amz_date} is now earlier than "
                f"{_fmt(now - timedelta(seconds=auth.expires))} "
                f"({_fmt(now)} - X-Amz-Expires {auth.expires} sec.)"
            )
    elif signed_at < now - max_skew:
        raise InvalidSignature(
            f"Signature expired: {auth.amz_date} is now earlier than "
            f"{_fmt(now - max_skew)} ({_fmt(now)} - {_describe(max_skew)})"
        )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _fmt(moment: datetime) -> str:
    return moment.strftime(_TIMESTAMP)


def _describe(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."
