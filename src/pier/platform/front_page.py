"""GET /: where things are. The URL `pier up` prints is what people open in a browser first.

A browser (Accept: text/html) gets a small page; API clients get the same links as JSON:
the console, the MLflow UI, the gateway's API docs, and the APIs on this port. Unsigned, like
/ping: it shows nothing but where to go.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import orjson

from pier.contract.asgi import Scope
from pier.errors import PierError, SerializationException
from pier.platform.api import Request, Response
from pier.platform.sagemaker_api import error_response

_PROBE_BYTES = 64 * 1024

#: (path on this port, what it is): the APIs, for the page and the JSON alike.
APIS = (
    ("POST /", "SageMaker's API (boto3's sagemaker client) and CloudWatch's (cloudwatch)"),
    ("POST /endpoints/{name}/invocations", "InvokeEndpoint (boto3's sagemaker-runtime client)"),
    ("POST /api/v1/{name}/predict", "the public gateway, with an API key (pier keys)"),
    ("GET /metrics", "Prometheus metrics of every endpoint"),
    ("GET /ping", "health"),
)


class FrontPage:
    max_body = _PROBE_BYTES
    signing_service = None

    def __init__(self, mlflow_url: Callable[[], str | None]) -> None:
        self._mlflow_url = mlflow_url  # read at each request: MLflow may start after pier

    def matches(self, scope: Scope) -> bool:
        return bool(scope["method"] == "GET" and scope["path"] == "/")

    def operation(self, request: Request) -> str | None:
        return None  # unsigned: it only says where things are

    def too_large(self) -> PierError:
        return SerializationException("The request body is too large.")

    def links(self) -> dict[str, str | None]:
        return {
            "console": "/console/",
            "mlflow": self._mlflow_url(),
            "api_docs": "/api/docs",
        }

    async def handle(self, request: Request) -> Response:
        links = self.links()
        if "text/html" not in request.headers.get("accept", ""):
            body = orjson.dumps({**links, "apis": dict(APIS)})
            return Response(200, body, [(b"content-type", b"application/json")])
        mlflow = links["mlflow"]
        items = [
            '<li><a href="/console/">Console</a>: endpoints, metrics, logs, alarms</li>',
            f'<li><a href="{escape(mlflow)}">MLflow UI</a>: experiments and the model registry</li>'
            if mlflow
            else "<li>MLflow: not started by this pier (--no-mlflow)</li>",
            '<li><a href="/api/docs">Gateway API docs</a> (Swagger UI)</li>',
            "<li>Documentation: README.md and docs/ in pier's source</li>",
        ]
        apis = "".join(f"<li><code>{escape(p)}</code>: {escape(w)}</li>" for p, w in APIS)
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>pier</title>'
            "</head><body><h1>pier</h1><ul>" + "".join(items) + "</ul>"
            "<h2>APIs on this port</h2><ul>" + apis + "</ul></body></html>"
        )
        return Response(200, page.encode(), [(b"content-type", b"text/html; charset=utf-8")])

    def error(self, err: PierError) -> Response:
        return error_response(err)


__all__ = ["FrontPage"]
