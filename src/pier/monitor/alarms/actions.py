"""What an alarm does when its state changes: the notification, webhooks, history entries.

CloudWatch's actions are ARNs (SNS topics, Auto Scaling policies, EC2 actions); pier cannot
reach them. As an extension, an action may be an `https://` or `http://` URL: pier POSTs the
notification an SNS topic subscriber would get from CloudWatch (a JSON object with AlarmName,
NewStateValue, NewStateReason, StateChangeTime, OldStateValue, Trigger, ...), with a timeout,
retried with back-off, and records each outcome in the alarm's history as an `Action` item
(`Successfully executed action ...` / `Failed to execute action ...`), as CloudWatch does. An
ARN is accepted (templates written for AWS keep working) and recorded as failed, saying why.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from pier.monitor.alarms.alarms import iso_millis

__all__ = [
    "ActionOutcome",
    "WebhookSender",
    "action_history_data",
    "actions_for",
    "is_webhook",
    "notification",
]

log = logging.getLogger("pier.alarms")

WEBHOOK_SCHEMES = ("https://", "http://")


def is_webhook(action: str) -> bool:
    return action.lower().startswith(WEBHOOK_SCHEMES)


def actions_for(request: Mapping[str, Any], state: str) -> list[str]:
    """The actions a transition *into* `state` runs."""
    member = {
        "ALARM": "AlarmActions",
        "OK": "OKActions",
        "INSUFFICIENT_DATA": "InsufficientDataActions",
    }[state]
    return [str(a) for a in request.get(member) or ()]


def notification(
    request: Mapping[str, Any],
    *,
    arn: str,
    account: str,
    region: str,
    old_state: str,
    new_state: str,
    reason: str,
    changed_at: datetime,
    configuration_updated_at: datetime,
) -> dict[str, Any]:
    """The JSON CloudWatch publishes to an SNS topic for a state change."""
    statistic = request.get("Statistic")
    return {
        "AlarmName": request["AlarmName"],
        "AlarmDescription": request.get("AlarmDescription"),
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": iso_millis(configuration_updated_at),
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": iso_millis(changed_at),
        "Region": region,
        "AlarmArn": arn,
        "OldStateValue": old_state,
        "OKActions": list(request.get("OKActions") or ()),
        "AlarmActions": list(request.get("AlarmActions") or ()),
        "InsufficientDataActions": list(request.get("InsufficientDataActions") or ()),
        "Trigger": {
            "MetricName": request.get("MetricName"),
            "Namespace": request.get("Namespace"),
            "StatisticType": "Statistic",
            "Statistic": statistic.upper() if isinstance(statistic, str) else None,
            "Unit": request.get("Unit"),
            "Dimensions": [
                {"value": d["Value"], "name": d["Name"]} for d in request.get("Dimensions") or ()
            ],
            "Period": request.get("Period"),
            "EvaluationPeriods": request.get("EvaluationPeriods"),
            "DatapointsToAlarm": request.get("DatapointsToAlarm")
            or request.get("EvaluationPeriods"),
            "ComparisonOperator": request.get("ComparisonOperator"),
            "Threshold": request.get("Threshold"),
            "TreatMissingData": request.get("TreatMissingData") or "missing",
            "EvaluateLowSampleCountPercentile": request.get("EvaluateLowSampleCountPercentile")
            or "",
        },
    }


@dataclass(frozen=True)
class ActionOutcome:
    action: str
    succeeded: bool
    attempts: int
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.succeeded:
            return f"Successfully executed action {self.action}"
        return f"Failed to execute action {self.action}"


def action_history_data(
    outcome: ActionOutcome, changed_at: datetime, message: Mapping[str, Any]
) -> dict[str, Any]:
    """HistoryData of an Action item, CloudWatch's fields plus pier's `attempts`/`error`."""
    data: dict[str, Any] = {
        "actionState": "Succeeded" if outcome.succeeded else "Failed",
        "stateUpdateTimestamp": int(changed_at.timestamp() * 1000),
        "notificationResource": outcome.action,
        "publishedMessage": json.dumps(message, separators=(",", ":")),
    }
    if outcome.attempts:
        data["attempts"] = outcome.attempts
    if outcome.error is not None:
        data["error"] = outcome.error
    return data


class WebhookSender:
    """POSTs notifications to URLs: `tries` attempts, each with `timeout_s`, waiting
    `backoff_s`, then twice that, between them. A 2xx answer is success; anything else (other
    statuses, connection errors, timeouts) is retried, then reported as a failure."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        tries: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if tries < 1:
            raise ValueError("tries must be at least 1")
        self.timeout_s = timeout_s
        self.tries = tries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._client = httpx.AsyncClient(
            timeout=timeout_s, transport=transport, follow_redirects=False
        )

    async def send(self, url: str, message: Mapping[str, Any]) -> ActionOutcome:
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "user-agent": "pier-alarms",
            "x-pier-alarm-name": _header_safe(str(message.get("AlarmName", ""))),
        }
        error = ""
        for attempt in range(1, self.tries + 1):
            try:
                answer = await self._client.post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                error = f"timed out after {self.timeout_s:g} s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if 200 <= answer.status_code < 300:
                    return ActionOutcome(url, True, attempt)
                error = f"HTTP {answer.status_code}"
            log.warning("alarm webhook %s, attempt %d of %d: %s", url, attempt, self.tries, error)
            if attempt < self.tries:
                await self._sleep(self.backoff_s * 2 ** (attempt - 1))
        return ActionOutcome(url, False, self.tries, error)

    async def aclose(self) -> None:
        await self._client.aclose()


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")


def unreachable(action: str) -> ActionOutcome:
    """An ARN action: accepted, not executed."""
    return ActionOutcome(
        action,
        False,
        0,
        "pier cannot execute AWS ARN actions; use an https:// or http:// URL (a webhook)",
    )
