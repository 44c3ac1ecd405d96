"""`pier ab ENDPOINT`: each production variant against the control, safe to read as often as
one likes (an always-valid interval per metric; docs/ab.md).

A client of the platform like users' code: DescribeEndpoint for the variants, pier's CloudWatch
API for the per-minute series, and (when the endpoint captures data and ground truth was
uploaded) the quality job that `pier quality` runs, per minute. The statistics are
pier.monitor.ab's.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pier.cli.common import (
    HomeOption,
    JsonOption,
    aws_errors,
    connect,
    fail,
    out,
    platform_settings,
    print_json,
)
from pier.cli.ground_truth_command import ProblemType, parse_duration

if TYPE_CHECKING:
    from pier.monitor.ab.analysis import Report


def ab(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose variants are compared.")],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", help="error_rate, latency or quality (repeatable; default: all three)."
        ),
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="The control variant (default: the first).")
    ] = None,
    since: Annotated[
        str, typer.Option(help="Start of the experiment, as a duration back: 30m, 24h, 7d.")
    ] = "24h",
    alpha: Annotated[
        float, typer.Option(help="The false-decision rate, however often one looks.")
    ] = 0.05,
    problem: Annotated[
        ProblemType,
        typer.Option(help="Quality: what the model predicts.", case_sensitive=False),
    ] = ProblemType.regression,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Compare each production variant with the control: invocations, error rate, latency and
    (with ground truth) model quality, with an always-valid confidence interval and a verdict
    per metric (mSPRT; docs/ab.md)."""
    from pier.monitor.ab.analysis import METRICS, analyse
    from pier.monitor.ab.cloudwatch import variant_minutes
    from pier.monitor.errors import MonitorError

    window = parse_duration(since, "--since")
    if not 0 < alpha < 1:
        raise fail(f"--alpha {alpha}: a probability between 0 and 1, such as 0.05", 2)
    metrics = tuple(metric or METRICS)
    for m in metrics:
        if m not in METRICS:
            raise fail(f"--metric {m!r}: choose from {', '.join(METRICS)}", 2)
    sm = connect(home)
    cw = connect(home, "cloudwatch")
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(seconds=window) - timedelta(minutes=1)
    with aws_errors():
        described = sm.describe_endpoint(EndpointName=endpoint)
        variants = [v["VariantName"] for v in described.get("ProductionVariants", [])]
        minutes = {v: variant_minutes(cw, endpoint, v, start, end) for v in variants}
    quality = None
    if "quality" in metrics:
        quality = _quality(endpoint, described, problem, window, home)
    try:
        report = analyse(
            endpoint,
            variants,
            minutes,
            control=control,
            metrics=metrics,
            quality=quality,
            alpha=alpha,
        )
    except MonitorError as exc:
        raise fail(exc.message, 2) from None
    if as_json:
        print_json({"Since": start, **report.to_dict()})
        return
    _print(report, since)


def _quality(
    endpoint: str, described: dict[str, Any], problem: ProblemType, window: float, home: Any
) -> Any:
    """Per-minute quality of each variant, or None when the endpoint captures nothing or no
    ground truth joins its captures."""
    from pier.monitor.ab.analysis import quality_minutes
    from pier.monitor.capture.capture import default_base
    from pier.monitor.quality.ground_truth import store_for_home
    from pier.monitor.quality.job import run_quality
    from pier.monitor.quality.quality import Problem, QualityOptions

    destination = (described.get("DataCaptureConfig") or {}).get("DestinationS3Uri")
    if not destination:
        return None
    settings = platform_settings(home=home)
    try:
        store = store_for_home(settings.home, settings.ground_truth_uri)
    except ValueError as exc:
        raise fail(str(exc)) from None
    now = time.time()
    options = QualityOptions(problem=Problem(problem.value), bucket_seconds=60)
    with aws_errors():
        try:
            run = run_quality(
                endpoint,
                destination,
                default_base(settings.home),
                store,
                options,
                now - window,
                now,
            )
        except ValueError as exc:  # QualityError included: the captures cannot be scored
            raise fail(f"quality: {exc}") from None
    name, data = quality_minutes(run.report.buckets, options.problem)
    return (name, data) if data else None


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


_FORMATS = {"error_rate": ".4f", "latency": ".3f", "quality": ".4f"}
_VERDICT_STYLE = {"better": "green", "worse": "red", "no decision yet": "yellow"}


def _print(report: Report, since: str) -> None:
    table = Table(
        title=f"{escape(report.endpoint)}: variants over the last {since} "
        f"(control {escape(report.control)})",
        title_justify="left",
    )
    quality = report.quality_metric
    for column in (
        "variant",
        "invocations",
        "error rate",
        "latency ms",
        *([quality] if quality else []),
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in report.variants:
        row = [
            escape(v.name),
            _num(v.invocations, ",.0f"),
            _num(v.error_rate, ".4f"),
            _num(v.latency_ms, ".3f"),
        ]
        if quality:
            row.append(_num(v.quality, ".4f"))
        table.add_row(*row)
    out.print(table)
    if not report.comparisons:
        out.print("Only one production variant: nothing to compare.")
        return
    level = round((1 - report.alpha) * 100, 2)
    cmp = Table(
        title=f"Against {escape(report.control)}: difference (variant − control), "
        f"always-valid {level:g}% interval",
        title_justify="left",
    )
    for column in ("variant", "metric", "difference", "interval", "p (always valid)", "verdict"):
        cmp.add_column(
            column, justify="right" if column in ("difference", "p (always valid)") else "left"
        )
    for c in report.comparisons:
        fmt = _FORMATS[c.metric]
        name = quality if c.metric == "quality" and quality else c.metric
        r = c.comparison
        style = _VERDICT_STYLE[r.verdict.value]
        cmp.add_row(
            escape(c.variant),
            name,
            _num(r.difference, "+" + fmt),
            f"[{_num(r.lower, fmt)}, {_num(r.upper, fmt)}]",
            f"{r.p_value:.4f}",
            f"[{style}]{r.verdict.value}[/{style}]",
        )
    out.print(cmp)
    out.print(
        "[dim]mSPRT (normal mixture): the interval and verdict stay valid however often you "
        "run this; see docs/ab.md[/dim]"
    )


__all__ = ["ab"]
