"""Fuzz every route a real `pier up` serves: only 2xx/4xx, the platform alive, nothing lost.

Property-based (hypothesis): requests signed with the platform's key (so that they get past
SigV4 and reach each API's decoding and validation) and unsigned ones, to the SageMaker control
API (every operation pier serves, and unknown ones), the runtime's invocations, CloudWatch in
both protocols (RPC v2 CBOR and JSON 1.0), ground truth, the monitoring routes, /ping and
/metrics, and random paths and methods. Bodies: arbitrary bytes, JSON of any shape (deep
nesting, huge integers, non-finite literals), and JSON shaped like each API's input. Afterwards
the endpoint still answers with its model's predictions and is still InService.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pier.contract.sagemaker import SUPPORTED_OPERATIONS
from tests.boto3.platform_fixtures import (
    REGION,
    Platform,
    free_port,
    kill_leftovers,
    predictions,
    save_linear_model,
    split_json,
)

pytestmark = pytest.mark.slow

ENDPOINT = "fuzzed"
CLOUDWATCH_OPERATIONS = sorted(
    botocore.session.get_session().get_service_model("cloudwatch").operation_names
)
EXAMPLES = 120  # per route family; each example is one HTTP request
#: The statuses each family met: the final test checks the fuzzers got past SigV4 and reached
#: both success and validation (a fuzzer refused at the door would prove nothing).
SEEN: dict[str, set[int]] = {}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("fuzz")
    model = save_linear_model(root / "model", 1.0, 2.0, 10.0)
    p = Platform(root / "home", free_port(), None, "fuzz")
    try:
        p.start()
        sm = p.client("sagemaker")
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(model.path)})
        variant = {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1}
        variant["InstanceType"] = "ml.m5.large"
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=ENDPOINT, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        p.model = model  # type: ignore[attr-defined]
        yield p
        assert p.terminate() == 0
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        kill_leftovers(p.home)


def send(
    platform: Platform,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    service: str | None,
) -> httpx.Response:
    """One request, SigV4-signed for `service` with the platform's key (None: unsigned)."""
    url = platform.url + path
    if service is not None:
        creds = platform.credentials()
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        key = Credentials(creds["access_key_id"], creds["secret_access_key"])
        SigV4Auth(key, service, REGION).add_auth(request)
        headers = dict(request.headers.items())
    with httpx.Client(timeout=30) as client:
        return client.request(method, url, content=body, headers=headers)


def check(response: httpx.Response, what: str, family: str) -> None:
    SEEN.setdefault(family, set()).add(response.status_code)
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert b"Traceback" not in response.content, what


# ------------------------------------------------------------------------------ strategies

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
RAW_JSON = [
    b"[" * 5000 + b"]" * 5000,  # nesting past the parser's recursion limit
    b'{"a": ' + b"9" * 5000 + b"}",  # an integer of 5,000 digits
    b'{"a": NaN, "b": Infinity}',
    b'{"a": 1e999}',
    b"\xff\xfe{",
    b"",
]


def bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes, JSON of any shape, the raw oddities above, and `shaped` (JSON like the API's)."""
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(RAW_JSON),
        shaped.map(lambda v: json.dumps(v).encode()),
    )


sagemaker_like = st.fixed_dictionaries(
    {},
    optional={
        "EndpointName": st.sampled_from([ENDPOINT, "nope", "", "a" * 70, "bad name"]),
        "EndpointConfigName": st.sampled_from(["c", "missing", "", "x" * 70]),
        "ModelName": st.sampled_from(["m", "other", ""]),
        "NextToken": st.text(max_size=40),
        "MaxResults": st.integers(-5, 2**40),
        "ProductionVariants": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "VariantName": st.text(max_size=10),
                    "ModelName": st.sampled_from(["m", "nope"]),
                    "InitialInstanceCount": st.integers(-2, 2**33),
                    "InitialVariantWeight": st.floats(-1, 1e40),
                    "InstanceType": st.sampled_from(["ml.m5.large", "ml.nope"]),
                },
            ),
            max_size=3,
        ),
        "DesiredWeightsAndCapacities": st.lists(json_values, max_size=2),
        "Tags": st.lists(st.dictionaries(st.sampled_from(["Key", "Value"]), st.text(max_size=5))),
    },
)
cloudwatch_like = st.fixed_dictionaries(
    {},
    optional={
        "Namespace": st.sampled_from(["AWS/SageMaker", "", "x" * 300]),
        "MetricName": st.sampled_from(["Invocations", ""]),
        "MetricData": st.lists(json_values, max_size=3),
        "StartTime": st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=10)),
        "EndTime": st.one_of(st.integers(-(2**40), 2**40), st.floats()),
        "Period": st.integers(-10, 10**6),
        "AlarmNames": st.lists(st.text(max_size=5), max_size=3),
        "StateValue": st.sampled_from(["OK", "ALARM", "nope"]),
    },
)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ------------------------------------------------------------------------------ properties


