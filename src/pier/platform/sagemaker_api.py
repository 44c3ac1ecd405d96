"""SageMaker's control API: POST / with X-Amz-Target: SageMaker.<Op>, AWS JSON 1.1.

The hosting operations (pier.control.service) and the monitoring-schedule operations
(pier.control.monitoring_service), checked against botocore's service model
(pier.contract.sagemaker). Errors are JSON 1.1's: ``{"__type": code, "message": ...}`` with
``x-amzn-ErrorType``, the status the error's type carries.
"""

from __future__ import annotations

import uuid

import orjson

from pier.contract import sagemaker as wire
from pier.contract.asgi import Scope
from pier.control.experiment_service import ExperimentService
from pier.control.monitoring_service import MonitoringService
from pier.control.service import HostingService
from pier.errors import PierError, SerializationException, UnknownOperationException
from pier.platform.api import Operations, Request, Response

MAX_CONTROL_BYTES = 1024 * 1024
_AMZ_JSON = b"application/x-amz-json-1.1"


def error_response(err: PierError) -> Response:
    """`err` as the control API (JSON 1.1) writes it."""
    body = orjson.dumps({"__type": err.code, "message": err.message})
    headers = [
        (b"content-type", _AMZ_JSON),
        (b"x-amzn-errortype", err.code.encode()),
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
    ]
    return Response(err.status, body, headers)


def _not_served(operation: str) -> UnknownOperationException:
    return UnknownOperationException(f"pier's SageMaker API does not serve {operation} here.")


class SageMakerApi:
    max_body = MAX_CONTROL_BYTES
    signing_service = "sagemaker"

    def __init__(
        self,
        hosting: HostingService,
        monitoring: MonitoringService,
        experiments: ExperimentService | None = None,
    ) -> None:
        shadow_tests = {}
        if experiments is not None:
            shadow_tests = {
                "CreateInferenceExperiment": experiments.create_inference_experiment,
                "DescribeInferenceExperiment": experiments.describe_inference_experiment,
                "ListInferenceExperiments": experiments.list_inference_experiments,
                "StartInferenceExperiment": experiments.start_inference_experiment,
                "StopInferenceExperiment": experiments.stop_inference_experiment,
            }
        self.operations = Operations(
            {
                "CreateModel": hosting.create_model,
                "DescribeModel": hosting.describe_model,
                "ListModels": hosting.list_models,
                "DeleteModel": hosting.delete_model,
                "CreateEndpointConfig": hosting.create_endpoint_config,
                "DescribeEndpointConfig": hosting.describe_endpoint_config,
                "ListEndpointConfigs": hosting.list_endpoint_configs,
                "DeleteEndpointConfig": hosting.delete_endpoint_config,
                "CreateEndpoint": hosting.create_endpoint,
                "DescribeEndpoint": hosting.describe_endpoint,
                "ListEndpoints": hosting.list_endpoints,
                "UpdateEndpoint": hosting.update_endpoint,
                "UpdateEndpointWeightsAndCapacities": (
                    hosting.update_endpoint_weights_and_capacities
                ),
                "DeleteEndpoint": hosting.delete_endpoint,
                "AddTags": hosting.add_tags,
                "ListTags": hosting.list_tags,
                "DeleteTags": hosting.delete_tags,
                "CreateMonitoringSchedule": monitoring.create_monitoring_schedule,
                "DescribeMonitoringSchedule": monitoring.describe_monitoring_schedule,
                "ListMonitoringSchedules": monitoring.list_monitoring_schedules,
                "DeleteMonitoringSchedule": monitoring.delete_monitoring_schedule,
                "StopMonitoringSchedule": monitoring.stop_monitoring_schedule,
                "StartMonitoringSchedule": monitoring.start_monitoring_schedule,
                "ListMonitoringExecutions": monitoring.list_monitoring_executions,
                **shadow_tests,
            },
            _not_served,
        )

    def matches(self, scope: Scope) -> bool:
        # After CloudWatch's JSON 1.0 API in the platform's list: it also takes POST /.
        return bool(scope["method"] == "POST" and scope["path"] == "/")

    def operation(self, request: Request) -> str | None:
        target = request.headers.get("x-amz-target", "")
        operation = target.partition(".")[2]
        return operation if operation in self.operations else None

    def too_large(self) -> PierError:
        return SerializationException("The request body is too large.")

    async def handle(self, request: Request) -> Response:
        operation = wire.operation_from_target(request.headers.get("x-amz-target"))
        params = wire.validate_input(operation, wire.parse_body(request.body))
        request.params = params
        result = await self.operations(operation, params)
        body = orjson.dumps(wire.serialize_output(operation, result))
        return Response(200, body, [(b"content-type", _AMZ_JSON)])

    def error(self, err: PierError) -> Response:
        return error_response(err)


__all__ = ["MAX_CONTROL_BYTES", "SageMakerApi", "error_response"]
