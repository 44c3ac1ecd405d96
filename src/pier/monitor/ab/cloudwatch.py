"""An endpoint's per-minute series per variant, read with boto3's `cloudwatch` client from pier's
CloudWatch-compatible API (or CloudWatch itself): Invocations, Invocation4XXErrors,
Invocation5XXErrors (Sum) and ModelLatency (SampleCount, Sum), one GetMetricData per variant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pier.monitor.ab.analysis import Minute

NAMESPACE = "AWS/SageMaker"
_QUERIES = (
    ("invocations", "Invocations", "Sum"),
    ("errors_4xx", "Invocation4XXErrors", "Sum"),
    ("errors_5xx", "Invocation5XXErrors", "Sum"),
    ("latency_count", "ModelLatency", "SampleCount"),
    ("latency_sum", "ModelLatency", "Sum"),
)


def variant_minutes(
    cw: Any, endpoint: str, variant: str, start: datetime, end: datetime
) -> dict[datetime, Minute]:
    """`variant`'s minutes in [start, end) that have data; botocore's errors as they come."""
    dims = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
    ]
    queries = [
        {
            "Id": qid,
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dims},
                "Period": 60,
                "Stat": stat,
            },
        }
        for qid, metric, stat in _QUERIES
    ]
    values: dict[datetime, dict[str, float]] = {}
    for page in cw.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
    ):
        for result in page["MetricDataResults"]:
            for t, v in zip(result["Timestamps"], result["Values"], strict=True):
                values.setdefault(t.astimezone(UTC), {})[result["Id"]] = float(v)
    return {
        t: Minute(
            invocations=row.get("invocations", 0.0),
            errors=row.get("errors_4xx", 0.0) + row.get("errors_5xx", 0.0),
            latency_count=row.get("latency_count", 0.0),
            latency_sum_us=row.get("latency_sum", 0.0),
        )
        for t, row in sorted(values.items())
    }


__all__ = ["variant_minutes"]
