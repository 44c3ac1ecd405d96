"""SigV4 at the platform's door, against a real `pier up`: what is refused before the body.

Requests are signed by botocore (or not at all) and written to a raw socket: only the request
line and headers of a 6 MiB request go out, and the platform must answer from them alone (with
the old order it waited for the body, and the socket read timed out). Then what is refused
whatever the body: UNSIGNED-PAYLOAD, and a presigned POST made by boto3's own presigner. And
/metrics behind PIER_METRICS_TOKEN.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from tests.boto3.platform_fixtures import REGION, Platform, free_port

SIX_MIB = 6 * 1024 * 1024
INVOKE = "/endpoints/nowhere/invocations"
METRICS_TOKEN = "scrape-0f-pier-metrics"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # No endpoint is made, so no instance (process or container) can be left behind.
    home = tmp_path_factory.mktemp("signing") / "home"
    p = Platform(home, free_port(), None, "sqlite", env={"PIER_METRICS_TOKEN": METRICS_TOKEN})
    try:
        p.start()
        yield p
    finally:
        assert p.terminate() == 0, p.log_tail()


def head_only(port: int, head: bytes, timeout: float = 15) -> tuple[int, dict[str, Any]]:
    """Send a request's line and headers, no body, and read the answer (status, JSON)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the platform closed the connection without an answer"
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        assert headers.get("transfer-encoding") == "chunked", headers  # as uvicorn frames it
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "the platform closed the connection mid-answer"
            rest += chunk
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2 :]
    return int(lines[0].split()[1]), json.loads(body)


def signed_head(
    platform: Platform,
    body_sha256: str | None,
    *,
    secret: str | None = None,
    key: str | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    """The head of a botocore-signed 6 MiB InvokeEndpoint (the body itself is never sent)."""
    creds = platform.credentials()
    headers = {"Content-Type": "application/json", **(extra or {})}
    if body_sha256 is not None:
        headers["X-Amz-Content-SHA256"] = body_sha256
    request = AWSRequest(method="POST", url=platform.url + INVOKE, headers=headers, data=b"")
    SigV4Auth(
        BotoCredentials(key or creds["access_key_id"], secret or creds["secret_access_key"]),
        "sagemaker",
        REGION,
    ).add_auth(request)
    lines = [f"POST {INVOKE} HTTP/1.1", f"Host: 127.0.0.1:{platform.port}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    lines.append(f"Content-Length: {SIX_MIB}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_an_unsigned_request_is_refused_before_its_body(platform: Platform) -> None:
    head = (
        f"POST {INVOKE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {SIX_MIB}\r\n\r\n"
    ).encode()
    status, answer = head_only(platform.port, head)
    assert status == 403
    assert answer["ErrorCode"] == "MissingAuthenticationTokenException"


def test_an_unknown_key_is_refused_before_the_body(platform: Platform) -> None:
    status, answer = head_only(
        platform.port, signed_head(platform, None, key="AKIANOTAKEYOFPIER000")
    )
    assert status == 403
    assert answer["ErrorCode"] == "UnrecognizedClientException"


def test_a_declared_payload_hash_lets_a_forged_signature_be_refused_before_the_body(
    platform: Platform,
) -> None:
    digest = hashlib.sha256(b"x" * SIX_MIB).hexdigest()
    status, answer = head_only(platform.port, signed_head(platform, digest, secret="not-it"))
    assert status == 403
    assert answer["ErrorCode"] == "InvalidSignatureException"
    assert answer["message"].startswith("The request signature we calculated does not match")


def test_unsigned_payload_is_refused(platform: Platform) -> None:
    status, answer = head_only(platform.port, signed_head(platform, "UNSIGNED-PAYLOAD"))
    assert status == 403
    assert answer["ErrorCode"] == "InvalidSignatureException"
    assert "UNSIGNED-PAYLOAD is not accepted" in answer["message"]


def test_boto3_presigned_post_is_refused_with_the_reason(platform: Platform) -> None:
    import httpx

    runtime = platform.client("sagemaker-runtime")
    url = runtime.generate_presigned_url(
        "invoke_endpoint",
        Params={"EndpointName": "nowhere", "Body": b'{"a": 1}', "ContentType": "application/json"},
        ExpiresIn=300,
    )
    answer = httpx.post(url, content=b'{"a": 1}', headers={"content-type": "application/json"})
    assert answer.status_code == 403
    assert answer.json()["ErrorCode"] == "IncompleteSignatureException"
    assert "accepted on GET and HEAD only, not POST" in answer.json()["message"]


def test_signed_clients_still_work(platform: Platform, tmp_path: Path) -> None:
    # boto3 sends no x-amz-content-sha256: its signature is checked once the body is read
    assert platform.client("sagemaker").list_endpoints()["Endpoints"] == []
    runtime = platform.client("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ValidationError, match="nowhere"):
        runtime.invoke_endpoint(EndpointName="nowhere", Body=b"{}", ContentType="application/json")


def test_metrics_behind_a_bearer_token(platform: Platform) -> None:
    import httpx

    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": METRICS_TOKEN}):
        answer = httpx.get(platform.url + "/metrics", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["__type"] == "UnauthorizedException"
        assert "PIER_METRICS_TOKEN" in answer.json()["message"]
        assert METRICS_TOKEN not in answer.text
    scraped = httpx.get(
        platform.url + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert scraped.status_code == 200
    assert "pier_capture_records" in scraped.text
    assert httpx.get(platform.url + "/ping").status_code == 200  # probes stay open
