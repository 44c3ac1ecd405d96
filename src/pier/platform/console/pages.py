"""What each console page shows, gathered from the platform's operations (ConsoleCalls).

Plain functions from the calls to dicts the templates render; no HTTP here. Each blocks on
the store or on files: the console runs them in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pier.errors import PierError
from pier.hosting.model_local import local_model_dir
from pier.platform.console.calls import ConsoleCalls
from pier.platform.console.charts import PERIOD_S, RANGES, Chart, Line, chart, minute
from pier.platform.console.signature import InvokeForm, read_form
from pier.store.api_keys import StoredKey

# ResolvedImage of a variant deployed from the registry: `pier/mlflow-pyfunc@models:/name/3`
_VERSION = re.compile(r"models:/(?P<name>[^/@,]+)/(?P<version>\d+)")
CAPTURE_LIMIT = 20
HISTORY_LIMIT = 50
DEPLOYMENTS_LIMIT = 10
AUDIT_LIMIT = 200


def when(epoch: float | datetime | None) -> str:
    """A timestamp as the console prints it (UTC, to the second)."""
    if epoch is None:
        return "-"
    t = epoch if isinstance(epoch, datetime) else datetime.fromtimestamp(float(epoch), UTC)
    if t.tzinfo is None:  # the state store's times are UTC (SQLite keeps them naive)
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pages(calls: ConsoleCalls, operation: str, key: str, **params: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        extra = {"NextToken": token} if token else {}
        page = calls.sagemaker(operation, **params, **extra)
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def versions(variant: dict[str, Any], mlflow_url: str | None) -> list[dict[str, str]]:
    """The registry versions a variant serves, each with its page in the MLflow UI."""
    out = []
    for image in variant.get("DeployedImages", []):
        for m in _VERSION.finditer(image.get("ResolvedImage", "")):
            name, version = m["name"], m["version"]
            url = (
                f"{mlflow_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"
                if mlflow_url
                else ""
            )
            out.append({"text": f"{name} v{version}", "url": url})
    return out


def _variants(described: dict[str, Any], mlflow_url: str | None) -> list[dict[str, Any]]:
    return [
        {
            "name": v["VariantName"],
            "weight": v.get("CurrentWeight", 0.0),
            "desired_weight": v.get("DesiredWeight", 0.0),
            "instances": v.get("CurrentInstanceCount", 0),
            "desired_instances": v.get("DesiredInstanceCount", 0),
            "status": [s.get("Status", "") for s in v.get("VariantStatus", [])],
            "versions": versions(v, mlflow_url),
        }
        for v in described.get("ProductionVariants", [])
    ]


def endpoints(calls: ConsoleCalls, mlflow_url: str | None) -> list[dict[str, Any]]:
    """Every endpoint with its status and variants (ListEndpoints, DescribeEndpoint)."""
    rows = []
    for e in _pages(
        calls, "ListEndpoints", "Endpoints", MaxResults=100, SortBy="Name", SortOrder="Ascending"
    ):
        try:
            d = calls.sagemaker("DescribeEndpoint", EndpointName=e["EndpointName"])
        except PierError:  # deleted between the list and the describe
            d = None
        if d is None:
            continue
        rows.append(
            {
                "name": d["EndpointName"],
                "status": d["EndpointStatus"],
                "config": d["EndpointConfigName"],
                "modified": when(d.get("LastModifiedTime")),
                "variants": _variants(d, mlflow_url),
                "failure": d.get("FailureReason", ""),
            }
        )
    return rows


def endpoint(calls: ConsoleCalls, name: str, mlflow_url: str | None) -> dict[str, Any]:
    """One endpoint: variants, instances with health and log tails, its deployment."""
    d = calls.sagemaker("DescribeEndpoint", EndpointName=name)
    config: dict[str, Any] = {}
    try:
        config = calls.sagemaker(
            "DescribeEndpointConfig", EndpointConfigName=d["EndpointConfigName"]
        )
    except Exception:
        config = {}  # the config was deleted: the endpoint keeps running it
    planned = {v["VariantName"]: v for v in config.get("ProductionVariants", [])}
    variants = _variants(d, mlflow_url)
    for v in variants:
        plan = planned.get(v["name"], {})
        v["model"] = plan.get("ModelName", "")
        v["instance_type"] = plan.get("InstanceType", "")
    instances = [
        {
            "id": i.spec.instance_id,
            "variant": i.spec.variant,
            "state": str(i.state),
            "started": when(i.started_at),
            "model": i.spec.model_path,
            "fleet": i.spec.fleet,
            "failure": i.failure or "",
            "log": calls.log_tail(i),
        }
        for i in calls.instances(name)
    ]
    pending = d.get("PendingDeploymentSummary")
    history = [
        {"when": when(d.get("CreationTime")), "what": "created"},
    ]
    if d.get("LastModifiedTime") != d.get("CreationTime"):
        history.append(
            {
                "when": when(d.get("LastModifiedTime")),
                "what": f"last change; now on config {d['EndpointConfigName']}",
            }
        )
    if pending:
        history.append(
            {
                "when": when(pending.get("StartTime")),
                "what": f"updating to config {pending.get('EndpointConfigName', '')}",
            }
        )
    capture = d.get("DataCaptureConfig") or {}
    return {
        "name": d["EndpointName"],
        "arn": d["EndpointArn"],
        "status": d["EndpointStatus"],
        "config": d["EndpointConfigName"],
        "created": when(d.get("CreationTime")),
        "modified": when(d.get("LastModifiedTime")),
        "failure": d.get("FailureReason", ""),
        "variants": variants,
        "instances": instances,
        "history": history,
        "deployments": [
            {
                "from": r.from_config,
                "to": r.to_config,
                "policy": r.policy,
                "started": when(r.started_at),
                "ended": when(r.ended_at),
                "status": r.status,
                "reason": r.reason or "",
            }
            for r in calls.deployments(name, DEPLOYMENTS_LIMIT)
        ],
        "pending": pending,
        "capture": capture,
        "alarms": _endpoint_alarms(calls, name),
    }


def _endpoint_alarms(calls: ConsoleCalls, name: str) -> list[dict[str, Any]]:
    found = calls.cloudwatch("DescribeAlarms", MaxRecords=100).get("MetricAlarms", [])
    return [
        {"name": a["AlarmName"], "state": a.get("StateValue", ""), "metric": a.get("MetricName")}
        for a in found
        if any(
            dim.get("Name") == "EndpointName" and dim.get("Value") == name
            for dim in a.get("Dimensions", [])
        )
    ]


_METRICS = (
    ("Invocations", "Invocations", "count", [("Invocations", "Sum", "s-main")], True),
    (
        "Errors",
        "Errors (4XX / 5XX)",
        "count",
        [("Invocation4XXErrors", "Sum", "s-warn"), ("Invocation5XXErrors", "Sum", "s-bad")],
        True,
    ),
    ("ModelLatency", "ModelLatency", "µs, average", [("ModelLatency", "Average", "s-main")], False),
    (
        "OverheadLatency",
        "OverheadLatency",
        "µs, average",
        [("OverheadLatency", "Average", "s-main")],
        False,
    ),
)


def charts(calls: ConsoleCalls, name: str, span: str) -> list[dict[str, Any]]:
    """Per variant, its Invocations, errors, ModelLatency and OverheadLatency over `span`
    (1-minute points from GetMetricData, AWS/SageMaker)."""
    d = calls.sagemaker("DescribeEndpoint", EndpointName=name)
    variants = [v["VariantName"] for v in d.get("ProductionVariants", [])]
    end = minute(datetime.now(UTC)) + PERIOD_S
    start = end - RANGES[span]
    queries = []
    for vi, variant in enumerate(variants):
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant}]
        for mi, (_, _, _, series, _) in enumerate(_METRICS):
            for si, (metric, stat, _) in enumerate(series):
                queries.append(
                    {
                        "Id": f"v{vi}m{mi}s{si}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/SageMaker",
                                "MetricName": metric,
                                "Dimensions": dims,
                            },
                            "Period": PERIOD_S,
                            "Stat": stat,
                        },
                    }
                )
    results: dict[str, dict[int, float]] = {}
    if queries:
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            page = calls.cloudwatch(
                "GetMetricData",
                MetricDataQueries=queries,
                StartTime=datetime.fromtimestamp(start, UTC),
                EndTime=datetime.fromtimestamp(end, UTC),
                **extra,
            )
            for r in page.get("MetricDataResults", []):
                points = results.setdefault(r["Id"], {})
                for t, v in zip(r.get("Timestamps", []), r.get("Values", []), strict=False):
                    points[minute(t)] = float(v)
            token = page.get("NextToken")
            if not token:
                break
    out = []
    for vi, variant in enumerate(variants):
        drawn: list[Chart] = []
        for mi, (_, title, unit, series, counts) in enumerate(_METRICS):
            lines = [
                Line(metric, css, results.get(f"v{vi}m{mi}s{si}", {}), counts)
                for si, (metric, _, css) in enumerate(series)
            ]
            drawn.append(chart(title, unit, lines, start, end))
        out.append({"variant": variant, "charts": drawn})
    return out


def model_dir(calls: ConsoleCalls, name: str, variant: str | None, cache: Path) -> Path | None:
    """The local directory of the model a variant serves (the first variant by default):
    a running instance's, else the one its endpoint config names."""
    for i in calls.instances(name):
        if variant in (None, i.spec.variant) and i.spec.model_path:
            return local_model_dir(i.spec.model_path, cache)
    d = calls.sagemaker("DescribeEndpoint", EndpointName=name)
    config = calls.sagemaker("DescribeEndpointConfig", EndpointConfigName=d["EndpointConfigName"])
    for v in config.get("ProductionVariants", []):
        if variant in (None, v["VariantName"]):
            model = calls.sagemaker("DescribeModel", ModelName=v["ModelName"])
            container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
            url = container.get("ModelDataUrl")
            return local_model_dir(url, cache) if url else None
    return None


