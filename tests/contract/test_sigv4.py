"""SigV4 verification against real clients: botocore's own signer, boto3 clients, curl.

Requests are signed by botocore (``SigV4Auth`` / ``SigV4QueryAuth`` on an ``AWSRequest``) and
turned into what a server receives; the boto3 and curl tests go through a real local HTTP
server that captures the request. Nothing of pier is mocked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.credentials
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from pier.contract import sigv4
from pier.contract.sigv4 import Credentials, verify, verify_headers
from pier.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

KEY = "AKIAPIERTEST00000001"
SECRET = "pier/Test+Secret0123456789abcdefghijklmn"  # no ":" so that curl --user can carry it
REGION = "us-east-1"
BASE = "http://127.0.0.1:8080"
INVOKE_PATH = "/endpoints/my-endpoint/invocations"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
OURS = Credentials(KEY, SECRET)


def lookup(access_key_id: str) -> Credentials | None:
    return OURS if access_key_id == KEY else None


@dataclasses.dataclass(frozen=True)
class Wire:
    """A request as the server sees it."""

    method: str
    raw_path: str
    query_string: str
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_url(cls, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Wire:
        parts = urlsplit(url)
        lowered = {name.lower(): value for name, value in headers.items()}
        lowered.setdefault("host", parts.netloc)  # urllib3 adds it, as any HTTP client does
        return cls(method, parts.path, parts.query, lowered, body)

    def verify(self, now: datetime | None = None, **kwargs: Any) -> Credentials:
        return verify(
            self.method,
            self.raw_path,
            self.query_string,
            self.headers,
            self.body,
            kwargs.pop("lookup", lookup),
            signed_at(self) if now is None else now,
            **kwargs,
        )

    def verify_headers(self, now: datetime | None = None, **kwargs: Any) -> sigv4.Signed[Any]:
        return verify_headers(
            self.method,
            self.raw_path,
            self.query_string,
            self.headers,
            kwargs.pop("lookup", lookup),
            signed_at(self) if now is None else now,
            **kwargs,
        )

    def with_header(self, name: str, value: str | None) -> Wire:
        headers = dict(self.headers)
        if value is None:
            del headers[name]
        else:
            headers[name] = value
        return dataclasses.replace(self, headers=headers)

    def with_authorization(self, pattern: str, replacement: str) -> Wire:
        return self.with_header(
            "authorization", re.sub(pattern, replacement, self.headers["authorization"])
        )


def signed_at(wire: Wire) -> datetime:
    match = re.search(r"X-Amz-Date=(\d{8}T\d{6}Z)", wire.query_string)
    if "x-amz-date" in wire.headers or match:
        stamp = wire.headers["x-amz-date"] if match is None else match.group(1)
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return parsedate_to_datetime(wire.headers["date"])


def sign(
    method: str = "POST",
    path: str = INVOKE_PATH,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    params: Any = None,
    key: str = KEY,
    secret: str = SECRET,
    service: str = "sagemaker",
    region: str = REGION,
    base: str = BASE,
    context: Mapping[str, Any] | None = None,
    presign_expires: int | None = None,
) -> Wire:
    """Sign with botocore's own signer and return what goes on the wire."""
    request = AWSRequest(
        method=method, url=base + path, headers=dict(headers or {}), data=body, params=params
    )
    request.context.update(context or {})
    creds = botocore.credentials.Credentials(key, secret)
    if presign_expires is None:
        SigV4Auth(creds, service, region).add_auth(request)
    else:
        SigV4QueryAuth(creds, service, region, expires=presign_expires).add_auth(request)
    prepared = request.prepare()
    return Wire.from_url(prepared.method, prepared.url, prepared.headers, prepared.body or b"")


