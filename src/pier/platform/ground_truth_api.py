"""POST /endpoints/{name}/ground-truth: labels for captured inferences (a pier extension).

On SageMaker, ground truth is files put in S3 under a prefix a model-quality job reads; pier
takes the same records over its own signed API and writes them to its ground-truth store
(pier.monitor.quality.ground_truth), so users need neither a bucket nor its layout.

    POST /endpoints/{name}/ground-truth
    Content-Type: application/jsonlines (or application/x-ndjson, application/jsonl)
    {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "..."},
     "eventVersion": "0"}  (one per line)

200 {"accepted": records, "labels": labels}; 400 ValidationError naming the first bad line
(`line`, and `problems`: every bad line up to 20), nothing stored; 404 ResourceNotFound for an
unknown endpoint; 415 for another content type; 413 above 16 MiB. Signed with SigV4 (service
`sagemaker`) like the SageMaker APIs on the same port.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote

import orjson

from pier.contract.asgi import Scope, json_headers
from pier.control.service import HostingService
from pier.errors import AwsError, PierError, ValidationException
from pier.monitor.quality.ground_truth import (
    CONTENT_TYPES,
    GroundTruthError,
    GroundTruthStore,
    Upload,
    validate,
)
from pier.platform.api import Request, Response

log = logging.getLogger("pier.platform")

GROUND_TRUTH_SUFFIX = "/ground-truth"
MAX_GROUND_TRUTH_BYTES = 16 * 1024 * 1024
_PREFIX = "/endpoints/"


class _TooLarge(AwsError):
    status = 413
    code = "ValidationError"


class _NotJsonLines(AwsError):
    status = 415
    code = "UnsupportedMediaType"


class _NoEndpoint(AwsError):
    status = 404
    code = "ResourceNotFound"


class GroundTruthApi:
    max_body = MAX_GROUND_TRUTH_BYTES
    signing_service = "sagemaker"

    def __init__(self, store: GroundTruthStore, service: HostingService, account: str) -> None:
        self.store = store
        self.service = service
        self.account = account

    def matches(self, scope: Scope) -> bool:
        path: str = scope["path"]
        return (
            scope["method"] == "POST"
            and path.startswith(_PREFIX)
            and path.endswith(GROUND_TRUTH_SUFFIX)
        )

    def operation(self, request: Request) -> str | None:
        return "PutGroundTruth"

    def too_large(self) -> PierError:
        return _TooLarge(f"The body exceeds {MAX_GROUND_TRUTH_BYTES} bytes: upload it in parts.")

    async def handle(self, request: Request) -> Response:
        name = unquote(request.path[len(_PREFIX) : -len(GROUND_TRUTH_SUFFIX)])
        request.params = {"EndpointName": name}
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in CONTENT_TYPES:
            raise _NotJsonLines(
                f"Content-Type {media or '(none)'} is not JSON Lines: send "
                f"{', '.join(sorted(CONTENT_TYPES))}."
            )
        upload, where = await asyncio.to_thread(self._store, name, request.body)
        log.info("ground truth for %s: %d record(s) stored in %s", name, upload.records, where)
        answer = orjson.dumps({"accepted": upload.records, "labels": upload.labels})
        return Response(200, answer, json_headers())

    def _store(self, name: str, body: bytes) -> tuple[Upload, str]:
        try:
            self.service.describe_endpoint({"EndpointName": name})
        except ValidationException:
            message = f"Endpoint {name} of account {self.account} not found."
            raise _NoEndpoint(message) from None
        upload = validate(body)  # all lines, before anything is written
        return upload, self.store.append(name, upload)

    def error(self, err: PierError) -> Response:
        if isinstance(err, GroundTruthError):
            # Which lines are bad, so that a client can fix them all in one go.
            problems = [{"line": p.line, "problem": p.problem} for p in err.problems]
            payload = {"ErrorCode": "ValidationError", "message": err.message,
                       "line": err.line, "problems": problems}  # fmt: skip
            return Response(400, orjson.dumps(payload), json_headers("ValidationError"))
        payload = {"ErrorCode": err.code, "message": err.message}
        return Response(err.status, orjson.dumps(payload), json_headers(err.code))


__all__ = ["GROUND_TRUTH_SUFFIX", "MAX_GROUND_TRUTH_BYTES", "GroundTruthApi"]
