"""pier's own monitoring routes, beside SageMaker's monitoring-schedule operations.

SageMaker has no "run this schedule now" nor a report API (its reports are files a
processing job wrote); pier answers both on its port, signed with SigV4 (service
``sagemaker``) like the SageMaker APIs:

    POST /pier/monitoring-schedules/{name}/executions   start an execution now (pier monitor run)
         → 200 {MonitoringExecutionSummary}
    GET  /pier/monitoring-schedules/{name}/report       the latest execution (pier monitor report)
         → 200 {MonitoringScheduleName, EndpointName, MonitoringScheduleStatus,
                Execution: {summary..., Report, OutputUri}}

Errors as the control API writes them: ``{"__type": code, "message": ...}`` with
``x-amzn-ErrorType`` (ResourceNotFound 400 for an unknown schedule).
"""

from __future__ import annotations

from urllib.parse import unquote

import orjson

from pier.contract.asgi import Scope, json_headers
from pier.control.monitoring_service import MonitoringService
from pier.errors import PierError, ValidationException
from pier.platform.api import Operations, Request, Response

PREFIX = "/pier/monitoring-schedules/"
_MAX_BODY = 64 * 1024


def _no_route(operation: str) -> ValidationException:
    # handle() refuses an unknown route first, naming its whole path
    return ValidationException(f"No such pier route: {operation}.")


# "METHOD action" -> the operation (pier.platform.access.POLICY's name for it)
_ROUTES = {"POST executions": "StartMonitoringExecution", "GET report": "GetMonitoringReport"}


def _route(request: Request) -> tuple[str, str]:
    """(schedule name, "METHOD action") of a request under PREFIX."""
    name, _, action = unquote(request.path[len(PREFIX) :]).strip("/").partition("/")
    return name, f"{request.method} {action}"


class MonitoringApi:
    max_body = _MAX_BODY
    signing_service = "sagemaker"

    def __init__(self, service: MonitoringService) -> None:
        # operation -> the service's method, given the schedule's name
        self._operations = Operations(
            {
                "StartMonitoringExecution": service.start_execution,
                "GetMonitoringReport": service.latest_report,
            },
            _no_route,
        )

    def matches(self, scope: Scope) -> bool:
        return bool(scope["path"].startswith(PREFIX))  # any method: others are refused

    def operation(self, request: Request) -> str | None:
        return _ROUTES.get(_route(request)[1])

    def too_large(self) -> PierError:
        return ValidationException("The request body is too large.")

    async def handle(self, request: Request) -> Response:
        name, route = _route(request)
        operation = _ROUTES.get(route)
        if operation is None:
            path = unquote(request.path[len(PREFIX) :])
            raise ValidationException(
                f"No such pier route: {request.method} {PREFIX}{path} (POST "
                "{name}/executions or GET {name}/report)."
            )
        request.params = {"MonitoringScheduleName": name}
        result = await self._operations(operation, name)
        return Response(200, orjson.dumps(result), json_headers())

    def error(self, err: PierError) -> Response:
        body = orjson.dumps({"__type": err.code, "message": err.message})
        return Response(err.status, body, json_headers(err.code))


__all__ = ["PREFIX", "MonitoringApi"]
