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

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import unquote

import orjson

from pier.contract.asgi import (
    Receive,
    Scope,
    Send,
    json_headers,
    read_body,
    request_headers,
    respond,
)
from pier.control.monitoring_service import MonitoringService
from pier.errors import AwsError, InternalFailure, PierError

log = logging.getLogger("pier.platform")

PREFIX = "/pier/monitoring-schedules/"
_MAX_BODY = 64 * 1024

Authenticate = Callable[[Scope, dict[str, str], bytes], None]


def is_monitoring(path: str) -> bool:
    return path.startswith(PREFIX)


async def monitoring_route(
    service: MonitoringService,
    scope: Scope,
    receive: Receive,
    send: Send,
    authenticate: Authenticate,
) -> None:
    headers = request_headers(scope)
    try:
        body = await read_body(receive, _MAX_BODY)
        if body is None:
            raise AwsError("The request body is too large.")
        authenticate(scope, headers, body)
        rest = unquote(scope["path"][len(PREFIX) :])
        result = await asyncio.to_thread(service.route, scope["method"], rest)
    except AwsError as err:
        await _error(send, err)
        return
    except PierError as err:
        aws = AwsError(err.message)
        aws.status, aws.code = err.status, err.code
        await _error(send, aws)
        return
    except Exception:
        log.exception("monitoring route failure")
        await _error(send, InternalFailure("Internal error; see the platform log."))
        return
    await respond(send, 200, orjson.dumps(result), json_headers())


async def _error(send: Send, err: AwsError) -> None:
    body = orjson.dumps({"__type": err.code, "message": err.message})
    headers = json_headers(err.code)
    await respond(send, err.status, body, headers)


__all__ = ["PREFIX", "is_monitoring", "monitoring_route"]