@FUZZ
@example(operation="ListEndpoints", body=b"{}", signed=True)
@given(
    operation=st.sampled_from([*sorted(SUPPORTED_OPERATIONS), "DescribeNothing", ""]),
    body=bodies(sagemaker_like),
    signed=st.booleans(),
)
def test_sagemaker_control(platform: Platform, operation: str, body: bytes, signed: bool) -> None:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"SageMaker.{operation}",
    }
    response = send(platform, "POST", "/", body, headers, "sagemaker" if signed else None)
    check(response, f"SageMaker.{operation} {body[:80]!r}", "sagemaker")


@FUZZ
@example(
    endpoint=ENDPOINT,
    content_type="application/json",
    accept="application/json",
    body=b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}',
    signed=True,
)
@given(
    endpoint=st.sampled_from([ENDPOINT, "nope", "%2e%2e", "a/b"]),
    content_type=st.sampled_from(
        ["application/json", "text/csv", "application/x-npy", "", "text/csv; charset=latin-1"]
    ),
    accept=st.sampled_from(["application/json", "text/csv", "*/*", "image/png", ""]),
    body=bodies(st.just({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}})),
    signed=st.booleans(),
)
def test_runtime_invocations(
    platform: Platform, endpoint: str, content_type: str, accept: str, body: bytes, signed: bool
) -> None:
    headers = {"Content-Type": content_type, "Accept": accept}
    path = f"/endpoints/{endpoint}/invocations"
    response = send(platform, "POST", path, body, headers, "sagemaker" if signed else None)
    # A model that raised is the runtime's 424 ModelError; never a 5xx of pier's own
    check(response, f"invoke {endpoint} {content_type} {body[:80]!r}", "runtime")


@FUZZ
@example(operation="ListMetrics", protocol="cbor", body=b"", cbor_body=b"\xa0", signed=True)
@example(operation="DescribeAlarms", protocol="json", body=b"{}", cbor_body=b"", signed=True)
@given(
    operation=st.sampled_from([*CLOUDWATCH_OPERATIONS, "Nothing"]),
    protocol=st.sampled_from(["cbor", "json"]),
    body=bodies(cloudwatch_like),
    cbor_body=st.one_of(st.binary(max_size=200), cloudwatch_like.map(lambda v: _cbor(v))),
    signed=st.booleans(),
)
def test_cloudwatch(
    platform: Platform, operation: str, protocol: str, body: bytes, cbor_body: bytes, signed: bool
) -> None:
    service = "monitoring" if signed else None
    if protocol == "cbor":
        path = f"/service/GraniteServiceVersion20100801/operation/{operation}"
        headers = {"Content-Type": "application/cbor", "Smithy-Protocol": "rpc-v2-cbor"}
        response = send(platform, "POST", path, cbor_body, headers, service)
    else:
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"GraniteServiceVersion20100801.{operation}",
        }
        response = send(platform, "POST", "/", body, headers, service)
    check(response, f"CloudWatch {protocol} {operation}", "cloudwatch")


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(
            [
                "/",
                "/ping",
                "/metrics",
                f"/endpoints/{ENDPOINT}/ground-truth",
                "/endpoints/nope/ground-truth",
                "/pier/monitoring-schedules/",
                "/pier/monitoring-schedules/x/executions",
                "/pier/monitoring-schedules/x/report",
                f"/endpoints/{ENDPOINT}/invocations",
                "/endpoints//invocations",
                "/service/GraniteServiceVersion20100801/operation/",
            ]
        ),
        st.text(alphabet="abc/%.-_~?=&", max_size=30).map(lambda p: "/" + p),
    ),
    body=bodies(st.just({"records": [{"inferenceId": "1", "label": 1}]})),
    signed=st.booleans(),
)
def test_any_route_and_method(
    platform: Platform, method: str, path: str, body: bytes, signed: bool
) -> None:
    payload = b"" if method in ("GET", "HEAD") else body
    response = send(platform, method, path, payload, {}, "sagemaker" if signed else None)
    check(response, f"{method} {path} {payload[:60]!r}", "any")


def test_the_platform_still_serves_and_lost_nothing(platform: Platform) -> None:
    """Runs after the fuzzers (file order): the endpoint answers with its model's predictions
    and is still InService with its one instance."""
    assert {200, 400, 403} <= SEEN["sagemaker"], SEEN
    assert {200, 400, 403} <= SEEN["cloudwatch"], SEEN
    assert {200, 400, 403} <= SEEN["runtime"], SEEN
    assert {403, 404} <= SEEN["any"], SEEN
    rows = [[1.0, 2.0], [-3.0, 0.5]]
    runtime = platform.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, Body=split_json(rows), ContentType="application/json"
    )
    model = platform.model  # type: ignore[attr-defined]
    assert predictions(answer["Body"].read()) == pytest.approx(model.predict(rows))
    described = platform.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert httpx.get(platform.url + "/ping", timeout=5).status_code == 200
    log = (platform.home / "logs" / "platform.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def _cbor(value: Any) -> bytes:
    import cbor2

    with contextlib.suppress(Exception):
        return bytes(cbor2.dumps(value))
    return b"\xa0"


def test_fuzz_targets_cover_every_served_operation() -> None:
    assert len(SUPPORTED_OPERATIONS) >= 17
    assert "PutMetricData" in CLOUDWATCH_OPERATIONS
