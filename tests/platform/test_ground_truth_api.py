"""POST /endpoints/{name}/ground-truth at the ASGI level: answers, errors, nothing stored from a
bad upload. (tests/e2e/test_ground_truth.py signs real requests against `pier up`.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pier.errors import MissingAuthenticationToken, ValidationException
from pier.monitor.quality.ground_truth import GroundTruthStore, store_uri
from pier.platform.access import Principal, principal
from pier.platform.api import Request
from pier.platform.app import PlatformApp
from pier.platform.ground_truth_api import GroundTruthApi

GOOD = b'{"groundTruthData": {"data": "1,2", "encoding": "CSV"}, "eventMetadata": {"eventId": "a"}, "eventVersion": "0"}\n'  # noqa: E501


class Service:
    def describe_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["EndpointName"] != "churn":
            raise ValidationException(f'Could not find endpoint "{req["EndpointName"]}".')
        return {"EndpointName": "churn"}


ADMIN = principal("AKIDGROUNDTRUTH", "not-checked", "admin", "admin", "000000000000")


class Signed:
    def body(self, body: bytes) -> Principal:
        return ADMIN


def authenticate(request: Request, service: str) -> Signed:
    assert service == "sagemaker"
    if "authorization" not in request.headers:
        raise MissingAuthenticationToken("Missing Authentication Token")
    return Signed()


def call(
    api: GroundTruthApi,
    body: bytes,
    endpoint: str = "churn",
    content_type: str = "application/jsonlines",
    signed: bool = True,
) -> tuple[int, dict[str, Any]]:
    headers = [(b"content-type", content_type.encode())]
    if signed:
        headers.append((b"authorization", b"AWS4-HMAC-SHA256 ..."))
    scope = {"type": "http", "method": "POST", "path": f"/endpoints/{endpoint}/ground-truth",
             "headers": headers}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(PlatformApp([api], authenticate)(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.fixture
def api(tmp_path: Path) -> GroundTruthApi:
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)
    return GroundTruthApi(store, Service(), "000000000000")  # type: ignore[arg-type]


def stored(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in sorted((tmp_path / "ground-truth").rglob("*.jsonl"))]


def test_accepts_jsonl(api: GroundTruthApi, tmp_path: Path) -> None:
    assert call(api, GOOD + b"\n" + GOOD.replace(b'"a"', b'"b"')) == (
        200,
        {"accepted": 2, "labels": 4},
    )
    assert call(api, GOOD, content_type="application/x-ndjson; charset=utf-8")[0] == 200
    assert len(stored(tmp_path)) == 2


def test_a_bad_line_is_named_and_nothing_is_stored(api: GroundTruthApi, tmp_path: Path) -> None:
    status, body = call(api, GOOD + b"{oops\n" + GOOD)
    assert status == 400
    assert body["ErrorCode"] == "ValidationError"
    assert body["line"] == 2
    assert body["message"].startswith("line 2: not valid JSON")
    assert body["problems"][0]["line"] == 2
    assert stored(tmp_path) == []


def test_refusals(api: GroundTruthApi, tmp_path: Path) -> None:
    status, body = call(api, GOOD, endpoint="nope")
    assert (status, body["ErrorCode"]) == (404, "ResourceNotFound")
    assert body["message"] == "Endpoint nope of account 000000000000 not found."
    status, body = call(api, GOOD, content_type="application/json")
    assert (status, body["ErrorCode"]) == (415, "UnsupportedMediaType")
    status, body = call(api, GOOD, signed=False)
    assert (status, body["ErrorCode"]) == (403, "MissingAuthenticationTokenException")
    status, body = call(api, b"\n")
    assert (status, body["message"]) == (400, "no ground-truth records")
    assert stored(tmp_path) == []


def test_routes(api: GroundTruthApi) -> None:
    def matches(method: str, path: str) -> bool:
        return api.matches({"type": "http", "method": method, "path": path, "headers": []})

    assert matches("POST", "/endpoints/churn/ground-truth")
    assert not matches("GET", "/endpoints/churn/ground-truth")
    assert not matches("POST", "/endpoints/churn/invocations")
