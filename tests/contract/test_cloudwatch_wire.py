"""pier.contract.cloudwatch against botocore itself: requests built by botocore's own
serializers (RPC v2 CBOR, what boto3 sends, and JSON 1.0) parse and validate as the service
reads them, and what pier answers parses with botocore's parsers as boto3 would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from pier.contract import cloudwatch as wire
from pier.errors import SerializationException, UnknownOperationException

MODEL = botocore.session.get_session().get_service_model("cloudwatch")
T1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 1, 11, 30, 15, 500000, tzinfo=UTC)
PROTOCOLS = {wire.Protocol.CBOR: "smithy-rpc-v2-cbor", wire.Protocol.JSON: "json"}


def request(operation: str, params: dict[str, Any], protocol: wire.Protocol) -> dict[str, Any]:
    serializer = create_serializer(PROTOCOLS[protocol], include_validation=True)
    return serializer.serialize_to_request(params, MODEL.operation_model(operation))


def parsed(operation: str, params: dict[str, Any], protocol: wire.Protocol) -> dict[str, Any]:
    req = request(operation, params, protocol)
    if protocol is wire.Protocol.CBOR:
        assert req["url_path"] == wire.RPC_PATH_PREFIX + operation
        assert wire.operation_from_path(req["url_path"]) == operation
        assert req["headers"]["smithy-protocol"] == "rpc-v2-cbor"
    else:
        assert wire.operation_from_target(req["headers"]["X-Amz-Target"]) == operation
    return wire.validate_input(operation, wire.decode_body(req["body"], protocol))


def answer(operation: str, body: bytes, headers: dict[str, str], status: int,
           protocol: wire.Protocol) -> dict[str, Any]:  # fmt: skip
    parser = create_parser(PROTOCOLS[protocol])
    response = {"body": body, "headers": headers, "status_code": status}
    return parser.parse(response, MODEL.operation_model(operation).output_shape)


def test_the_default_protocol_is_cbor() -> None:
    assert MODEL.metadata["protocol"] == "smithy-rpc-v2-cbor"
    assert MODEL.metadata["targetPrefix"] == wire.TARGET_PREFIX
    assert MODEL.signing_name == "monitoring"


@pytest.mark.parametrize("protocol", list(wire.Protocol))
def test_requests_round_trip(protocol: wire.Protocol) -> None:
    query = {
        "MetricDataQueries": [
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SageMaker",
                        "MetricName": "ModelLatency",
                        "Dimensions": [{"Name": "EndpointName", "Value": "e"}],
                    },
                    "Period": 300,
                    "Stat": "Average",
                    "Unit": "Microseconds",
                },
                "ReturnData": False,
            }
        ],
        "StartTime": T1,
        "EndTime": T2,
        "ScanBy": "TimestampAscending",
    }
    got = parsed("GetMetricData", query, protocol)
    assert got == query
    assert got["EndTime"].tzinfo is not None

    put = {
        "Namespace": "Custom/Drift",
        "MetricData": [
            {"MetricName": "psi", "Value": 0.25, "Timestamp": T2, "Unit": "None"},
            {"MetricName": "n", "Values": [1.0, 2.5], "Counts": [3.0, 1.0]},
            {"MetricName": "s", "StatisticValues": {
                "SampleCount": 2.0, "Sum": 3.0, "Minimum": 1.0, "Maximum": 2.0}},
        ],
    }  # fmt: skip
    assert parsed("PutMetricData", put, protocol) == put
    stats = {"Namespace": "n", "MetricName": "m", "StartTime": T1, "EndTime": T2,
             "Period": 60, "Statistics": ["Sum", "Maximum"]}  # fmt: skip
    assert parsed("GetMetricStatistics", stats, protocol) == stats
    listing = {"Dimensions": [{"Name": "EndpointName"}], "RecentlyActive": "PT3H"}
    assert parsed("ListMetrics", listing, protocol) == listing
    assert parsed("ListMetrics", {}, protocol) == {}


@pytest.mark.parametrize("protocol", list(wire.Protocol))
def test_outputs_parse_as_boto3_reads_them(protocol: wire.Protocol) -> None:
    result = {
        "MetricDataResults": [
            {"Id": "m1", "Label": "Invocations", "Timestamps": [T2, T1], "Values": [3, 0.5],
             "StatusCode": "Complete", "NotInTheModel": 1},
        ],
        "Messages": [],
        "NextToken": None,
    }  # fmt: skip
    body = wire.encode_output("GetMetricData", result, protocol)
    got = answer("GetMetricData", body, {}, 200, protocol)
    [r] = got["MetricDataResults"]
    assert r["Timestamps"] == [T2, T1]
    assert r["Values"] == [3.0, 0.5]
    assert isinstance(r["Values"][0], float)
    assert "NotInTheModel" not in r
    assert "NextToken" not in got

    stats = {"Label": "m", "Datapoints": [{"Timestamp": T1, "Sum": 7, "Unit": "Count"}]}
    got = answer("GetMetricStatistics", wire.encode_output("GetMetricStatistics", stats,
                 protocol), {}, 200, protocol)  # fmt: skip
    assert got["Datapoints"] == [{"Timestamp": T1, "Sum": 7.0, "Unit": "Count"}]
    assert wire.encode_output("PutMetricData", {}, protocol) == b""


@pytest.mark.parametrize("protocol", list(wire.Protocol))
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (wire.InvalidParameterValue("bad value"), "InvalidParameterValue"),
        (wire.MissingParameter("The parameter X is required."), "MissingParameter"),
        (wire.ValidationError("1 validation error detected"), "ValidationError"),
        (wire.InvalidParameterCombination("both"), "InvalidParameterCombination"),
        (wire.InternalServiceError("oops"), "InternalServiceError"),
        (SerializationException("Malformed"), "SerializationException"),
    ],
)
def test_errors_carry_the_codes_boto3_raises(
    protocol: wire.Protocol, error: Any, code: str
) -> None:
    body, headers = wire.encode_error(error, protocol)
    parser = create_parser(PROTOCOLS[protocol])
    response = {"body": body, "headers": dict((k.decode(), v.decode()) for k, v in headers),
                "status_code": error.status}  # fmt: skip
    got = parser.parse(response, MODEL.operation_model("GetMetricStatistics").output_shape)
    assert got["Error"]["Code"] == code
    assert got["Error"]["Message"] == error.message
    # boto3's modeled exceptions (client.exceptions.InvalidParameterValueException, ...)
    client = botocore.session.get_session().create_client(
        "cloudwatch", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    if isinstance(error, wire.CloudWatchError):
        assert client.exceptions.from_code(code).__name__ == error.shape


def test_validation_messages() -> None:
    with pytest.raises(wire.MissingParameter, match=r"^The parameter MetricName is required\.$"):
        wire.validate_input("GetMetricStatistics", {"Namespace": "n"})
    with pytest.raises(
        wire.MissingParameter, match=r"The parameter MetricData\.member\.2\.MetricName is req"
    ):
        wire.validate_input(
            "PutMetricData", {"Namespace": "n", "MetricData": [{"MetricName": "a"}, {}]}
        )
    with pytest.raises(wire.ValidationError) as caught:
        wire.validate_input("GetMetricStatistics", {
            "Namespace": ":x", "MetricName": "", "StartTime": 0, "EndTime": 1, "Period": 0,
            "Statistics": ["Sum", "p99"]})  # fmt: skip
    assert caught.value.message == (
        "4 validation errors detected: "
        "Value ':x' at 'namespace' failed to satisfy constraint: Member must satisfy regular "
        "expression pattern: [^:].*; "
        "Value '' at 'metricName' failed to satisfy constraint: Member must have length greater "
        "than or equal to 1; "
        "Value '0' at 'period' failed to satisfy constraint: Member must have value greater "
        "than or equal to 1; "
        "Value '[Sum, p99]' at 'statistics' failed to satisfy constraint: Member must satisfy "
        "constraint: [Member must satisfy enum value set: [SampleCount, Average, Sum, Minimum, "
        "Maximum]]"
    )
    with pytest.raises(
        wire.ValidationError, match=r"metricDataQueries\.1\.member\.metricStat\.unit"
    ):
        wire.validate_input("GetMetricData", {
            "StartTime": 0, "EndTime": 60, "MetricDataQueries": [{"Id": "a", "MetricStat": {
                "Metric": {}, "Period": 60, "Stat": "Sum", "Unit": "Parsecs"}}]})  # fmt: skip


def test_malformed_bodies_and_operations() -> None:
    with pytest.raises(SerializationException, match="Malformed CBOR"):
        wire.decode_body(b"\xff\x00", wire.Protocol.CBOR)
    with pytest.raises(SerializationException, match="must be a map"):
        wire.decode_body(b"\x80", wire.Protocol.CBOR)  # an empty array
    with pytest.raises(SerializationException, match="Expected timestamp at 'StartTime'"):
        wire.validate_input("GetMetricStatistics", {"StartTime": "yesterday"})
    datum = {"MetricName": "a", "Value": "1"}
    with pytest.raises(SerializationException, match="Expected double"):
        wire.validate_input("PutMetricData", {"Namespace": "n", "MetricData": [datum]})
    assert wire.decode_body(b"", wire.Protocol.CBOR) == {}
    with pytest.raises(UnknownOperationException):
        wire.operation_from_path("/service/GraniteServiceVersion20100801/operation/Nope")
    with pytest.raises(UnknownOperationException):
        wire.operation_from_target("SageMaker.GetMetricData")
