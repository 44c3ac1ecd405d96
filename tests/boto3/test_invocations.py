"""InvokeEndpoint through boto3 on ROUTING: predictions, content types, weighted and targeted
routing, model errors, payload limits; and the requests SigV4 refuses."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.boto3.hosting import (
    PROBE,
    ROUTING,
    WEIGHT_TOLERANCE,
    Created,
    Models,
    error_of,
    invoke,
)
from tests.boto3.platform_fixtures import (
    ACCOUNT,
    LinearModel,
    Platform,
    predictions,
    split_json,
)
from tests.raw_http import MALFORMED_HTTP, raw_http

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("target", "label"), [("variant-a", "a"), ("variant-b", "b")])
def test_invoke_prediction_equals_local_model(
    rt: Any, models: Models, routing: Created, target: str, label: str
) -> None:
    rows = [[1.0, 2.0], [0.0, 0.0], [-4.5, 3.25], [1e3, -2e3]]
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(rows),
        ContentType="application/json",
        Accept="application/json",
        TargetVariant=target,
    )
    assert response["InvokedProductionVariant"] == target
    assert response["ContentType"].startswith("application/json")
    model: LinearModel = getattr(models, label)
    assert predictions(response["Body"].read()) == pytest.approx(model.predict(rows), rel=1e-9)


def test_invoke_csv_in_csv_out(rt: Any, models: Models, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=b"a,b\n1.0,2.0\n3.0,-1.0\n",
        ContentType="text/csv",
        Accept="text/csv",
        TargetVariant="variant-b",
    )
    assert response["ContentType"].startswith("text/csv")
    got = [float(x) for x in response["Body"].read().decode().split()]
    assert got == pytest.approx(models.b.predict([[1.0, 2.0], [3.0, -1.0]]), rel=1e-9)


def test_invoke_with_custom_attributes(rt: Any, models: Models, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(PROBE),
        ContentType="application/json",
        CustomAttributes="trace-id=abc123,tenant=7",
        TargetVariant="variant-a",
    )
    assert predictions(response["Body"].read()) == models.a.predict(PROBE)
    # the MLflow server sets no custom attributes of its own: none come back
    assert "CustomAttributes" not in response
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-invoked-production-variant"] == (
        "variant-a"
    )


def test_invoke_with_inference_id(rt: Any, models: Models, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(PROBE),
        ContentType="application/json",
        InferenceId="inference-0001",
        TargetVariant="variant-b",
    )
    assert predictions(response["Body"].read()) == models.b.predict(PROBE)


def test_weighted_routing_follows_weights(
    platform: Platform, models: Models, routing: Created
) -> None:
    """500 calls without TargetVariant (from 4 threads): variant-a's share is 0.8 ± 0.08, and
    every answer comes from the model of the variant the response names."""

    def calls(n: int) -> list[tuple[str, str]]:
        client = platform.client("sagemaker-runtime")
        out = []
        for _ in range(n):
            name, got = invoke(client, ROUTING)
            out.append((name, models.which(got[0])))
        return out

    with ThreadPoolExecutor(4) as pool:
        results = [r for chunk in pool.map(calls, [125] * 4) for r in chunk]
    assert len(results) == 500
    assert set(results) <= {("variant-a", "A"), ("variant-b", "B")}
    share = sum(name == "variant-a" for name, _ in results) / len(results)
    assert abs(share - 0.8) <= WEIGHT_TOLERANCE, share


@pytest.mark.parametrize(("target", "label"), [("variant-a", "A"), ("variant-b", "B")])
def test_target_variant_routes_every_call(
    rt: Any, models: Models, routing: Created, target: str, label: str
) -> None:
    for _ in range(40):
        name, got = invoke(rt, ROUTING, TargetVariant=target)
        assert (name, models.which(got[0])) == (target, label)


def test_invoke_unknown_variant(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(rt, ROUTING, TargetVariant="variant-z")
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationError", 400)
    assert "variant-z" in message


def test_invoke_unknown_endpoint(rt: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(rt, "no-such-endpoint")
    assert error_of(excinfo) == (
        "ValidationError",
        f"Endpoint no-such-endpoint of account {ACCOUNT} not found.",
        400,
    )


def test_model_error_for_bad_payload(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        rt.invoke_endpoint(
            EndpointName=ROUTING,
            Body=split_json([[1.0]], columns=("a",)),  # column b is missing
            ContentType="application/json",
            TargetVariant="variant-a",
        )
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ModelError", 424)
    assert message.startswith('Received client error (400) from primary with message "'), message
    response = excinfo.value.response
    assert response["OriginalStatusCode"] == 400
    assert response["OriginalMessage"]
    assert "b" in response["OriginalMessage"]


def test_model_error_for_malformed_json(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        rt.invoke_endpoint(EndpointName=ROUTING, Body=b"{not json", ContentType="application/json")
    code, _, status = error_of(excinfo)
    assert (code, status) == ("ModelError", 424)
    assert excinfo.value.response["OriginalStatusCode"] == 400


def _padded_json(size: int) -> bytes:
    body = split_json([[1.0, 2.0]] * 1000)
    return body + b" " * (size - len(body))  # whitespace after the value is still JSON


def test_invoke_payload_of_exactly_6_mib_is_accepted(rt: Any, routing: Created) -> None:
    response = rt.invoke_endpoint(
        EndpointName=ROUTING,
        Body=_padded_json(6 * 1024 * 1024),
        ContentType="application/json",
        TargetVariant="variant-a",
    )
    assert len(predictions(response["Body"].read())) == 1000


def test_invoke_payload_over_6_mib_is_validation_error(rt: Any, routing: Created) -> None:
    with pytest.raises(ClientError) as excinfo:
        rt.invoke_endpoint(
            EndpointName=ROUTING,
            Body=_padded_json(6 * 1024 * 1024 + 1),
            ContentType="application/json",
        )
    code, _, status = error_of(excinfo)
    assert code == "ValidationError"
    assert status in (400, 413)


# --------------------------------------------------------------------------------- SigV4


def _call(platform: Platform, service: str, **overrides: Any) -> None:
    client = platform.client(service, **overrides)
    if service == "sagemaker":
        client.list_models()
    else:
        client.invoke_endpoint(
            EndpointName=ROUTING, Body=split_json(PROBE), ContentType="application/json"
        )


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_unsigned_request_is_refused(platform: Platform, routing: Created, service: str) -> None:
    unsigned = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service, config=unsigned)
    code, _, status = error_of(excinfo)
    assert status == 403
    assert code in ("MissingAuthenticationTokenException", "MissingAuthenticationToken")


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_wrong_secret_is_invalid_signature(
    platform: Platform, routing: Created, service: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service, aws_secret_access_key="not-the-secret-" + "x" * 25)
    code, _, status = error_of(excinfo)
    assert (code, status) == ("InvalidSignatureException", 403)


@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_unknown_access_key_is_unrecognized_client(
    platform: Platform, routing: Created, service: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service, aws_access_key_id="AKIAUNKNOWNKEY000000")
    code, _, status = error_of(excinfo)
    assert (code, status) == ("UnrecognizedClientException", 403)


@pytest.mark.parametrize("skew_minutes", [-20, 20])
@pytest.mark.parametrize("service", ["sagemaker", "sagemaker-runtime"])
def test_request_signed_with_clock_skew_over_15_minutes_is_refused(
    platform: Platform,
    routing: Created,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    skew_minutes: int,
) -> None:
    import botocore.auth

    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(
        botocore.auth,
        "get_current_datetime",
        lambda *a, **kw: real(*a, **kw) + timedelta(minutes=skew_minutes),
    )
    with pytest.raises(ClientError) as excinfo:
        _call(platform, service)
    code, _, status = error_of(excinfo)
    assert status == 403
    assert code == "InvalidSignatureException"


@pytest.mark.parametrize("request_bytes", MALFORMED_HTTP.values(), ids=MALFORMED_HTTP.keys())
def test_malformed_http_is_a_json_400_and_the_platform_keeps_serving(
    platform: Platform, rt: Any, routing: Created, request_bytes: bytes
) -> None:
    """What uvicorn refuses before any API is chosen is JSON too (`message`, AWS's key)."""
    status, headers, body = raw_http(platform.port, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Invalid HTTP request received."}
    invoke(rt, ROUTING, [[1.0, 2.0]])
