"""CloudWatch's alarm operations on pier's store: PutMetricAlarm, DescribeAlarms,
DescribeAlarmsForMetric, DescribeAlarmHistory, DeleteAlarms, SetAlarmState,
EnableAlarmActions, DisableAlarmActions.

Served by the CloudWatch API (pier.platform.cloudwatch_api) beside the metric
operations. Inputs arrive checked against botocore's model (pier.contract.cloudwatch); the
rules of a metric alarm are pier.monitor.alarms.alarms', evaluation and actions the alarm runner's.

As on CloudWatch: a new alarm starts in INSUFFICIENT_DATA ("Unchecked: Initial alarm
creation") and is evaluated at once; PutMetricAlarm on an existing alarm replaces its
configuration and keeps its state; SetAlarmState's state holds until the next evaluation and
runs the new state's actions; DeleteAlarms deletes all the alarms named or, if one does not
exist, none. History items are kept two weeks, also for deleted alarms.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pier.contract.cloudwatch import (
    CloudWatchError,
    InvalidParameterCombination,
    InvalidParameterValue,
    LimitExceeded,
    MissingParameter,
    ResourceNotFound,
    ValidationError,
)
from pier.control import paging
from pier.monitor.alarms.actions import is_webhook
from pier.monitor.alarms.alarms import INITIAL_REASON, AlarmRuleError, AlarmState, rule_from_request
from pier.monitor.alarms.runner import AlarmRunner, AlarmTransition, state_update_entry
from pier.store.alarms import AlarmStore, HistoryEntry, StoredAlarm, history_json

__all__ = ["MAX_ALARMS", "CloudWatchAlarmService", "InvalidFormat", "alarm_arn"]

MAX_ALARMS = 5000  # CloudWatch's former per-region quota: a guard for the evaluation loop
DESCRIBE_PAGE = 50  # DescribeAlarms' default MaxRecords
HISTORY_PAGE = 100  # DescribeAlarmHistory's default MaxRecords

# Members of the request that are not the alarm's configuration
_NOT_CONFIGURATION = ("Tags",)


class InvalidFormat(CloudWatchError):
    shape = "InvalidFormatFault"
    code = "InvalidFormat"


_BY_CODE: dict[str, type[CloudWatchError]] = {
    "ValidationError": ValidationError,
    "MissingParameter": MissingParameter,
    "InvalidParameterCombination": InvalidParameterCombination,
    "InvalidParameterValue": InvalidParameterValue,
}


def alarm_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"


def _bad_token() -> InvalidNextToken:
    return InvalidNextToken("The service cannot find the NextToken you gave.")


def _history_after(params: Mapping[str, Any]) -> tuple[datetime, int] | None:
    """(timestamp, id) of the last history entry served, from DescribeAlarmHistory's token."""
    token = params.get("NextToken")
    if token is None:
        return None
    try:
        decoded = paging.decode(token)
        at, last = decoded  # a list: a dict of two keys would unpack too
        after = datetime.fromisoformat(at), int(last)
    except (paging.BadToken, TypeError, ValueError):
        raise _bad_token() from None
    if not isinstance(decoded, list) or after[0].tzinfo is None:
        raise _bad_token()
    return after


class InvalidNextToken(CloudWatchError):
    shape = "InvalidNextToken"
    code = "InvalidNextToken"


def _not_found(names: list[str]) -> ResourceNotFound:
    listed = ", ".join(names)
    return ResourceNotFound(
        f"{len(names)} alarm{'s' if len(names) > 1 else ''} not found: [{listed}]."
    )


