"""The front door (pier.platform.api): a new API is its dialect and its handlers only.

A toy API, with a dialect of its own and an operations table, mounted in PlatformApp beside
the real SageMaker, runtime and probe APIs, spoken to over HTTP (httpx's ASGI transport) with
requests signed by botocore: routing order, the body limit, SigV4 and the error mapping apply
to it without a line of it saying so.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from pier.contract.asgi import Scope, json_headers
from pier.contract.sigv4 import Credentials
from pier.control.arns import ArnFactory
from pier.control.deployment import VariantLive
from pier.control.monitoring_service import MonitoringService
from pier.control.service import HostingService
from pier.errors import AwsError, PierError, UnknownOperationException
from pier.platform.api import Api, Operations, Request, Response, sigv4
from pier.platform.app import Ping, PlatformApp
from pier.platform.runtime_api import RuntimeApi
from pier.platform.sagemaker_api import SageMakerApi
from pier.router.invoke import Router
from pier.router.table import RoutingTable
from pier.store import db

ACCOUNT = "000000000000"
CREDENTIALS = Credentials("AKIDTOYTOYTOY", "toy-secret")
BASE = "http://pier.test"


class TooMuch(PierError):
    status = 413
    code = "TooMuch"


class Conflict(AwsError):
    status = 409
    code = "Conflict"


class Toy:
    """POST / with `X-Toy-Operation: <Op>`, a JSON body; errors as {"toyError", "text"}."""

    max_body = 64
    signing_service = "toy"

    def __init__(self) -> None:
        self.operations = Operations(
            {"Echo": self.echo, "Clash": self.clash, "Crash": self.crash},
            lambda op: UnknownOperationException(f"the toy knows no {op}"),
        )

    def matches(self, scope: Scope) -> bool:
        return scope["path"] == "/" and any(k == b"x-toy-operation" for k, _ in scope["headers"])

    def too_large(self) -> PierError:
        return TooMuch("too much for a toy")

    async def handle(self, request: Request) -> Response:
        operation = request.headers["x-toy-operation"]
        result = await self.operations(operation, json.loads(request.body or b"{}"))
        return Response(200, json.dumps(result).encode(), json_headers())

    def error(self, err: PierError) -> Response:
        body = json.dumps({"toyError": err.code, "text": err.message}).encode()
        return Response(err.status, body, json_headers(err.code))

    def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"echo": params}

    def clash(self, params: dict[str, Any]) -> dict[str, Any]:
        raise Conflict("the toy says no")

    def crash(self, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret detail of a bug")


class NoLive:
    def variants(self, endpoint: str) -> dict[str, VariantLive]:
        return {}

    def pending_variants(self, endpoint: str) -> dict[str, VariantLive]:
        return {}


@pytest.fixture(scope="module")
def real_apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Api]]:
    engine = db.create(f"sqlite:///{tmp_path_factory.mktemp('api')}/pier.db")
    db.migrate(engine)
    sessions = db.sessions(engine)
    arns = ArnFactory("us-east-1", ACCOUNT)
    hosting = HostingService(
        sessions, arns, check_image=lambda image: None, live=NoLive(), notify=lambda: None
    )
    monitoring = MonitoringService(sessions, arns, run_now=lambda name: 0)
    yield [RuntimeApi(Router(RoutingTable(), ACCOUNT), None), SageMakerApi(hosting, monitoring)]
    engine.dispose()


def call(
    apis: list[Api],
    headers: dict[str, str],
    body: bytes = b"{}",
    path: str = "/",
    service: str | None = "toy",
    method: str = "POST",
) -> httpx.Response:
    """One request through PlatformApp over HTTP, signed for `service` (None: unsigned)."""
    headers = {"content-type": "application/json", **headers}
    if service is not None:
        signed = AWSRequest(method, BASE + path, data=body, headers=headers)
        SigV4Auth(BotoCredentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key),
                  service, "us-east-1").add_auth(signed)  # fmt: skip
        headers = dict(signed.headers.items())
    app = PlatformApp(apis, sigv4(lambda key: CREDENTIALS if key == CREDENTIALS.access_key_id
                                  else None))  # fmt: skip

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.request(method, path, content=body, headers=headers)

    return asyncio.run(send())


def toy(operation: str) -> dict[str, str]:
    return {"x-toy-operation": operation}


def test_the_toy_answers_beside_the_real_apis(real_apis: list[Api]) -> None:
    apis = [*real_apis[:1], Toy(), *real_apis[1:], Ping()]
    answer = call(apis, toy("Echo"), b'{"a": 1}')
    assert (answer.status_code, answer.json()) == (200, {"echo": {"a": 1}})
    listed = call(apis, {"x-amz-target": "SageMaker.ListModels"}, service="sagemaker")
    assert (listed.status_code, listed.json()) == (200, {"Models": []})
    invoked = call(apis, {}, path="/endpoints/nope/invocations", service="sagemaker")
    assert invoked.status_code == 400
    assert invoked.json()["message"] == f"Endpoint nope of account {ACCOUNT} not found."
    assert call(apis, {}, service=None, method="GET", path="/ping").status_code == 200
    assert call(apis, {}, path="/elsewhere").status_code == 404


def test_routing_order_decides(real_apis: list[Api]) -> None:
    # Both take POST /: the first in the list serves.
    before = call([Toy(), *real_apis], toy("Echo"))
    assert before.json() == {"echo": {}}
    after = call([*real_apis, Toy()], toy("Echo"))
    # SageMaker's API served it: its dialect, and its signing service is not the toy's
    assert after.json()["__type"] == "InvalidSignatureException"


def test_body_limit_auth_and_errors_apply_in_the_toys_dialect(
    real_apis: list[Api], caplog: pytest.LogCaptureFixture
) -> None:
    apis = [Toy(), *real_apis]
    big = call(apis, toy("Echo"), b'{"a": "' + b"x" * 64 + b'"}')
    assert (big.status_code, big.json()) == (413, {"toyError": "TooMuch",
                                                   "text": "too much for a toy"})  # fmt: skip
    unsigned = call(apis, toy("Echo"), service=None)
    assert unsigned.status_code == 403
    assert unsigned.json()["toyError"] == "MissingAuthenticationTokenException"
    wrong_service = call(apis, toy("Echo"), service="sagemaker")
    assert wrong_service.status_code == 403
    assert wrong_service.json()["toyError"] == "InvalidSignatureException"
    clash = call(apis, toy("Clash"))
    assert (clash.status_code, clash.json()) == (409, {"toyError": "Conflict",
                                                       "text": "the toy says no"})  # fmt: skip
    assert clash.headers["x-amzn-errortype"] == "Conflict"
    unknown = call(apis, toy("Fly"))
    assert (unknown.status_code, unknown.json()["text"]) == (400, "the toy knows no Fly")
    with caplog.at_level(logging.ERROR, logger="pier.platform"):
        crash = call(apis, toy("Crash"))
    assert crash.status_code == 500
    assert crash.json() == {"toyError": "InternalFailure",
                            "text": "Internal error; see the platform log."}  # fmt: skip
    assert "secret detail" not in crash.text  # the trace is logged, never answered
    [logged] = [r for r in caplog.records if r.exc_info]
    assert logged.getMessage() == "POST / failed"
    assert logged.exc_info is not None
    assert str(logged.exc_info[1]) == "secret detail of a bug"


def test_the_sagemaker_table_serves_every_operation_the_contract_lists(
    real_apis: list[Api],
) -> None:
    from pier.contract import sagemaker as wire

    api = real_apis[1]
    assert isinstance(api, SageMakerApi)
    assert set(api.operations.names()) == wire.SUPPORTED_OPERATIONS | wire.MONITORING_OPERATIONS


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 2000 + b"]" * 2000,
        b'{"ModelName": ' * 2000 + b"1" + b"}" * 2000,
        b'{"ModelName": 1' + b"0" * 4400 + b"}",  # over Python's 4,300 digits
        # parsed, but deeper than a recursive walk of the members could go
        b'{"ModelName": "m", "Tags": ' + b"[" * 900 + b"]" * 900 + b"}",
    ],
    ids=["deep-array", "deep-object", "long-integer", "deep-member"],
)
def test_json_beyond_the_parsers_limits_is_a_400_and_the_api_keeps_serving(
    real_apis: list[Api], caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    target = {"x-amz-target": "SageMaker.CreateModel"}
    with caplog.at_level(logging.ERROR, logger="pier.platform"):
        answer = call(real_apis, target, body, service="sagemaker")
    assert answer.status_code == 400, answer.text
    assert answer.json()["__type"] in ("SerializationException", "ValidationException")
    assert not [r for r in caplog.records if r.exc_info]  # no logged traceback
    listed = call(real_apis, {"x-amz-target": "SageMaker.ListModels"}, service="sagemaker")
    assert listed.status_code == 200
