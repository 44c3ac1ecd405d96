"""`pier alarms [NAME] [--history] [--json]`: the platform's CloudWatch alarms, explained.

A client of the platform's CloudWatch API (boto3's `cloudwatch` against `pier up`), like
users' own code. Without NAME: one line per alarm (state, condition in words, last change,
reason). With NAME: what the alarm watches, when it fires, what it does, and its recent
history. `--history` lists history items (of NAME, or of every alarm).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel

from pier.cli.common import (
    HomeOption,
    JsonOption,
    aws_errors,
    compact,
    connect,
    fail,
    out,
    print_json,
    show,
    table,
)

RECENT = 10  # history items shown with NAME
HISTORY = 100  # with --history

_STATE_COLOR = {"OK": "green", "ALARM": "red", "INSUFFICIENT_DATA": "yellow"}
_MISSING = {
    "missing": "not counted; no data at all → INSUFFICIENT_DATA (CloudWatch's default)",
    "ignore": "not counted; too little data keeps the current state",
    "breaching": "counted as breaching the threshold",
    "notBreaching": "counted as within the threshold",
}
_ACTIONS = (
    ("ALARM", "AlarmActions"),
    ("OK", "OKActions"),
    ("INSUFFICIENT_DATA", "InsufficientDataActions"),
)


def alarms(
    name: Annotated[str | None, typer.Argument(help="An alarm's name: explain it.")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="List history items (of NAME, or of all alarms).")
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the platform's CloudWatch alarms, or explain one with its recent history."""
    cw = connect(home, "cloudwatch")
    with aws_errors():
        if name is None:
            found = [
                a
                for page in cw.get_paginator("describe_alarms").paginate()
                for a in page["MetricAlarms"]
            ]
        else:
            found = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
            if not found:
                raise fail(f"no alarm named {name!r} (pier alarms lists them)")
        items: list[dict[str, Any]] = []
        if name is not None or history:
            request: dict[str, Any] = {"MaxRecords": HISTORY if history else RECENT}
            if name is not None:
                request["AlarmName"] = name
            items = cw.describe_alarm_history(**request)["AlarmHistoryItems"]
    if as_json:
        if name is not None:
            print_json({**found[0], "History": items})
        elif history:
            print_json(items)
        else:
            print_json(found)
        return
    if name is not None:
        _explain(found[0])
        _history(items, "recent history" if not history else "history")
    elif history:
        _history(items, "history of every alarm", with_name=True)
    else:
        _list(found)


def _state(state: str) -> str:
    color = _STATE_COLOR.get(state, "white")
    return f"[{color}]{escape(state)}[/{color}]"


def _time(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _condition(alarm: dict[str, Any]) -> str:
    from pier.monitor.alarms.alarms import condition_in_words

    return condition_in_words(alarm)


def _list(found: list[dict[str, Any]]) -> None:
    if not found:
        out.print("no alarms")
        return
    listing = compact("alarm", "state", "condition", "last change", "reason", whole=("alarm",))
    for a in sorted(found, key=lambda a: a["AlarmName"]):
        listing.add_row(
            escape(a["AlarmName"]),
            _state(a["StateValue"]),
            escape(_condition(a)),
            _time(a.get("StateUpdatedTimestamp")),
            escape(a.get("StateReason", "")),
        )
    show(listing)


def _dimensions(alarm: dict[str, Any]) -> str:
    dims = ", ".join(f"{d['Name']}={d['Value']}" for d in alarm.get("Dimensions") or ())
    return f" ({dims})" if dims else ""


def _explain(a: dict[str, Any]) -> None:
    n = a.get("EvaluationPeriods", 1)
    m = a.get("DatapointsToAlarm") or n
    period = a.get("Period", 60)
    treat = a.get("TreatMissingData") or "missing"
    lines = [
        f"state       {_state(a['StateValue'])} since {_time(a.get('StateUpdatedTimestamp'))}",
        f"reason      {escape(a.get('StateReason', ''))}",
        f"metric      {escape(a.get('Namespace', '?'))} {escape(a.get('MetricName', '?'))}"
        + escape(_dimensions(a)),
        f"condition   {escape(_condition(a))}",
        f"fires when  at least {m} of the last {n} datapoints ({escape(str(a.get('Statistic')))} "
        f"over {period} s each) breach; OK when fewer do",
        f"missing     {escape(treat)}: {escape(_MISSING.get(treat, '?'))}",
    ]
    if a.get("AlarmDescription"):
        lines.insert(0, f"about       {escape(a['AlarmDescription'])}")
    enabled = a.get("ActionsEnabled", True)
    for state, member in _ACTIONS:
        for action in a.get(member) or ():
            lines.append(f"on {state:<17}{escape(action)}")
    if not any(a.get(member) for _, member in _ACTIONS):
        lines.append("actions     none (log lines only)")
    elif not enabled:
        lines.append("[yellow]actions are disabled[/yellow] (pier: EnableAlarmActions)")
    lines.append(f"arn         {escape(a.get('AlarmArn', ''))}")
    show(Panel("\n".join(lines), title=f"alarm {escape(a['AlarmName'])}", title_align="left"))


def _history(items: list[dict[str, Any]], title: str, with_name: bool = False) -> None:
    if not items:
        out.print(f"{title}: none")
        return
    columns = ["time", *(["alarm"] if with_name else []), "type", "summary"]
    listed = table(*columns, title=title, whole=("alarm",))
    for h in items:
        summary = h["HistorySummary"]
        if h["HistoryItemType"] == "StateUpdate":
            summary += ": " + _new_reason(h.get("HistoryData", ""))
        elif h["HistoryItemType"] == "Action":
            summary += _action_error(h.get("HistoryData", ""))
        row = [_time(h["Timestamp"]), *([h["AlarmName"]] if with_name else [])]
        listed.add_row(*row, h["HistoryItemType"], escape(summary))
    show(listed)


def _new_reason(data: str) -> str:
    try:
        return str(json.loads(data)["newState"]["stateReason"])
    except (ValueError, KeyError, TypeError):
        return ""


def _action_error(data: str) -> str:
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if error else ""
