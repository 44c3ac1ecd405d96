"""`pier metrics NAME`: an endpoint's CloudWatch metrics in the terminal, per variant.

A client of the platform's CloudWatch API (boto3's `cloudwatch` client against `pier up`), like
users' own code: ListMetrics finds the variants, one GetMetricData per variant reads every
column. Light at import: boto3 loads inside the command.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape

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
    unless_gone,
)

NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
# (query id, namespace, metric, statistic): the columns, in order
COLUMNS = (
    ("invocations", NAMESPACE, "Invocations", "Sum"),
    ("errors_4xx", NAMESPACE, "Invocation4XXErrors", "Sum"),
    ("errors_5xx", NAMESPACE, "Invocation5XXErrors", "Sum"),
    ("model_errors", NAMESPACE, "InvocationModelErrors", "Sum"),
    ("model_latency_avg", NAMESPACE, "ModelLatency", "Average"),
    ("model_latency_max", NAMESPACE, "ModelLatency", "Maximum"),
    ("overhead_latency_avg", NAMESPACE, "OverheadLatency", "Average"),
    ("cpu_avg", INSTANCE_NAMESPACE, "CPUUtilization", "Average"),
    ("memory_avg", INSTANCE_NAMESPACE, "MemoryUtilization", "Average"),
)
_DURATION = re.compile(r"(\d+)\s*([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BARS = "▁▂▃▄▅▆▇█"


def parse_duration(text: str, option: str) -> int:
    """`90s`, `30m`, `1h`, `2d`, or several (`1h30m`), in seconds."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise fail(f"{option}: {text!r} is not a duration such as 30m, 1h or 2d", 2)
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def sparkline(values: list[float | None]) -> str:
    """One character per value, scaled to the largest; gaps as spaces."""
    top = max((v for v in values if v is not None), default=0.0)
    if top <= 0:
        return "".join(" " if v is None else _BARS[0] for v in values)
    return "".join(
        " " if v is None else _BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))]
        for v in values
    )


def _variants(cw: Any, name: str) -> list[str]:
    found: set[str] = set()
    for namespace in (NAMESPACE, INSTANCE_NAMESPACE):
        pages = cw.get_paginator("list_metrics").paginate(
            Namespace=namespace, Dimensions=[{"Name": "EndpointName", "Value": name}]
        )
        for page in pages:
            for m in page["Metrics"]:
                dims = {d["Name"]: d["Value"] for d in m["Dimensions"]}
                if "VariantName" in dims and "InstanceId" not in dims:
                    found.add(dims["VariantName"])
    return sorted(found)


def _series(
    cw: Any, name: str, variant: str, start: datetime, end: datetime, period: int
) -> dict[datetime, dict[str, float]]:
    dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant}]
    queries = [
        {"Id": qid, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": metric,
         "Dimensions": dims}, "Period": period, "Stat": stat}}
        for qid, ns, metric, stat in COLUMNS
    ]  # fmt: skip
    rows: dict[datetime, dict[str, float]] = {}
    for page in cw.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
    ):
        for result in page["MetricDataResults"]:
            for t, v in zip(result["Timestamps"], result["Values"], strict=True):
                rows.setdefault(t.astimezone(UTC), {})[result["Id"]] = v
    return dict(sorted(rows.items()))


def _count(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:,.2f}"


def _us(us: float | None) -> str:
    return "-" if us is None else f"{us:,.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def metrics(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    variant: Annotated[
        str | None, typer.Option("--variant", help="Only this variant (default: all).")
    ] = None,
    since: Annotated[str, typer.Option(help="How far back: 30m, 1h, 2d (default 1h).")] = "1h",
    period: Annotated[
        str, typer.Option(help="One row per period: 1m, 5m, 1h (a whole number of minutes).")
    ] = "1m",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an endpoint's metrics per variant: invocations, errors, latencies, CPU, memory.

    SageMaker's CloudWatch metrics as pier records them each minute (docs/monitoring.md);
    latencies are the period's average (and maximum) per request. CPU and memory show once
    their minute is over.
    """
    back = parse_duration(since, "--since")
    step = parse_duration(period, "--period")
    if step < 60 or step % 60:
        raise fail("--period: must be a whole number of minutes (1m, 5m, 1h)", 2)
    cw = connect(home, "cloudwatch")
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(seconds=back) - timedelta(minutes=1)
    with aws_errors():
        variants = [variant] if variant else _variants(cw, name)
        data = {v: _series(cw, name, v, start, end, step) for v in variants}
    if not any(data.values()):
        sm = connect(home)
        with aws_errors():
            exists = unless_gone(sm.describe_endpoint, EndpointName=name) is not None
        if not exists:
            raise fail(f"endpoint {name} does not exist (pier endpoints lists them)")
        raise fail(f"no metrics for endpoint {name} in the last {since} (no invocations yet?)")
    if as_json:
        print_json(
            {
                "EndpointName": name,
                "Period": step,
                "StartTime": start,
                "EndTime": end,
                "Variants": {
                    v: [{"Timestamp": t, **values} for t, values in rows.items()]
                    for v, rows in data.items()
                },
            }
        )
        return
    for v, rows in data.items():
        _print_variant(name, v, rows, step)


def _print_variant(
    name: str, variant: str, rows: dict[datetime, dict[str, float]], step: int
) -> None:
    fmt = "%H:%M" if len({t.date() for t in rows}) <= 1 else "%m-%d %H:%M"
    title = f"{escape(name)} / {escape(variant)} (per {step // 60} min)"
    table = compact("time (UTC)", title=title)
    for column in ("invocations", "4xx", "5xx", "model errors", "model ms avg", "model ms max",
                   "overhead µs avg", "CPU %", "memory %"):  # fmt: skip
        table.add_column(column, justify="right", overflow="fold")
    for t, r in rows.items():
        table.add_row(
            t.strftime(fmt), _count(r.get("invocations")), _count(r.get("errors_4xx")),
            _count(r.get("errors_5xx")), _count(r.get("model_errors")),
            _ms(r.get("model_latency_avg")), _ms(r.get("model_latency_max")),
            _us(r.get("overhead_latency_avg")), _pct(r.get("cpu_avg")),
            _pct(r.get("memory_avg")),
        )  # fmt: skip
    show(table)
    times = list(rows)
    if len(times) > 1:  # every period, gaps included, for the sparklines
        periods = int((times[-1] - times[0]).total_seconds()) // step + 1
        full = [times[0] + timedelta(seconds=step * i) for i in range(periods)]
        for label, key in (("invocations", "invocations"), ("model latency", "model_latency_avg")):
            line = sparkline([rows.get(t, {}).get(key) for t in full])
            out.print(f"  {label:<14} {line}")
