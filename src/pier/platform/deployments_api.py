"""pier's deployment-history route, beside SageMaker's hosting operations.

SageMaker shows only the update in progress (DescribeEndpoint's PendingDeploymentSummary);
pier keeps every update's steps and outcome and answers them on its port, signed with SigV4
(service ``sagemaker``) like the SageMaker APIs (`pier describe` reads it):

    GET /pier/endpoints/{name}/deployments   → 200 {EndpointName, Deployments: [...]}
                                               (HostingService.deployments; newest first)

Errors as the control API writes them: ``{"__type": code, "message": ...}`` with
``x-amzn-ErrorType`` (ValidationException 400 for an unknown endpoint or route).
"""

from __future__ import annotations

from urllib.parse import unquote

import orjson

from pier.contract.asgi import Scope, json_headers
from pier.control.service import HostingService
from pier.errors import PierError, ValidationException
from pier.platform.api import Operations, Request, Response

PREFIX = "/pier/endpoints/"


class DeploymentsApi:
    max_body = 0
    signing_service = "sagemaker"

    def __init__(self, service: HostingService) -> None:
        # "METHOD action" -> the service's method, given the endpoint's name
        self._operations = Operations(
            {"GET deployments": service.deployments},
            lambda operation: ValidationException(f"No such pier route: {operation}."),
        )

    def matches(self, scope: Scope) -> bool:
        return bool(scope["path"].startswith(PREFIX))  # any method: others are refused

    def too_large(self) -> PierError:
        return ValidationException("This route takes no request body.")

    async def handle(self, request: Request) -> Response:
        """GET {name}/deployments: the endpoint's deployment history."""
        path = unquote(request.path[len(PREFIX) :])
        name, _, action = path.strip("/").partition("/")
        operation = f"{request.method} {action}"
        if operation not in self._operations or not name:
            raise ValidationException(
                f"No such pier route: {request.method} {PREFIX}{path} "
                "(GET /pier/endpoints/{name}/deployments)."
            )
        result = await self._operations(operation, name)
        return Response(200, orjson.dumps(result), json_headers())

    def error(self, err: PierError) -> Response:
        body = orjson.dumps({"__type": err.code, "message": err.message})
        return Response(err.status, body, json_headers(err.code))


__all__ = ["PREFIX", "DeploymentsApi"]