def control_request(**kwargs: Any) -> Wire:
    """A JSON 1.1 control-API call, as boto3's sagemaker client makes it."""
    headers = {
        "X-Amz-Target": "SageMaker.DescribeEndpoint",
        "Content-Type": "application/x-amz-json-1.1",
        **kwargs.pop("headers", {}),
    }
    kwargs.setdefault("body", b'{"EndpointName": "my-endpoint"}')
    return sign("POST", "/", headers=headers, **kwargs)


RUNTIME_HEADERS = {
    "Content-Type": "application/octet-stream",
    "Accept": "application/json",
    "X-Amzn-SageMaker-Custom-Attributes": '  trace=1,   c1="a  b"  ',
    "X-Amzn-SageMaker-Target-Variant": "blue",
}
BINARY_BODY = bytes(range(256)) * 3


def runtime_request(**kwargs: Any) -> Wire:
    """An InvokeEndpoint call with a binary body and custom headers."""
    kwargs.setdefault("headers", RUNTIME_HEADERS)
    kwargs.setdefault("body", BINARY_BODY)
    kwargs.setdefault("path", INVOKE_PATH)
    return sign("POST", **kwargs)


# ------------------------------------------------------------------ valid requests


def test_public_surface() -> None:
    assert sigv4.__all__ == ["Credentials", "Signed", "verify", "verify_headers"]


def test_control_api_request_verifies() -> None:
    wire = control_request()
    assert wire.raw_path == "/"
    assert "x-amz-target" in wire.headers["authorization"]
    assert wire.verify() is OURS


def test_runtime_invocation_with_binary_body_and_custom_headers_verifies() -> None:
    wire = runtime_request()
    assert "x-amzn-sagemaker-custom-attributes" in wire.headers["authorization"]
    assert wire.verify() is OURS


@pytest.mark.parametrize(
    "path",
    [
        "/endpoints/my%20endpoint%2Fx~%25%C3%BC/invocations",  # botocore's label encoding
        "/endpoints/./my-endpoint//invocations",
        "/a/../endpoints/my-endpoint/invocations/",
        "/endpoints/my%2Dendpoint/invocations",
        "",
    ],
)
def test_paths_are_canonicalised_as_botocore_signs_them(path: str) -> None:
    assert runtime_request(path=path).verify() is OURS


def test_query_parameters_are_sorted_and_encoded() -> None:
    params = [("b", "2"), ("a", "x y+z/ü"), ("a", "1"), ("empty", "")]
    assert control_request(params=params).verify() is OURS


def test_any_region_is_accepted() -> None:
    assert control_request(region="eu-west-1").verify() is OURS


def test_date_header_instead_of_x_amz_date() -> None:
    wire = control_request(headers={"Date": "placeholder; botocore sets the time"})
    assert "x-amz-date" not in wire.headers
    assert wire.verify() is OURS


def test_other_services_when_allowed() -> None:
    wire = control_request(service="execute-api")
    assert wire.verify(services=frozenset({"sagemaker", "execute-api"})) is OURS
    with pytest.raises(InvalidSignature, match="scoped to correct service: 'sagemaker'"):
        wire.verify()


def test_credentials_repr_hides_the_secret() -> None:
    assert SECRET not in repr(OURS)


# ------------------------------------------------------------------ wrong or missing credentials


def test_wrong_secret() -> None:
    wire = control_request(secret="not-the-secret")
    with pytest.raises(InvalidSignature) as raised:
        wire.verify()
    assert raised.value.message == MISMATCH
    assert raised.value.status == 403
    assert raised.value.code == "InvalidSignatureException"


def test_unknown_access_key() -> None:
    with pytest.raises(UnrecognizedClient) as raised:
        control_request(key="AKIAUNKNOWN000000000").verify()
    assert raised.value.message == "The security token included in the request is invalid."
    assert raised.value.code == "UnrecognizedClientException"


def test_unsigned_request() -> None:
    wire = runtime_request().with_header("authorization", None)
    with pytest.raises(MissingAuthenticationToken) as raised:
        wire.verify()
    assert raised.value.message == "Missing Authentication Token"
    assert raised.value.code == "MissingAuthenticationTokenException"


