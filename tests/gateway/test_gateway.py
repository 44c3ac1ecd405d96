"""The public gateway against a real `pier up` with a real endpoint, called with httpx and curl-
like requests as another team would, keys made with the `pier keys` command.

The last test restarts the platform (usage counts must survive it); the others share it.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.boto3.platform_fixtures import BIN, Platform, wait_for
from tests.gateway.conftest import (
    COLUMNS,
    ENDPOINT,
    ROW,
    create_key,
    pier_cli,
    split_body,
)

pytestmark = pytest.mark.slow
JSON = {"content-type": "application/json"}
MADE: list[str] = []  # every key made here: none may appear in the platform's log


def key_of(platform: Platform, name: str, *options: str) -> dict[str, Any]:
    created = create_key(platform, name, *options)
    MADE.append(created["Key"])
    return created


def predict(
    platform: Platform, key: str | None, body: bytes, endpoint: str = ENDPOINT, **headers: str
) -> httpx.Response:
    sent = {**JSON, **headers}
    if key is not None:
        sent["x-api-key"] = key
    return httpx.post(
        f"{platform.url}/api/v1/{endpoint}/predict", content=body, headers=sent, timeout=30
    )


def assert_clean_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["message"], body
    assert isinstance(body["message"], str), body
    message: str = body["message"]
    return message


def test_predict_answers_what_the_runtime_answers(platform: Platform) -> None:
    key = key_of(platform, "everything")["Key"]
    rt = platform.client("sagemaker-runtime")
    records = json.dumps({"dataframe_records": [dict(zip(COLUMNS, ROW, strict=True))]}).encode()
    csv = (",".join(COLUMNS) + "\n" + ",".join(map(str, ROW)) + "\n").encode()
    for body, content_type in (
        (split_body([ROW, [0.0] * 10]), "application/json"),
        (records, "application/json"),
        (csv, "text/csv"),
    ):
        answer = predict(platform, key, body, **{"content-type": content_type})
        assert answer.status_code == 200, answer.text
        runtime = rt.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType=content_type)
        assert answer.json() == json.loads(runtime["Body"].read())
        assert answer.headers["content-type"] == runtime["ContentType"]
    # the model's own refusal keeps its status, in the gateway's words
    bad = predict(platform, key, json.dumps({"dataframe_split": {"columns": ["x"]}}).encode())
    assert_clean_error(bad, 400)


def test_a_key_is_required_valid_and_allowed_the_endpoint(platform: Platform) -> None:
    good = key_of(platform, "scoped", "--endpoint", ENDPOINT)
    other = key_of(platform, "elsewhere", "--endpoint", "another-endpoint")
    tampered = good["Key"][:-4] + ("aaaa" if not good["Key"].endswith("aaaa") else "bbbb")
    for key in (None, "", "not-a-key", tampered, "pier_" + good["KeyId"] + "_x", other["Key"]):
        assert assert_clean_error(predict(platform, key, split_body()), 403) == "Forbidden"
    assert predict(platform, good["Key"], split_body()).status_code == 200
    # an endpoint the gateway does not publish: 404 to a key, 403 without one
    unscoped = key_of(platform, "unscoped")["Key"]
    assert_clean_error(predict(platform, unscoped, split_body(), endpoint="no-such"), 404)
    assert_clean_error(predict(platform, None, split_body(), endpoint="no-such"), 403)
    wrong_method = httpx.get(f"{platform.url}/api/v1/{ENDPOINT}/predict", timeout=10)
    assert_clean_error(wrong_method, 405)
    assert wrong_method.headers["allow"] == "POST, OPTIONS"
    assert_clean_error(httpx.get(f"{platform.url}/api/nothing-here", timeout=10), 404)
    too_big = predict(platform, unscoped, b"x" * (6 * 1024 * 1024 + 1))
    assert_clean_error(too_big, 413)


def test_a_revoked_key_is_refused_from_the_next_request(platform: Platform) -> None:
    made = key_of(platform, "short-lived")
    assert predict(platform, made["Key"], split_body()).status_code == 200
    done = pier_cli(platform, "keys", "revoke", made["KeyId"])
    assert "revoked" in done.stdout
    assert "picks it up" not in done.stdout
    assert_clean_error(predict(platform, made["Key"], split_body()), 403)
    listed = json.loads(pier_cli(platform, "keys", "list", "--json").stdout)
    assert [k["RevokedAt"] is not None for k in listed if k["KeyId"] == made["KeyId"]] == [True]
    assert all("Key" not in k for k in listed)  # never shown again
    missing = pier_cli(platform, "keys", "revoke", "nosuchkeyid0", check=False)
    assert missing.returncode == 1
    assert "no API key 'nosuchkeyid0'" in missing.stderr


def test_over_the_rate_or_the_quota_is_429_with_retry_after(platform: Platform) -> None:
    quota = key_of(platform, "quota", "--quota-day", "2")["Key"]
    assert [predict(platform, quota, split_body()).status_code for _ in range(2)] == [200, 200]
    refused = predict(platform, quota, split_body())
    assert assert_clean_error(refused, 429) == "Too Many Requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 86400  # the end of the UTC day
    # rate 0.1/s with a burst of 1: the second call within ten seconds is refused
    rate = key_of(platform, "rate", "--rate", "0.1", "--burst", "1")["Key"]
    assert predict(platform, rate, split_body()).status_code == 200
    throttled = predict(platform, rate, split_body())
    assert_clean_error(throttled, 429)
    assert 1 <= int(throttled.headers["retry-after"]) <= 10
    # the quota is per endpoint: another endpoint's count is its own (unknown here: 404)
    assert predict(platform, quota, split_body(), endpoint="no-such").status_code == 404


def test_usage_per_key_and_endpoint(platform: Platform) -> None:
    made = key_of(platform, "counted", "--quota-day", "100", "--quota-month", "1000")
    for _ in range(3):
        assert predict(platform, made["Key"], split_body()).status_code == 200
    usage = json.loads(pier_cli(platform, "keys", "usage", made["KeyId"], "--json").stdout)
    assert [(u["Endpoint"], u["RequestsToday"], u["RequestsThisMonth"]) for u in usage] == [
        (ENDPOINT, 3, 3)
    ]
    assert usage[0]["QuotaDay"] == 100
    assert usage[0]["QuotaMonth"] == 1000
    table = pier_cli(platform, "keys", "usage").stdout
    assert made["KeyId"] in table
    assert "3 / 100" in table
    assert "3 / 1000" in table


def test_cors_is_set_per_endpoint(platform: Platform) -> None:
    key = key_of(platform, "browser")["Key"]
    origin = "https://app.example.com"
    url = f"{platform.url}/api/v1/{ENDPOINT}/predict"
    preflight = {"origin": origin, "access-control-request-method": "POST"}
    assert_clean_error(httpx.options(url, headers=preflight, timeout=10), 403)
    assert "access-control-allow-origin" not in predict(platform, key, split_body()).headers
    pier_cli(platform, "gateway", "cors", ENDPOINT, "--origin", origin)
    assert origin in pier_cli(platform, "gateway", "cors", ENDPOINT).stdout
    answer = httpx.options(url, headers=preflight, timeout=10)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == origin
    assert "x-api-key" in answer.headers["access-control-allow-headers"]
    assert "POST" in answer.headers["access-control-allow-methods"]
    other = {**preflight, "origin": "https://evil.example.com"}
    assert_clean_error(httpx.options(url, headers=other, timeout=10), 403)
    called = predict(platform, key, split_body(), origin=origin)
    assert called.headers["access-control-allow-origin"] == origin
    refused = predict(platform, None, split_body(), origin=origin)  # errors readable too
    assert refused.headers["access-control-allow-origin"] == origin
    bad = pier_cli(
        platform, "gateway", "cors", ENDPOINT, "--origin", "app.example.com", check=False
    )
    assert bad.returncode == 2
    assert "scheme://host" in bad.stderr
    pier_cli(platform, "gateway", "cors", ENDPOINT, "--clear")
    assert_clean_error(httpx.options(url, headers=preflight, timeout=10), 403)


def test_bad_command_lines_say_what_is_wrong(platform: Platform) -> None:
    for args, words in (
        (("--rate", "0"), "--rate must be more than 0"),
        (("--burst", "3"), "--burst needs --rate"),
        (("--quota-day", "-1"), "--quota-day must be more than 0"),
    ):
        done = pier_cli(platform, "keys", "create", "bad", *args, check=False)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr, done.stderr


def test_openapi_documents_are_valid_and_their_example_works(platform: Platform) -> None:
    everything = httpx.get(f"{platform.url}/api/openapi.json", timeout=30).json()
    validate(everything)
    assert list(everything["paths"]) == [f"/api/v1/{ENDPOINT}/predict"]
    one = httpx.get(f"{platform.url}/api/v1/{ENDPOINT}/openapi.json", timeout=30).json()
    validate(one)
    operation = one["paths"][f"/api/v1/{ENDPOINT}/predict"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    formats = {f["title"]: f for f in body["schema"]["oneOf"]}
    assert set(formats) == {"dataframe_split", "dataframe_records"}  # `inputs`: tensors
    split = formats["dataframe_split"]["properties"]["dataframe_split"]["properties"]
    assert split["columns"] == {"const": COLUMNS}
    assert {"403", "404", "429"} <= set(operation["responses"])
    assert one["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    key = key_of(platform, "example")["Key"]
    answer = predict(platform, key, json.dumps(body["example"]).encode())
    assert answer.status_code == 200
    assert len(answer.json()["predictions"]) == 2
    assert_clean_error(httpx.get(f"{platform.url}/api/v1/no-such/openapi.json", timeout=10), 404)


def test_swagger_ui_is_served_offline(platform: Platform) -> None:
    page = httpx.get(f"{platform.url}/api/docs", timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets
    assert all(a.startswith("/api/docs/") for a in assets), assets
    assert "/api/openapi.json" in page.text
    assert "http" not in page.text
    for asset in assets:
        served = httpx.get(platform.url + asset, timeout=10)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset


def schemathesis(platform: Platform, key: str, mode: str, checks: tuple[str, ...]) -> None:
    done = subprocess.run(
        [
            str(BIN / "schemathesis"), "run", f"{platform.url}/api/openapi.json",
            "--header", f"x-api-key: {key}", "--checks", ",".join(checks), "--mode", mode,
            "--max-examples", "60", "--seed", "1", "--no-color",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout, done.stdout[-3000:]


# Every answer's status is documented, its content type and body match the document (every
# error: application/json {"message": string}), and a method other than POST is refused.
CONFORMANCE = (
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
)


def test_schemathesis_finds_no_5xx_and_only_clean_json_errors(platform: Platform) -> None:
    """Fuzz the public routes against their own OpenAPI document: no 5xx, whatever the body.
    Bodies it does not allow get documented, clean JSON errors; their status is the model's
    (the gateway does not judge inputs: the model server does). A body that makes the model's
    predict raise (a null in a number column, in scikit-learn) is the model's failure: 424
    with its message, as SageMaker's ModelError (docs/gateway.md)."""
    key = key_of(platform, "fuzz")["Key"]
    schemathesis(platform, key, "positive", ("not_a_server_error", *CONFORMANCE))
    schemathesis(platform, key, "negative", ("not_a_server_error", *CONFORMANCE))