def invoke_form(calls: ConsoleCalls, name: str, variant: str | None, cache: Path) -> InvokeForm:
    """The invoke form of the model behind the endpoint (or one of its variants)."""
    found = model_dir(calls, name, variant, cache)
    return read_form(found) if found is not None else InvokeForm()


def capture(calls: ConsoleCalls, name: str) -> dict[str, Any]:
    """The latest data-capture records of an endpoint (its DataCaptureConfig's destination)."""
    d = calls.sagemaker("DescribeEndpoint", EndpointName=name)
    config = d.get("DataCaptureConfig") or {}
    destination = config.get("DestinationS3Uri")
    records = calls.captured(name, destination, CAPTURE_LIMIT) if destination else []
    rows = []
    for r in records:
        data = r.get("captureData") or {}
        meta = r.get("eventMetadata") or {}
        rows.append(
            {
                "time": str(meta.get("inferenceTime", "")),
                "id": str(meta.get("eventId", "")),
                "variant": str(r.get("variantName") or meta.get("variantName") or ""),
                "input": _payload(data.get("endpointInput")),
                "output": _payload(data.get("endpointOutput")),
            }
        )
    return {"name": name, "config": config, "records": rows}


def _payload(part: Any) -> str:
    if not isinstance(part, dict):
        return ""
    text = str(part.get("data", ""))
    if part.get("encoding") == "BASE64":
        with contextlib.suppress(binascii.Error, ValueError):
            text = base64.b64decode(text).decode("utf-8", "replace")
    return text if len(text) <= 600 else text[:600] + " …"