# ------------------------------------------------------------------ tampering


def _set(**changes: Any) -> Any:
    return lambda wire: dataclasses.replace(wire, **changes)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda w: dataclasses.replace(w, body=w.body + b"\0"), id="body-appended"),
        pytest.param(lambda w: dataclasses.replace(w, body=w.body[1:]), id="body-truncated"),
        pytest.param(_set(body=b""), id="body-removed"),
        pytest.param(
            lambda w: w.with_header("x-amzn-sagemaker-custom-attributes", "trace=2"),
            id="custom-attributes",
        ),
        pytest.param(
            lambda w: w.with_header("x-amzn-sagemaker-target-variant", "green"), id="variant"
        ),
        pytest.param(lambda w: w.with_header("content-type", "text/csv"), id="content-type"),
        pytest.param(lambda w: w.with_header("host", "127.0.0.1:8081"), id="host"),
        pytest.param(
            lambda w: w.with_header("x-amz-date", _shift(w.headers["x-amz-date"], 1)),
            id="date-one-second",
        ),
        pytest.param(_set(raw_path="/endpoints/other-endpoint/invocations"), id="path"),
        pytest.param(_set(raw_path="/endpoints/my-endpoint/invocations2"), id="path-suffix"),
        pytest.param(_set(query_string="extra=1"), id="query-added"),
        pytest.param(_set(method="PUT"), id="method"),
        pytest.param(
            lambda w: w.with_authorization(
                r"Signature=(\w)", lambda m: "Signature=" + ("0" if m[1] != "0" else "1")
            ),
            id="signature",
        ),
        pytest.param(
            lambda w: w.with_authorization(r"SignedHeaders=", "SignedHeaders=accept;"),
            id="signed-headers",
        ),
    ],
)
def test_tampered_requests_fail(tamper: Any) -> None:
    with pytest.raises(InvalidSignature) as raised:
        tamper(runtime_request()).verify()
    assert raised.value.message == MISMATCH


def test_tampered_query_fails() -> None:
    wire = control_request(params={"a": "1"})
    with pytest.raises(InvalidSignature, match="does not match"):
        dataclasses.replace(wire, query_string="a=2").verify()


def test_signed_header_removed_in_transit() -> None:
    wire = runtime_request().with_header("x-amzn-sagemaker-target-variant", None)
    with pytest.raises(InvalidSignature, match="'x-amzn-sagemaker-target-variant' is missing"):
        wire.verify()


def _shift(stamp: str, seconds: int) -> str:
    moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") + timedelta(seconds=seconds)
    return moment.strftime("%Y%m%dT%H%M%SZ")


# ------------------------------------------------------------------ malformed Authorization


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (r"^.*$", "Basic dXNlcjpwYXNz", "Unsupported Authorization type"),
        (r"Credential=[^,]*, ", "", "requires 'Credential' parameter"),
        (r", Signature=\w+", "", "requires 'Signature' parameter"),
        (r"SignedHeaders=[^,]*, ", "", "requires 'SignedHeaders' parameter"),
        (r" .*$", " ", "requires 'Credential' parameter. Authorization header requires 'Sig"),
        (r"Signature=", "Signature ", "missing equal-sign"),
        (r"Credential=[^,]*", "Credential=" + KEY, "Credential must have the form"),
        (r"/aws4_request", "", "Credential must have the form"),
        (r"SignedHeaders=[^,]*", "SignedHeaders=content-type;x-amz-date", "'Host' must be a"),
        (r"SignedHeaders=[^,]*", "SignedHeaders=host;;x-amz-date", "';'-separated"),
        (r", Signature", ", Credential=x, Signature", "more than one 'Credential'"),
    ],
)
def test_malformed_authorization(pattern: str, replacement: str, message: str) -> None:
    wire = control_request().with_authorization(pattern, replacement)
    with pytest.raises(IncompleteSignature, match=re.escape(message)) as raised:
        wire.verify()
    assert raised.value.code == "IncompleteSignatureException"
    assert SECRET not in raised.value.message