def test_requests_are_logged_with_key_id_and_never_the_key(platform: Platform) -> None:
    made = key_of(platform, "logged")
    assert predict(platform, made["Key"], split_body()).status_code == 200
    assert predict(platform, made["Key"] + "x", split_body()).status_code == 403
    log = platform.home / "logs" / "platform.log"
    pattern = rf"gateway key={made['KeyId']} endpoint={ENDPOINT} status=200 latency_ms=[0-9.]+"
    wait_for(lambda: re.search(pattern, log.read_text()), 10, what="the gateway's log line")
    text = log.read_text()
    assert re.search(r"gateway key=- endpoint=diabetes status=403", text)
    leaked = [k for k in MADE if k in text or k.split("_", 2)[2] in text]
    assert leaked == []


def test_the_server_secret_is_the_owners_alone(platform: Platform) -> None:
    secret = platform.home / "gateway.secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_bytes()) == 32
    assert [p.name for p in platform.home.glob(".gateway.secret.*")] == []  # no leftovers


def test_usage_counts_survive_a_restart(platform: Platform) -> None:
    made = key_of(platform, "durable", "--quota-day", "3")
    for _ in range(2):
        assert predict(platform, made["Key"], split_body()).status_code == 200
    assert platform.terminate() == 0  # its last counts are written on the way out
    platform.start()

    def served() -> bool:
        return predict(platform, made["Key"], split_body()).status_code == 200

    wait_for(served, 120, interval=0.5, what="the endpoint back after the restart")
    assert_clean_error(predict(platform, made["Key"], split_body()), 429)  # 3 of 3 used
