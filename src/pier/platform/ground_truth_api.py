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
from collections.abc import Callable
from typing import Any
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
from pier.control.service import HostingService
from pier.errors import AwsError, InternalFailure, ValidationException
from pier.monitor.quality.ground_truth import (
    CONTENT_TYPES,
    GroundTruthError,
    GroundTruthStore,
    Upload,
    validate,
)

log = logging.getLogger("pier.platform")

GROUND_TRUTH_SUFFIX = "/ground-truth"
MAX_GROUND_TRUTH_BYTES = 16 * 1024 * 1024

Authenticate = Callable[[Scope, dict[str, str], bytes], None]


def is_ground_truth(method: str, path: str) -> bool:
    return (
        method == "POST" and path.startswith("/endpoints/") and path.endswith(GROUND_TRUTH_SUFFIX)
    )


class _Refused(AwsError):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


class GroundTruthApi:
    def __init__(self, store: GroundTruthStore, service: HostingService, account: str) -> None:
        self.store = store
        self.service = service
        self.account = account

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, authenticate: Authenticate
    ) -> None:
        headers = request_headers(scope)
        path: str = scope["path"]
        name = unquote(path[len("/endpoints/") : -len(GROUND_TRUTH_SUFFIX)])
        try:
            body = await read_body(receive, MAX_GROUND_TRUTH_BYTES)
            if body is None:
                raise _Refused(
                    413, "ValidationError",
                    f"The body exceeds {MAX_GROUND_TRUTH_BYTES} bytes: upload it in parts.",
                )  # fmt: skip
            authenticate(scope, headers, body)
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media not in CONTENT_TYPES:
                raise _Refused(
                    415, "UnsupportedMediaType",
                    f"Content-Type {media or '(none)'} is not JSON Lines: send "
                    f"{', '.join(sorted(CONTENT_TYPES))}.",
                )  # fmt: skip
            await self._check_endpoint(name)
            upload, where = await asyncio.to_thread(self._store, name, body)
        except GroundTruthError as exc:
            problems = [{"line": p.line, "problem": p.problem} for p in exc.problems]
            await _error(send, _Refused(400, "ValidationError", exc.message,
                                        line=exc.line, problems=problems))  # fmt: skip
            return
        except AwsError as err:
            await _error(send, err)
            return
        except Exception:
            log.exception("ground truth for endpoint %s could not be stored", name)
            await _error(send, InternalFailure("Internal error; see the platform log."))
            return
        log.info("ground truth for %s: %d record(s) stored in %s", name, upload.records, where)
        answer = orjson.dumps({"accepted": upload.records, "labels": upload.labels})
        await respond(send, 200, answer, json_headers())

    async def _check_endpoint(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.service.describe_endpoint, {"EndpointName": name})
        except ValidationException:
            message = f"Endpoint {name} of account {self.account} not found."
            raise _Refused(404, "ResourceNotFound", message) from None

    def _store(self, name: str, body: bytes) -> tuple[Upload, str]:
        upload = validate(body)  # all lines, before anything is written
        return upload, self.store.append(name, upload)


async def _error(send: Send, err: AwsError) -> None:
    payload: dict[str, Any] = {"ErrorCode": err.code, "message": err.message}
    payload.update(getattr(err, "extra", {}))
    headers = json_headers(err.code)
    await respond(send, err.status, orjson.dumps(payload), headers)


__all__ = ["GROUND_TRUTH_SUFFIX", "MAX_GROUND_TRUTH_BYTES", "GroundTruthApi", "is_ground_truth"]