def test_missing_date_header() -> None:
    wire = control_request()
    now = signed_at(wire)
    with pytest.raises(IncompleteSignature, match="either a 'X-Amz-Date' or a 'Date' header"):
        wire.with_header("x-amz-date", None).verify(now)


@pytest.mark.parametrize("value", ["2026-11-23T12:00:00Z", "20261323T120000Z", "yesterday"])
def test_malformed_x_amz_date(value: str) -> None:
    wire = control_request()
    now = signed_at(wire)
    with pytest.raises(IncompleteSignature, match="ISO-8601 'basic format'"):
        wire.with_header("x-amz-date", value).verify(now)


def test_malformed_date_header() -> None:
    wire = control_request(headers={"Date": "x"})
    now = signed_at(wire)
    with pytest.raises(IncompleteSignature, match="HTTP date"):
        wire.with_header("date", "not a date").verify(now)


def test_scope_terminator_and_date() -> None:
    wire = control_request()
    with pytest.raises(InvalidSignature, match="valid terminator: 'aws4_request', not 'aws5'"):
        wire.with_authorization("aws4_request", "aws5").verify()
    with pytest.raises(InvalidSignature, match="Date in Credential scope does not match"):
        wire.with_authorization(r"/\d{8}/", "/19991231/").verify()


# ------------------------------------------------------------------ clock skew


def test_skew_messages_as_aws_words_them() -> None:
    # The time is checked before the signature, so a fixed request shows the exact wording.
    wire = Wire(
        "POST",
        "/",
        "",
        {
            "host": "h",
            "x-amz-date": "20261123T120000Z",
            "authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/20261123/{REGION}/sagemaker/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        },
        b"",
    )
    with pytest.raises(InvalidSignature) as raised:
        wire.verify(datetime(2026, 11, 23, 12, 30, tzinfo=UTC))
    assert raised.value.message == (
        "Signature expired: 20261123T120000Z is now earlier than 20261123T121500Z "
        "(20261123T123000Z - 15 min.)"
    )
    with pytest.raises(InvalidSignature) as raised:
        wire.verify(datetime(2026, 11, 23, 11, 30))  # naive: UTC
    assert raised.value.message == (
        "Signature not yet current: 20261123T120000Z is still later than 20261123T114500Z "
        "(20261123T113000Z + 15 min.)"
    )


@pytest.mark.parametrize("make", [control_request, runtime_request])
def test_skew(make: Any) -> None:
    wire = make()
    at = signed_at(wire)
    assert wire.verify(at + timedelta(minutes=14)) is OURS
    assert wire.verify(at - timedelta(minutes=14)) is OURS
    assert wire.verify(at + timedelta(minutes=15)) is OURS
    with pytest.raises(InvalidSignature, match=r"^Signature expired: .* - 15 min\.\)$"):
        wire.verify(at + timedelta(minutes=16))
    with pytest.raises(InvalidSignature, match=r"^Signature not yet current: .* \+ 15 min\.\)$"):
        wire.verify(at - timedelta(minutes=16))
    with pytest.raises(InvalidSignature, match="- 30 sec"):
        wire.verify(at + timedelta(minutes=1), max_skew=timedelta(seconds=30))
    # an aware now in another zone is the same instant
    assert wire.verify((at + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=5)))) is OURS


# ------------------------------------------------------------------ payload hash


