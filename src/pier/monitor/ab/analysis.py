"""An endpoint's A/B experiment: each production variant against the control, per metric,
from per-minute data (pier's CloudWatch series and, when labelled, model quality per minute).

Each minute is one look: the arms' cumulative moments up to that minute go to
`pier.monitor.ab.sequential.compare`, so the interval reported is the intersection of every
minute's always-valid interval since the start of the window. Pure: the caller reads the data
(`pier.monitor.ab.cloudwatch` for the series, `pier.monitor.quality.job` for quality).

Metrics, each with the side that is better:
- error_rate: failed requests (Invocation4XXErrors + Invocation5XXErrors) per invocation,
  one Bernoulli observation per request; lower is better;
- latency: ModelLatency per request, in milliseconds, its variance from the spread of the
  per-minute averages (batch means: CloudWatch keeps no per-request values); lower is better;
- quality (where ground truth was uploaded and the endpoint captures data): accuracy for
  classification (Bernoulli per labelled row, higher is better), mean absolute error for
  regression (batch means over the minutes, lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pier.monitor.ab.sequential import ALPHA, PLAN, Comparison, Moments, compare
from pier.monitor.errors import MonitorError
from pier.monitor.quality.quality import BucketQuality, Problem

METRICS = ("error_rate", "latency", "quality")
METHOD = "mSPRT, normal mixture (Johari et al. 2017; Howard et al. 2021)"


@dataclass
class Minute:
    """One variant's CloudWatch minute: requests, failed requests, ModelLatency's samples and
    their sum (microseconds)."""

    invocations: float = 0.0
    errors: float = 0.0
    latency_count: float = 0.0
    latency_sum_us: float = 0.0


@dataclass
class QualityMinute:
    """One variant's labelled rows of a minute and their metric (accuracy or MAE)."""

    rows: float
    value: float


@dataclass(frozen=True)
class VariantSummary:
    """A variant over the window: invocations, error rate, mean latency (ms), quality."""

    name: str
    invocations: float
    error_rate: float | None
    latency_ms: float | None
    quality: float | None
    labelled_rows: float


@dataclass(frozen=True)
class MetricComparison:
    """One variant against the control on one metric."""

    variant: str
    metric: str
    lower_is_better: bool
    control_value: float | None
    variant_value: float | None
    comparison: Comparison


@dataclass
class Report:
    """The whole analysis of an endpoint."""

    endpoint: str
    control: str
    alpha: float
    quality_metric: str | None
    variants: list[VariantSummary] = field(default_factory=list)
    comparisons: list[MetricComparison] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (interval ends that are infinite as None)."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else x

        return {
            "EndpointName": self.endpoint,
            "Control": self.control,
            "Alpha": self.alpha,
            "Method": METHOD,
            "QualityMetric": self.quality_metric,
            "Variants": [
                {
                    "VariantName": v.name,
                    "Invocations": v.invocations,
                    "ErrorRate": v.error_rate,
                    "LatencyMs": v.latency_ms,
                    "Quality": v.quality,
                    "LabelledRows": v.labelled_rows,
                }
                for v in self.variants
            ],
            "Comparisons": [
                {
                    "VariantName": c.variant,
                    "Metric": c.metric,
                    "LowerIsBetter": c.lower_is_better,
                    "Control": c.control_value,
                    "Variant": c.variant_value,
                    "Difference": num(c.comparison.difference),
                    "Lower": num(c.comparison.lower),
                    "Upper": num(c.comparison.upper),
                    "PValue": c.comparison.p_value,
                    "Verdict": c.comparison.verdict.value,
                    "ControlObservations": c.comparison.n_control,
                    "VariantObservations": c.comparison.n_treatment,
                }
                for c in self.comparisons
            ],
        }


def quality_minutes(
    buckets: Sequence[BucketQuality], problem: Problem
) -> tuple[str, dict[str, dict[datetime, QualityMinute]]]:
    """Per-minute quality buckets (a QualityReport computed with bucket_seconds=60) as
    (metric name, variant → minute → rows and value); buckets without a value are left out."""
    name = "mae" if problem is Problem.REGRESSION else "accuracy"
    out: dict[str, dict[datetime, QualityMinute]] = {}
    for b in buckets:
        value = b.metrics.get(name)
        if value is None or not b.count:
            continue
        out.setdefault(b.variant, {})[b.start] = QualityMinute(float(b.count), float(value))
    return name, out