def monitoring(calls: ConsoleCalls) -> list[dict[str, Any]]:
    """Every monitoring schedule with its latest execution: drift per feature, violations."""
    out = []
    for s in _pages(
        calls, "ListMonitoringSchedules", "MonitoringScheduleSummaries", MaxResults=100
    ):
        name = s["MonitoringScheduleName"]
        latest = calls.report(name)
        execution = latest.get("Execution") or {}
        report = execution.get("Report") or {}
        out.append(
            {
                "name": name,
                "endpoint": latest.get("EndpointName", ""),
                "status": latest.get("MonitoringScheduleStatus", ""),
                "execution": execution.get("MonitoringExecutionStatus", ""),
                "when": when(execution.get("ScheduledTime")) if execution else "-",
                "failure": execution.get("FailureReason", ""),
                "features": report.get("features") or [],
                "violations": report.get("violations") or [],
                "output": execution.get("OutputUri", ""),
            }
        )
    return out


def alarms(calls: ConsoleCalls) -> list[dict[str, Any]]:
    """Every metric alarm with its state (DescribeAlarms)."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        extra = {"NextToken": token} if token else {}
        page = calls.cloudwatch("DescribeAlarms", MaxRecords=100, **extra)
        out.extend(_alarm(a) for a in page.get("MetricAlarms", []))
        token = page.get("NextToken")
        if not token:
            return out


def _alarm(a: dict[str, Any]) -> dict[str, Any]:
    dims = ", ".join(f"{d['Name']}={d['Value']}" for d in a.get("Dimensions", []))
    return {
        "name": a["AlarmName"],
        "state": a.get("StateValue", ""),
        "reason": a.get("StateReason", ""),
        "updated": when(a.get("StateUpdatedTimestamp")),
        "metric": f"{a.get('Namespace', '')} {a.get('MetricName', '')}".strip(),
        "dimensions": dims,
        "condition": (
            f"{a.get('Statistic') or a.get('ExtendedStatistic', '')} "
            f"{a.get('ComparisonOperator', '')} {a.get('Threshold', '')} "
            f"for {a.get('EvaluationPeriods', '')} × {a.get('Period', '')} s"
        ),
    }


def alarm(calls: ConsoleCalls, name: str) -> dict[str, Any] | None:
    """One alarm and its state history (DescribeAlarms, DescribeAlarmHistory); None if gone."""
    found = calls.cloudwatch("DescribeAlarms", AlarmNames=[name]).get("MetricAlarms", [])
    if not found:
        return None
    history = calls.cloudwatch(
        "DescribeAlarmHistory", AlarmName=name, MaxRecords=HISTORY_LIMIT
    ).get("AlarmHistoryItems", [])
    return {
        **_alarm(found[0]),
        "history": [
            {
                "when": when(h.get("Timestamp")),
                "type": h.get("HistoryItemType", ""),
                "summary": h.get("HistorySummary", ""),
            }
            for h in history
        ],
    }


__all__ = [
    "alarm",
    "alarms",
    "capture",
    "charts",
    "endpoint",
    "endpoints",
    "invoke_form",
    "monitoring",
    "when",
]


def audit(calls: ConsoleCalls, user: str | None) -> list[dict[str, Any]]:
    """The latest AUDIT_LIMIT audited calls (of `user`), newest first."""
    return [
        {
            "at": when(e.at),
            "user": e.user,
            "key_id": e.key_id,
            "source": e.source,
            "operation": e.operation,
            "resource": e.resource or "",
            "status": e.status,
            "error": e.error_code or "",
        }
        for e in calls.audit(user, AUDIT_LIMIT)
    ]


def _plan(k: StoredKey) -> str:
    parts = []
    if k.rate is not None:
        parts.append(f"{k.rate:g}/s burst {k.burst if k.burst is not None else max(1, k.rate):g}")
    if k.quota_day is not None:
        parts.append(f"{k.quota_day}/day")
    if k.quota_month is not None:
        parts.append(f"{k.quota_month}/month")
    return ", ".join(parts) or "no limits"


def api_keys(calls: ConsoleCalls) -> dict[str, Any]:
    """The gateway's keys (as `pier keys list` shows them) and their requests per endpoint
    today and this month, UTC (as `pier keys usage`, from the counts the gateway last wrote)."""
    now = datetime.now(UTC)
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    keys = calls.api_keys()
    names = {k.key_id: k.name for k in keys}
    usage: dict[tuple[str, str], dict[str, Any]] = {}
    for c in calls.key_usage([day, month]):
        row = usage.setdefault(
            (c.key_id, c.endpoint),
            {"key_id": c.key_id, "name": names.get(c.key_id, ""), "endpoint": c.endpoint,
             "today": 0, "throttled": 0, "month": 0},
        )  # fmt: skip
        if c.period == day:
            row["today"], row["throttled"] = c.requests, c.throttled
        else:
            row["month"] = c.requests
    return {
        "day": day,
        "month": month,
        "keys": [
            {
                "key_id": k.key_id,
                "name": k.name,
                "endpoints": ", ".join(sorted(k.endpoints)) if k.endpoints is not None else "all",
                "plan": _plan(k),
                "created": when(k.created_at),
                "revoked": when(k.revoked_at) if k.revoked_at else "",
            }
            for k in keys
        ],
        "usage": [usage[k] for k in sorted(usage)],
    }