def test_unsigned_payload_is_refused() -> None:
    # botocore sends UNSIGNED-PAYLOAD over https when payload signing is off for an operation
    # (no SageMaker or CloudWatch operation is): the body would be unprotected, so it is refused.
    wire = runtime_request(
        base="https://pier.example.com", context={"payload_signing_enabled": False}
    )
    assert wire.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    with pytest.raises(InvalidSignature, match="UNSIGNED-PAYLOAD is not accepted: this API signs"):
        wire.verify()
    with pytest.raises(InvalidSignature, match="UNSIGNED-PAYLOAD is not accepted"):
        wire.verify_headers()


def test_declared_content_sha256_must_match_the_body() -> None:
    headers = {**RUNTIME_HEADERS, "X-Amz-Content-SHA256": hashlib.sha256(BINARY_BODY).hexdigest()}
    wire = runtime_request(headers=headers)
    assert wire.verify() is OURS
    with pytest.raises(InvalidSignature, match="'x-amz-content-sha256' header does not match"):
        dataclasses.replace(wire, body=BINARY_BODY + b"!").verify()


def test_declared_hash_is_verified_from_the_headers_alone() -> None:
    # with x-amz-content-sha256 the whole signature is checked before the body is read
    digest = hashlib.sha256(BINARY_BODY).hexdigest()
    wire = runtime_request(headers={**RUNTIME_HEADERS, "X-Amz-Content-SHA256": digest})
    signed = wire.verify_headers()
    assert signed.credentials is OURS
    assert signed.body(BINARY_BODY) is OURS
    with pytest.raises(InvalidSignature, match="'x-amz-content-sha256' header does not match"):
        signed.body(b"other")
    forged = wire.with_authorization(r"Signature=\w+", "Signature=" + "0" * 64)
    with pytest.raises(InvalidSignature) as raised:
        forged.verify_headers()
    assert raised.value.message == MISMATCH
    # an upper-case digest is what the client signed: verified as sent, compared as a hash
    upper = runtime_request(headers={**RUNTIME_HEADERS, "X-Amz-Content-SHA256": digest.upper()})
    assert upper.verify_headers().body(BINARY_BODY) is OURS


def test_without_a_declared_hash_the_signature_waits_for_the_body() -> None:
    # boto3's SageMaker clients send no x-amz-content-sha256: the headers are checked first
    # (format, scope, time, known key), the signature once the body is there.
    wire = runtime_request()
    assert "x-amz-content-sha256" not in wire.headers
    signed = wire.verify_headers()
    assert signed.body(BINARY_BODY) is OURS
    with pytest.raises(InvalidSignature) as raised:
        wire.verify_headers().body(BINARY_BODY + b"!")
    assert raised.value.message == MISMATCH
    with pytest.raises(MissingAuthenticationToken):
        wire.with_header("authorization", None).verify_headers()
    with pytest.raises(UnrecognizedClient):
        runtime_request(key="AKIAUNKNOWN000000000").verify_headers()
    with pytest.raises(InvalidSignature, match="Signature expired"):
        wire.verify_headers(signed_at(wire) + timedelta(minutes=16))


