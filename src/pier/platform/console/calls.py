"""What the console calls: the platform's own operations, in-process.

Every read and every action of the console is a SageMaker or CloudWatch operation from the
platform's `Operations` tables (the ones SageMakerApi and CloudWatchApi dispatch to), its input
validated against botocore's service model exactly as a boto3 request's is
(pier.contract.sagemaker / pier.contract.cloudwatch), so the console can do nothing a boto3
client with the same key could not. Invoking goes through the runtime API's own handler
(RuntimeApi.handle, then its after-callback), so an invocation from the console is routed,
counted in the metrics and captured like one from boto3.

Beside the operations, read-only views with no AWS operation: an endpoint's instances and the
tail of their logs (the hosting backend), the latest data-capture records (the capture files),
a model's signature and input example (its MLmodel), a schedule's latest report; from the
state store, the audit trail, an endpoint's deployment history, the gateway's API keys and usage.
Methods block (store, files): call them from a worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pier.contract import cloudwatch as cloudwatch_wire
from pier.contract import sagemaker as sagemaker_wire
from pier.control.monitoring_service import MonitoringService
from pier.hosting.base import Backend, Instance
from pier.monitor.capture.captured import ReadStats, records_in_window, window_lines
from pier.platform.api import Operations, Request, Response, Result
from pier.platform.runtime_api import RuntimeApi
from pier.storage import resolve
from pier.store.api_keys import ApiKeyStore, StoredKey, UsageCount
from pier.store.audit import AuditEvent, AuditStore
from pier.store.db import Sessions
from pier.store.hosting import deployment_history
from pier.store.tables import DeploymentRow

Params = dict[str, Any]
LOG_LINES = 30


@dataclass(frozen=True, slots=True)
class Invoked:
    """An InvokeEndpoint's answer as the console shows it."""

    status: int
    variant: str
    content_type: str
    body: str


class ConsoleCalls:
    """The operations and views the console's pages are built from."""

    def __init__(
        self,
        sagemaker: Operations[Params],
        cloudwatch: Operations[Params],
        monitoring: MonitoringService,
        runtime: RuntimeApi,
        backend: Backend,
        capture_base: Any,  # Path: where relative capture destinations live
        *,
        state: Sessions,  # the state store: deployment history
        audit: AuditStore,
        api_keys: ApiKeyStore,
    ) -> None:
        self._state = state
        self._audit = audit
        self._api_keys = api_keys
        self._sagemaker = sagemaker
        self._cloudwatch = cloudwatch
        self._monitoring = monitoring
        self._runtime = runtime
        self._backend = backend
        self._capture_base = capture_base

    def sagemaker(self, operation: str, **params: Any) -> Result:
        """A SageMaker operation, its input checked as the control API checks boto3's."""
        handler = self._sagemaker.handler(operation)
        return handler(sagemaker_wire.validate_input(operation, params))

    def cloudwatch(self, operation: str, **params: Any) -> Result:
        """A CloudWatch operation, its input checked as the CloudWatch API checks boto3's."""
        handler = self._cloudwatch.handler(operation)
        return handler(cloudwatch_wire.validate_input(operation, params))

    async def invoke(
        self, endpoint: str, body: bytes, content_type: str, variant: str | None
    ) -> Invoked:
        """InvokeEndpoint through the runtime API's handler (routing, metrics, capture);
        raises the PierError the runtime API would answer."""
        headers = {"content-type": content_type, "accept": "application/json"}
        if variant:
            headers["x-amzn-sagemaker-target-variant"] = variant
        path = f"/endpoints/{quote(endpoint, safe='')}/invocations"
        scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        request = Request(scope, headers, body, time.perf_counter_ns())
        response: Response = await self._runtime.handle(request)
        if response.after is not None:
            response.after()
        found = dict(response.headers)
        return Invoked(
            response.status,
            found.get(b"x-amzn-invoked-production-variant", b"").decode(),
            found.get(b"content-type", b"").decode(),
            response.body.decode("utf-8", "replace"),
        )

    def instances(self, endpoint: str) -> list[Instance]:
        """The endpoint's instances the backend runs, by variant and id."""
        found = [i for i in self._backend.list() if i.spec.endpoint == endpoint]
        return sorted(found, key=lambda i: (i.spec.variant, i.spec.instance_id))

    def log_tail(self, instance: Instance) -> str:
        """The last lines of an instance's log."""
        return self._backend.log_tail(instance, LOG_LINES)

    def report(self, schedule: str) -> dict[str, Any]:
        """A monitoring schedule's latest execution with its report (pier's own route)."""
        return self._monitoring.latest_report(schedule)

    def captured(
        self, endpoint: str, destination: str, limit: int, hours: int = 24
    ) -> list[dict[str, Any]]:
        """The newest `limit` records captured for the endpoint in the last `hours`, newest
        first (SageMaker's capture JSON Lines, parsed)."""
        end = datetime.now(UTC) + timedelta(minutes=1)
        start = end - timedelta(hours=hours)
        lines = window_lines(resolve(destination, self._capture_base), endpoint, start, end)
        records = list(records_in_window(lines, start, end, ReadStats()))

        def when(record: dict[str, Any]) -> str:
            return str((record.get("eventMetadata") or {}).get("inferenceTime", ""))

        records.sort(key=when, reverse=True)
        return records[:limit]

    def audit(self, user: str | None, limit: int) -> list[AuditEvent]:
        """The newest `limit` audited calls (of `user`), newest first."""
        return self._audit.query(user=user, limit=limit)

    def deployments(self, endpoint: str, limit: int) -> list[DeploymentRow]:
        """The endpoint's latest `limit` deployments, newest first."""
        return deployment_history(self._state, endpoint, limit)

    def api_keys(self) -> list[StoredKey]:
        """The gateway's API keys, revoked ones too (never a key itself: only its digest)."""
        return self._api_keys.list_keys()

    def revoke_key(self, key_id: str) -> StoredKey | None:
        """Revoke the gateway key `key_id` now (None: no such key); the caller then tells the
        gateway to reload, as `pier keys revoke` does."""
        return self._api_keys.revoke(key_id, datetime.now(UTC))

    def key_usage(self, periods: list[str]) -> list[UsageCount]:
        """Every key's request counts per endpoint in `periods`, as last written by the gateway."""
        return self._api_keys.usage(periods, None)


__all__ = ["ConsoleCalls", "Invoked"]