class CloudWatchAlarmService:
    """The alarm half of pier's CloudWatch API (the metrics live in CloudWatchMetricsService)."""

    def __init__(
        self,
        store: AlarmStore,
        runner: AlarmRunner | None,
        *,
        region: str,
        account: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_alarms: int = MAX_ALARMS,
    ) -> None:
        self.store = store
        self.runner = runner
        self.region = region
        self.account = account
        self.clock = clock
        self.max_alarms = max_alarms

    # ----------------------------------------------------------------------- PutMetricAlarm
    def put_metric_alarm(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            rule_from_request(params)
        except AlarmRuleError as err:
            raise _BY_CODE.get(err.code, ValidationError)(err.message) from None
        for member in ("OKActions", "AlarmActions", "InsufficientDataActions"):
            for i, action in enumerate(params.get(member) or (), 1):
                if not (is_webhook(action) or action.startswith("arn:")):
                    raise ValidationError(
                        f"The value {action!r} for {member}.member.{i} is not an action pier "
                        "knows: give an https:// or http:// URL (a webhook, pier's extension) "
                        "or an ARN (accepted, not executed by pier)."
                    )
        name: str = params["AlarmName"]
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise InvalidParameterValue("AlarmName must not contain ASCII control characters.")
        now = self.clock()
        existing = self.store.get(name)
        request = dict(params)
        if existing is not None and "Tags" in existing.request:
            request["Tags"] = existing.request["Tags"]  # CloudWatch ignores Tags on updates
        elif existing is not None:
            request.pop("Tags", None)
        arn = alarm_arn(self.region, self.account, name)
        shown = _configuration(request)
        if existing is None:
            summary = f'Alarm "{name}" created'
            data: dict[str, Any] = {"version": "1.0", "type": "Create", "createdAlarm": shown}
        else:
            summary = f'Alarm "{name}" updated'
            data = {
                "version": "1.0",
                "type": "Update",
                "originalUpdatedAlarm": _configuration(existing.request),
                "updatedAlarm": shown,
            }
        entry = HistoryEntry(name, now, "ConfigurationUpdate", summary, history_json(data))
        done = self.store.create_or_update(
            name,
            arn,
            request,
            (AlarmState.INSUFFICIENT_DATA.value, INITIAL_REASON),
            now,
            entry,
            max_alarms=self.max_alarms,
        )
        if done is None:
            raise LimitExceeded(
                f"The maximum number of alarms ({self.max_alarms}) has been reached: "
                "delete alarms with DeleteAlarms before creating more."
            )
        if self.runner is not None:
            self.runner.wake()
        return {}

    # ------------------------------------------------------------------------ DescribeAlarms
    def describe_alarms(self, params: dict[str, Any]) -> dict[str, Any]:
        names = params.get("AlarmNames") or None  # an empty list filters nothing
        prefix = params.get("AlarmNamePrefix")
        if names and prefix:
            raise InvalidParameterCombination(
                "AlarmNames and AlarmNamePrefix cannot both be specified."
            )
        for member in ("ChildrenOfAlarmName", "ParentsOfAlarmName"):
            if params.get(member):
                raise InvalidParameterValue(
                    f"{member} is about composite alarms, which pier does not support yet."
                )
        types = params.get("AlarmTypes") or ["MetricAlarm"]
        found: list[StoredAlarm] = []
        if "MetricAlarm" in types:
            found = self.store.find(names=names, prefix=prefix, state=params.get("StateValue"))
        action_prefix = params.get("ActionPrefix")
        if action_prefix:
            found = [a for a in found if _has_action(a.request, action_prefix)]
        try:
            page = paging.keyset(
                found,
                lambda a: [a.name],
                next_token=params.get("NextToken"),
                size=int(params.get("MaxRecords") or DESCRIBE_PAGE),
                descending=False,
            )
        except paging.BadToken:
            raise _bad_token() from None
        return {
            "MetricAlarms": [self._metric_alarm(a) for a in page.items],
            "CompositeAlarms": [],
            **page.token_field(),
        }

    def describe_alarms_for_metric(self, params: dict[str, Any]) -> dict[str, Any]:
        dims = sorted((d["Name"], d["Value"]) for d in params.get("Dimensions") or ())
        out = []
        for alarm in self.store.find():
            r = alarm.request
            if (r.get("MetricName"), r.get("Namespace")) != (
                params["MetricName"],
                params["Namespace"],
            ):
                continue
            if sorted((d["Name"], d["Value"]) for d in r.get("Dimensions") or ()) != dims:
                continue
            if any(
                params.get(k) is not None and r.get(k) != params[k]
                for k in ("Statistic", "ExtendedStatistic", "Period", "Unit")
            ):
                continue
            out.append(self._metric_alarm(alarm))
        return {"MetricAlarms": out}

    def _metric_alarm(self, alarm: StoredAlarm) -> dict[str, Any]:
        r = alarm.request
        out: dict[str, Any] = {
            "AlarmName": alarm.name,
            "AlarmArn": alarm.arn,
            "AlarmDescription": r.get("AlarmDescription"),
            "AlarmConfigurationUpdatedTimestamp": alarm.configuration_updated_at,
            "ActionsEnabled": bool(r.get("ActionsEnabled", True)),
            "OKActions": list(r.get("OKActions") or ()),
            "AlarmActions": list(r.get("AlarmActions") or ()),
            "InsufficientDataActions": list(r.get("InsufficientDataActions") or ()),
            "StateValue": alarm.state,
            "StateReason": alarm.reason,
            "StateReasonData": alarm.reason_data,
            "StateUpdatedTimestamp": alarm.state_updated_at,
            "StateTransitionedTimestamp": alarm.state_updated_at,
            "Dimensions": list(r.get("Dimensions") or ()),
        }
        for member in (
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Period",
            "Unit",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "EvaluateLowSampleCountPercentile",
        ):
            if r.get(member) is not None:
                out[member] = r[member]
        return out

    # ------------------------------------------------------------------ DescribeAlarmHistory
    def describe_alarm_history(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("AlarmContributorId"):
            raise InvalidParameterValue(
                "AlarmContributorId is about multi-contributor (PromQL) alarms, which pier "
                "does not support."
            )
        types = params.get("AlarmTypes") or ["MetricAlarm", "CompositeAlarm"]
        if "MetricAlarm" not in types:
            return {"AlarmHistoryItems": []}
        start, end = params.get("StartDate"), params.get("EndDate")
        if start is not None and end is not None and start > end:
            raise InvalidParameterValue("StartDate must not be later than EndDate.")
        kind = params.get("HistoryItemType")
        after = _history_after(params)
        size = int(params.get("MaxRecords") or HISTORY_PAGE)
        items = self.store.history(
            name=params.get("AlarmName"),
            types=[kind] if kind else None,
            start=start,
            end=end,
            newest_first=params.get("ScanBy", "TimestampDescending") == "TimestampDescending",
            after=after,
            limit=size + 1,
        )
        out: dict[str, Any] = {
            "AlarmHistoryItems": [
                {
                    "AlarmName": h.alarm_name,
                    "AlarmType": "MetricAlarm",
                    "Timestamp": h.timestamp,
                    "HistoryItemType": h.type,
                    "HistorySummary": h.summary,
                    "HistoryData": h.data,
                }
                for h in items[:size]
            ]
        }
        if len(items) > size:
            last = items[size - 1]
            out["NextToken"] = paging.encode([last.timestamp.isoformat(), last.id])
        return out

    # -------------------------------------------------------------------------- DeleteAlarms
    def delete_alarms(self, params: dict[str, Any]) -> dict[str, Any]:
        names: list[str] = params.get("AlarmNames") or []
        now = self.clock()
        existing = {a.name: a for a in self.store.find(names=names)}
        history = [
            HistoryEntry(
                name,
                now,
                "ConfigurationUpdate",
                f'Alarm "{name}" deleted',
                history_json(
                    {
                        "version": "1.0",
                        "type": "Delete",
                        "deletedAlarm": _configuration(existing[name].request),
                    }
                ),
            )
            for name in dict.fromkeys(names)
            if name in existing
        ]
        missing = self.store.delete(names, history)
        if missing:
            raise _not_found(missing)
        return {}

    # ------------------------------------------------------------------------- SetAlarmState
    def set_alarm_state(self, params: dict[str, Any]) -> dict[str, Any]:
        name: str = params["AlarmName"]
        state: str = params["StateValue"]
        reason: str = params["StateReason"]
        data: str | None = params.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError as exc:
                raise InvalidFormat(f"StateReasonData is not valid JSON: {exc}.") from None
        now = self.clock()

        def entry(before: StoredAlarm) -> HistoryEntry | None:
            # Setting the state it is in changes the reason only: no history item, no action.
            if before.state == state:
                return None
            return state_update_entry(before, state, reason, data, now)

        changed = self.store.set_state(name, state, reason, data, now, entry)
        if changed is None:
            raise _not_found([name])
        before, after = changed
        if before.state != after.state and self.runner is not None:
            self.runner.submit(AlarmTransition.of(before, after, source="SetAlarmState"))
        return {}

    # --------------------------------------------------------------- Enable/DisableAlarmActions
    def enable_alarm_actions(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.set_actions_enabled(params.get("AlarmNames") or [], True)
        return {}

    def disable_alarm_actions(self, params: dict[str, Any]) -> dict[str, Any]:
        self.store.set_actions_enabled(params.get("AlarmNames") or [], False)
        return {}


def _configuration(request: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in _NOT_CONFIGURATION}


def _has_action(request: Mapping[str, Any], prefix: str) -> bool:
    return any(
        str(a).startswith(prefix)
        for member in ("OKActions", "AlarmActions", "InsufficientDataActions")
        for a in request.get(member) or ()
    )