def test_chunked_payload_signing_is_rejected_clearly() -> None:
    headers = {**RUNTIME_HEADERS, "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    with pytest.raises(InvalidSignature, match="chunked signing is not supported"):
        runtime_request(headers=headers).verify()


# ------------------------------------------------------------------ presigned URLs


def test_presigned_url() -> None:
    wire = sign("GET", INVOKE_PATH, params={"a": "1 2"}, presign_expires=300)
    assert "authorization" not in wire.headers
    assert "X-Amz-Signature=" in wire.query_string
    at = signed_at(wire)
    assert wire.verify() is OURS
    assert wire.verify(at + timedelta(seconds=300)) is OURS
    with pytest.raises(InvalidSignature, match=r"Signature expired: .*X-Amz-Expires 300 sec"):
        wire.verify(at + timedelta(seconds=301))
    with pytest.raises(InvalidSignature, match="not yet current"):
        wire.verify(at - timedelta(minutes=16))
    with pytest.raises(InvalidSignature, match="does not match"):
        dataclasses.replace(wire, query_string=wire.query_string.replace("a=1", "a=3")).verify()
    with pytest.raises(InvalidSignature, match="does not match"):
        dataclasses.replace(wire, method="HEAD").verify()
    with pytest.raises(IncompleteSignature, match="on GET and HEAD only, not POST"):
        dataclasses.replace(wire, method="POST").verify()
    with pytest.raises(UnrecognizedClient):
        sign("GET", INVOKE_PATH, key="AKIAOTHER", presign_expires=300).verify()


@pytest.mark.parametrize(
    ("pattern", "replacement", "message"),
    [
        (r"&?X-Amz-Expires=\d+", "", "must include 'X-Amz-Algorithm'"),
        (r"X-Amz-Algorithm=[^&]+", "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256", "only supports"),
        (r"X-Amz-Expires=\d+", "X-Amz-Expires=604801", "less than a week"),
        (r"X-Amz-Expires=\d+", "X-Amz-Expires=-1", "number of seconds"),
        (r"X-Amz-Date=\w+", "X-Amz-Date=now", "ISO-8601"),
        (r"$", "&X-Amz-Signature=00", "more than once"),
    ],
)
def test_malformed_presigned_url(pattern: str, replacement: str, message: str) -> None:
    wire = sign("GET", INVOKE_PATH, presign_expires=300)
    now = signed_at(wire)
    tampered = dataclasses.replace(
        wire, query_string=re.sub(pattern, replacement, wire.query_string, count=1)
    )
    with pytest.raises(IncompleteSignature, match=message):
        tampered.verify(now)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_presigned_requests_with_a_body_are_refused(method: str) -> None:
    # botocore's presigner moves a POST's body into the query string (here the JSON's keys):
    # the API would get no input, so the request is refused, untampered, with the reason.
    wire = sign(method, INVOKE_PATH, body=b'{"a": [1, 2]}', presign_expires=300)
    assert wire.body == b""
    assert wire.query_string.startswith("a=1&a=2&X-Amz-Algorithm=")
    with pytest.raises(IncompleteSignature) as raised:
        wire.verify()
    assert raised.value.message.startswith(
        f"Presigned (query-string) requests are accepted on GET and HEAD only, not {method}"
    )
    assert "Authorization header" in raised.value.message
    assert sign("HEAD", INVOKE_PATH, presign_expires=300).verify() is OURS


def test_header_and_query_auth_together_are_rejected() -> None:
    wire = sign("GET", INVOKE_PATH, presign_expires=300)
    both = wire.with_header("authorization", control_request().headers["authorization"])
    with pytest.raises(IncompleteSignature, match="Only one auth mechanism"):
        both.verify()


# ------------------------------------------------------------------ properties

header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(" \t"), max_size=40
)
any_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=2048),
    custom_attributes=header_text,
    extra=header_text,
    params=st.lists(st.tuples(any_text, any_text), max_size=4),
    endpoint=st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
)
def test_botocore_signed_requests_always_verify(
    body: bytes,
    custom_attributes: str,
    extra: str,
    params: list[tuple[str, str]],
    endpoint: str,
) -> None:
    headers = {
        **RUNTIME_HEADERS,
        "X-Amzn-SageMaker-Custom-Attributes": custom_attributes,
        "X-Pier-Extra": extra,
    }
    # botocore's REST serializer percent-encodes the EndpointName label this way
    path = f"/endpoints/{quote(endpoint, safe='-._~')}/invocations"
    wire = sign("POST", path, headers=headers, body=body, params=params)
    assert wire.verify() is OURS


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=2048), data=st.data())
def test_any_single_byte_change_of_the_body_fails(body: bytes, data: st.DataObject) -> None:
    wire = runtime_request(body=body)
    assert wire.verify() is OURS
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(body)
    changed[index] ^= flip
    with pytest.raises(InvalidSignature):
        dataclasses.replace(wire, body=bytes(changed)).verify()


