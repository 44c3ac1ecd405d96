"""CloudWatch's API, in both of its protocols, and its operations table.

    POST /service/GraniteServiceVersion20100801/operation/<Op>   RPC v2 CBOR (boto3's choice)
    POST / with X-Amz-Target: GraniteServiceVersion20100801.<Op>  AWS JSON 1.0 (older SDKs)

Signed for SigV4's service `monitoring`. The metric operations are
pier.control.metrics_service's, the alarm operations pier.control.alarm_service's; both
protocols share one table. Bodies, validation and errors are pier.contract.cloudwatch's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pier.contract import cloudwatch as wire
from pier.contract.asgi import Headers, Scope
from pier.control.alarm_service import CloudWatchAlarmService
from pier.control.metrics_service import CloudWatchMetricsService
from pier.errors import (
    AccessDeniedException,
    AwsError,
    InternalFailure,
    PierError,
    SerializationException,
    UnknownOperationException,
)
from pier.platform.api import Operations, Request, Response, Result
from pier.platform.sagemaker_api import MAX_CONTROL_BYTES

Handler = Callable[[dict[str, Any]], Result]
_TARGET = (wire.TARGET_PREFIX + ".").encode()


def metric_operations(metrics: CloudWatchMetricsService) -> dict[str, Handler]:
    return {
        "GetMetricData": metrics.get_metric_data,
        "GetMetricStatistics": metrics.get_metric_statistics,
        "ListMetrics": metrics.list_metrics,
        "PutMetricData": metrics.put_metric_data,
    }


def alarm_operations(alarms: CloudWatchAlarmService) -> dict[str, Handler]:
    return {
        "PutMetricAlarm": alarms.put_metric_alarm,
        "DescribeAlarms": alarms.describe_alarms,
        "DescribeAlarmsForMetric": alarms.describe_alarms_for_metric,
        "DescribeAlarmHistory": alarms.describe_alarm_history,
        "DeleteAlarms": alarms.delete_alarms,
        "SetAlarmState": alarms.set_alarm_state,
        "EnableAlarmActions": alarms.enable_alarm_actions,
        "DisableAlarmActions": alarms.disable_alarm_actions,
    }


def cloudwatch_operations(*tables: Mapping[str, Handler]) -> Operations[dict[str, Any]]:
    """CloudWatch's dispatcher over the services' tables; an operation outside them is refused
    naming those pier serves."""
    table = {operation: handler for t in tables for operation, handler in t.items()}

    def unknown(operation: str) -> UnknownOperationException:
        return UnknownOperationException(
            f"The requested operation is not recognized by the service. pier implements "
            f"{', '.join(sorted(table))} of CloudWatch, not {operation}."
        )

    return Operations(table, unknown)


class _Relayed(AwsError):
    """A PierError from below the API (the store unreachable, ...) as CloudWatch writes
    errors: its own status and code."""

    def __init__(self, err: PierError) -> None:
        super().__init__(err.message)
        self.status, self.code = err.status, err.code


class CloudWatchApi:
    max_body = MAX_CONTROL_BYTES
    signing_service = "monitoring"  # CloudWatch's SigV4 signing name

    def __init__(self, protocol: wire.Protocol, operations: Operations[dict[str, Any]]) -> None:
        self.protocol = protocol
        self._operations = operations
        self._headers: Headers = [(b"content-type", protocol.content_type)]
        if protocol is wire.Protocol.CBOR:
            self._headers.append((b"smithy-protocol", b"rpc-v2-cbor"))

    def matches(self, scope: Scope) -> bool:
        if scope["method"] != "POST":
            return False
        if self.protocol is wire.Protocol.CBOR:
            return bool(scope["path"].startswith(wire.RPC_PATH_PREFIX))
        return scope["path"] == "/" and any(
            k.lower() == b"x-amz-target" and v.startswith(_TARGET) for k, v in scope["headers"]
        )

    def operation(self, request: Request) -> str | None:
        if self.protocol is wire.Protocol.CBOR:
            operation = request.path[len(wire.RPC_PATH_PREFIX) :]
        else:
            operation = request.headers.get("x-amz-target", "").partition(".")[2]
        return operation if operation in self._operations else None

    def too_large(self) -> PierError:
        return SerializationException("The request body is too large.")

    async def handle(self, request: Request) -> Response:
        if self.protocol is wire.Protocol.CBOR:
            operation = wire.operation_from_path(request.path)
        else:
            operation = wire.operation_from_target(request.headers.get("x-amz-target"))
        self._operations.handler(operation)  # an operation pier lacks, before its input
        params = wire.validate_input(operation, wire.decode_body(request.body, self.protocol))
        request.params = params
        result = await self._operations(operation, params)
        body = wire.encode_output(operation, result, self.protocol)
        return Response(200, body, self._answer_headers())

    def error(self, err: PierError) -> Response:
        if isinstance(err, InternalFailure):
            err = wire.InternalServiceError(err.message)  # CloudWatch's name for it
        elif isinstance(err, AccessDeniedException):
            err = wire.AccessDenied(err.message)
        elif not isinstance(err, AwsError):
            err = _Relayed(err)
        body, extra = wire.encode_error(err, self.protocol)
        return Response(err.status, body, self._answer_headers() + extra)

    def _answer_headers(self) -> Headers:
        return [*self._headers, (b"x-amzn-requestid", str(uuid.uuid4()).encode())]


__all__ = [
    "CloudWatchApi",
    "alarm_operations",
    "cloudwatch_operations",
    "metric_operations",
]
