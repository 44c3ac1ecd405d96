"""The platform's side of the audit trail: calls queued on the event loop, written in batches.

pier.platform.api.serve hands every state-changing or denied call here once its response is
written (`AuditTrail.__call__`: build one tuple, append it; no I/O). A background task writes
the queue to the state store (pier.store.audit) every `flush_s`, in a worker thread, in one
transaction; a failed write keeps the events for the next round (up to `max_pending`, then
the oldest are dropped and the log says how many). What is kept: time, user, access key id,
source address, operation, resource ARN (from the request's decoded input names, or its path),
status and error code. Never the secret, the signature, nor a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import cbor2
import orjson

from pier.control.arns import ArnFactory
from pier.platform.access import Principal
from pier.platform.api import Request
from pier.store.audit import AuditEvent, AuditStore

log = logging.getLogger("pier.platform")

# (time, user, key id, source, operation, decoded input or None, path, status, error code)
_Pending = tuple[
    datetime, str, str, str, str, "Mapping[str, Any] | _Undecoded | None", str, int, str | None
]
_MAX_PEEK = 64 * 1024  # a refused call's body is read for its names up to this size only


class AuditTrail:
    def __init__(
        self, store: AuditStore, arns: ArnFactory, flush_s: float = 0.5, max_pending: int = 50_000
    ) -> None:
        self._store = store
        self._arns = arns
        self._flush_s = flush_s
        self._max_pending = max_pending
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(
        self, caller: Principal, operation: str, request: Request, status: int, code: str | None
    ) -> None:
        """Queue one call (pier.platform.api.Trail)."""
        client = request.scope.get("client")
        source = str(client[0]) if client else "-"
        params: Mapping[str, Any] | _Undecoded | None = request.params
        if params is None and request.body and len(request.body) <= _MAX_PEEK:
            # refused before the API decoded it: the names are read in the writer's thread
            params = _Undecoded(request.headers.get("content-type", ""), request.body)
        self._pending.append((
            datetime.now(UTC), caller.user, caller.access_key_id, source, operation,
            params, request.path, status, code,
        ))  # fmt: skip

    async def start(self) -> None:
        """Write the queue every flush_s from now on."""
        self._task = asyncio.create_task(self._loop())

    async def aclose(self) -> None:
        """Stop, and write what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        """Write the queued events now (in a worker thread)."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception as exc:
            log.error("audit events not written yet (%d): %s", len(batch), type(exc).__name__)
            kept = batch + self._pending
            dropped = max(0, len(kept) - self._max_pending)
            if dropped:
                log.error("audit trail: %d event(s) dropped, the store is away", dropped)
            self._pending = kept[dropped:]

    def _write(self, batch: list[_Pending]) -> None:
        self._store.append([
            AuditEvent(at, user, key, source, op,
                       resource_arn(self._arns, op, _decoded(params), path), status, code)
            for at, user, key, source, op, params, path, status, code in batch
        ])  # fmt: skip

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()


def resource_arn(
    arns: ArnFactory, operation: str, params: Mapping[str, Any] | None, path: str
) -> str | None:
    """The ARN of the resource a call names, where it names one (its decoded input's name
    members, else the endpoint or schedule in its path)."""
    if params is None:
        params = _from_path(path)
    if name := params.get("MonitoringScheduleName"):
        return f"arn:aws:sagemaker:{arns.region}:{arns.account}:monitoring-schedule/{name}".lower()
    if name := params.get("EndpointName"):
        return arns.endpoint(str(name))
    if name := params.get("EndpointConfigName"):
        return arns.endpoint_config(str(name))
    if name := params.get("ModelName"):
        return arns.model(str(name))
    if arn := params.get("ResourceArn"):
        return str(arn)
    alarms = params.get("AlarmNames") or ([params["AlarmName"]] if "AlarmName" in params else [])
    if alarms:
        prefix = f"arn:aws:cloudwatch:{arns.region}:{arns.account}:alarm:"
        return ",".join(prefix + str(a) for a in alarms)[:512]
    return None


@dataclass(slots=True)
class _Undecoded:
    """The body of a call refused before its API decoded it (JSON or CBOR): its top-level
    names are read for the resource's ARN, off the event loop; the body is never stored."""

    content_type: str
    body: bytes

    def decode(self) -> dict[str, Any]:
        try:
            if "cbor" in self.content_type:
                value = cbor2.loads(self.body)
            else:
                value = orjson.loads(self.body)
        except Exception:  # not what it claims to be: no resource to name
            return {}
        return value if isinstance(value, dict) else {}


def _decoded(params: Mapping[str, Any] | _Undecoded | None) -> Mapping[str, Any] | None:
    if isinstance(params, _Undecoded):
        return params.decode() or None
    return params


def _from_path(path: str) -> dict[str, str]:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "endpoints":
        return {"EndpointName": unquote(parts[1])}
    if len(parts) >= 3 and parts[:2] == ["pier", "monitoring-schedules"]:
        return {"MonitoringScheduleName": unquote(parts[2])}
    return {}


__all__ = ["AuditTrail", "resource_arn"]