def analyse(
    endpoint: str,
    variants: Sequence[str],
    minutes: Mapping[str, Mapping[datetime, Minute]],
    *,
    control: str | None = None,
    metrics: Sequence[str] = METRICS,
    quality: tuple[str, Mapping[str, Mapping[datetime, QualityMinute]]] | None = None,
    alpha: float = ALPHA,
    plan: float = PLAN,
) -> Report:
    """Compare every variant of `variants` (production variants, in the endpoint's order)
    with `control` (default the first) on `metrics`. MonitorError when the control is not
    one of the variants or a metric is unknown."""
    if not variants:
        raise MonitorError(f"endpoint {endpoint} has no production variant")
    control = control or variants[0]
    if control not in variants:
        raise MonitorError(
            f"control {control!r} is not a production variant of {endpoint}: " + ", ".join(variants)
        )
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise MonitorError(f"unknown metric {unknown[0]!r}: choose from {', '.join(METRICS)}")
    quality_name, quality_data = quality if quality else (None, {})
    report = Report(endpoint, control, alpha, quality_name)
    for v in variants:
        report.variants.append(_summary(v, minutes.get(v, {}), quality_data.get(v, {})))
    summaries = {s.name: s for s in report.variants}
    for v in variants:
        if v == control:
            continue
        for metric in metrics:
            if metric == "quality" and quality_name is None:
                continue
            lower_is_better = metric != "quality" or quality_name == "mae"
            if metric == "quality":
                steps = _quality_steps(
                    quality_data.get(control, {}),
                    quality_data.get(v, {}),
                    bernoulli=quality_name == "accuracy",
                )
            else:
                steps = _steps(minutes.get(control, {}), minutes.get(v, {}), metric)
            result = compare(steps, lower_is_better=lower_is_better, alpha=alpha, plan=plan)
            value = _value_of(metric)
            report.comparisons.append(
                MetricComparison(
                    v,
                    metric,
                    lower_is_better,
                    value(summaries[control]),
                    value(summaries[v]),
                    result,
                )
            )
    return report


def _value_of(metric: str) -> Any:
    return {
        "error_rate": lambda s: s.error_rate,
        "latency": lambda s: s.latency_ms,
        "quality": lambda s: s.quality,
    }[metric]


def _summary(
    name: str, minutes: Mapping[datetime, Minute], quality: Mapping[datetime, QualityMinute]
) -> VariantSummary:
    calls = sum(m.invocations for m in minutes.values())
    errors = sum(m.errors for m in minutes.values())
    samples = sum(m.latency_count for m in minutes.values())
    latency = sum(m.latency_sum_us for m in minutes.values())
    rows = sum(q.rows for q in quality.values())
    return VariantSummary(
        name,
        calls,
        errors / calls if calls else None,
        latency / samples / 1000.0 if samples else None,
        sum(q.rows * q.value for q in quality.values()) / rows if rows else None,
        rows,
    )


def _moments(rows: list[Minute], metric: str) -> Moments:
    if metric == "error_rate":
        return Moments.bernoulli(sum(m.invocations for m in rows), sum(m.errors for m in rows))
    batches = [m for m in rows if m.latency_count > 0]
    return Moments.batch_means(
        [m.latency_count for m in batches],
        [m.latency_sum_us / m.latency_count / 1000.0 for m in batches],
    )


def _steps(
    control: Mapping[datetime, Minute], treatment: Mapping[datetime, Minute], metric: str
) -> list[tuple[Moments, Moments]]:
    """Cumulative moments at the end of each minute either arm has data for."""
    steps = []
    for t in sorted(set(control) | set(treatment)):
        c = [m for when, m in control.items() if when <= t]
        v = [m for when, m in treatment.items() if when <= t]
        steps.append((_moments(c, metric), _moments(v, metric)))
    return steps


def _quality_steps(
    control: Mapping[datetime, QualityMinute],
    treatment: Mapping[datetime, QualityMinute],
    *,
    bernoulli: bool,
) -> list[tuple[Moments, Moments]]:
    def moments(rows: list[QualityMinute]) -> Moments:
        if bernoulli:
            return Moments.bernoulli(sum(q.rows for q in rows), sum(q.rows * q.value for q in rows))
        return Moments.batch_means([q.rows for q in rows], [q.value for q in rows])

    steps = []
    for t in sorted(set(control) | set(treatment)):
        c = [q for when, q in control.items() if when <= t]
        v = [q for when, q in treatment.items() if when <= t]
        steps.append((moments(c), moments(v)))
    return steps


__all__ = [
    "METHOD",
    "METRICS",
    "MetricComparison",
    "Minute",
    "QualityMinute",
    "Report",
    "VariantSummary",
    "analyse",
    "quality_minutes",
]