# ------------------------------------------------------------------ real clients over HTTP


class CaptureServer:
    """A stdlib HTTP server that records each request and answers like SageMaker would."""

    def __init__(self) -> None:
        self.requests: list[Wire] = []
        captured = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                path, _, query = self.path.partition("?")
                headers = {
                    name.lower(): ",".join(self.headers.get_all(name) or [])
                    for name in self.headers
                }
                captured.append(Wire(self.command, path, query, headers, body))
                if path == "/":
                    reply, content_type = b'{"Endpoints": []}', "application/x-amz-json-1.1"
                else:
                    reply, content_type = b'{"ok": true}', "application/json"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def last(self) -> Wire:
        assert self.requests, "the server received nothing"
        return self.requests[-1]


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    capture = CaptureServer()
    yield capture
    capture.close()


def _client(service: str, server: CaptureServer) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_boto3_control_client(server: CaptureServer) -> None:
    client = _client("sagemaker", server)
    try:
        assert client.list_endpoints()["Endpoints"] == []
    finally:
        client.close()
    wire = server.last()
    assert wire.headers["x-amz-target"] == "SageMaker.ListEndpoints"
    assert wire.verify(datetime.now(UTC)) is OURS


@pytest.mark.parametrize("name", ["my-endpoint", "my endpoint/ü~%+"])
def test_boto3_runtime_client(server: CaptureServer, name: str) -> None:
    # The second name breaks SageMaker's name pattern, but botocore does not check patterns:
    # it percent-encodes the label, and signs the encoded path encoded once more.
    client = _client("sagemaker-runtime", server)
    try:
        response = client.invoke_endpoint(
            EndpointName=name,
            Body=BINARY_BODY,
            ContentType="application/octet-stream",
            Accept="application/json",
            CustomAttributes="  a   b  ",
        )
        assert response["Body"].read() == b'{"ok": true}'
    finally:
        client.close()
    wire = server.last()
    assert wire.raw_path == f"/endpoints/{quote(name, safe='-._~')}/invocations"
    assert wire.body == BINARY_BODY
    assert wire.verify(datetime.now(UTC)) is OURS
    with pytest.raises(InvalidSignature):
        dataclasses.replace(wire, body=BINARY_BODY[::-1]).verify(datetime.now(UTC))


def _curl_with_sigv4() -> str | None:
    curl = shutil.which("curl")
    if curl is None:
        return None
    result = subprocess.run([curl, "--help", "all"], capture_output=True, text=True, check=False)
    return curl if "--aws-sigv4" in result.stdout else None


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (
            INVOKE_PATH,
            {
                "Content-Type": "application/octet-stream",
                "X-Amzn-SageMaker-Custom-Attributes": "a  b",
            },
        ),
        (
            "/",
            {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "SageMaker.ListEndpoints",
            },
        ),
    ],
)
def test_curl_aws_sigv4(
    server: CaptureServer, tmp_path: Path, path: str, headers: dict[str, str]
) -> None:
    curl = _curl_with_sigv4()
    if curl is None:
        pytest.skip("curl is not installed or lacks --aws-sigv4 (needs curl 7.75 or later)")
    body_file = tmp_path / "body.bin"
    body_file.write_bytes(BINARY_BODY)
    command = [
        curl,
        "--silent",
        "--show-error",
        "--fail",
        "--aws-sigv4",
        f"aws:amz:{REGION}:sagemaker",
        "--user",
        f"{KEY}:{SECRET}",
        "--data-binary",
        f"@{body_file}",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    subprocess.run([*command, server.url + path], check=True, capture_output=True, timeout=30)
    wire = server.last()
    assert wire.body == BINARY_BODY
    assert wire.verify(datetime.now(UTC)) is OURS
    with pytest.raises(InvalidSignature):
        wire.with_header("content-type", "text/plain").verify(datetime.now(UTC))
