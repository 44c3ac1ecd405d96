"""One monitoring execution: captured window → profile → checks against the baseline → files.

What SageMaker's model-monitor container does in a data-quality processing job, in process:

1. read the endpoint's captured requests of ``[start, end)`` (:mod:`pier.monitor.capture.captured`);
2. profile them with mergeable sketches (:mod:`pier.monitor.stats.profile`);
3. compare with the baseline (:mod:`pier.monitor.stats.drift`) and check its constraints
   (:mod:`pier.monitor.stats.violations`);
4. write ``statistics.json`` and ``constraint_violations.json`` into the output location,
   ``{S3Output}/{endpoint}/{schedule}/yyyy/mm/dd/hh/`` as SageMaker lays it out (a local
   directory or S3).

The outcome's status is SageMaker's: ``Completed``, ``CompletedWithViolations`` or ``Failed``
(``Job inputs had no data`` when the window holds no captured request, as SageMaker says).
Its :meth:`Outcome.report` is what ``pier monitor report`` shows; :meth:`Outcome.data_metrics`
the values SageMaker publishes to CloudWatch (``feature_baseline_drift_<feature>`` in
``aws/sagemaker/Endpoints/data-metrics``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from pier.monitor.capture.captured import ReadStats, read_window
from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import Baseline, read_baseline, statistics_from_profile
from pier.monitor.stats.drift import DriftReport, compare
from pier.monitor.stats.formats import ConstraintViolations, to_dict
from pier.monitor.stats.profile import profile_frame
from pier.monitor.stats.violations import VIOLATIONS_FILE, check
from pier.storage import Location, S3ClientFactory, S3Location, child, s3_client

STATISTICS_FILE = "statistics.json"
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
VIOLATIONS_METRIC = "constraint_violations"  # pier's: SageMaker publishes per feature only
MODEL_SCHEME = "models:/"


class ExecutionStatus(StrEnum):
    """A monitoring execution's status, with SageMaker's values (MonitoringExecutionStatus)."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    COMPLETED_WITH_VIOLATIONS = "CompletedWithViolations"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


@dataclass(frozen=True)
class DataMetric:
    """One value to publish as a CloudWatch metric (one minute, one sample)."""

    namespace: str
    name: str
    dimensions: Mapping[str, str]
    value: float
    timestamp: datetime


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    status: ExecutionStatus
    start: datetime
    end: datetime
    stats: ReadStats = field(default_factory=ReadStats)
    failure_reason: str | None = None
    violations: ConstraintViolations | None = None
    drift: DriftReport | None = None
    output: str | None = None

    def report(self) -> dict[str, Any]:
        """The execution's results as JSON: input counts, per-feature drift, violations."""
        out: dict[str, Any] = {
            "status": self.status,
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "input": self.stats.to_dict(),
        }
        if self.failure_reason:
            out["failure_reason"] = self.failure_reason
        if self.output:
            out["output"] = self.output
        if self.drift is not None:
            out["features"] = [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "method": f.method,
                    "distance": f.value,
                    "threshold": f.threshold,
                    "drifted": f.drifted,
                    "n_baseline": f.n_baseline,
                    "n_window": f.n_window,
                    "metrics": dict(f.metrics),
                }
                for f in self.drift.features
            ]
            out["skipped"] = [{"name": s.name, "reason": s.reason} for s in self.drift.skipped]
        if self.violations is not None:
            out["violations"] = to_dict(self.violations)["violations"]
        # NaN and infinities (a metric that could not be computed) become null.
        loaded: dict[str, Any] = orjson.loads(orjson.dumps(out))
        return loaded

    def data_metrics(self, endpoint: str, schedule: str) -> list[DataMetric]:
        """SageMaker's drift metrics, ``feature_baseline_drift_<feature>`` per compared feature,
        and pier's ``constraint_violations`` (how many the window had), for alarms."""
        if self.drift is None:
            return []
        dimensions = {"Endpoint": endpoint, "MonitoringSchedule": schedule}
        count = len(self.violations.violations) if self.violations is not None else 0
        drift = [
            DataMetric(
                DATA_METRICS_NAMESPACE,
                f"feature_baseline_drift_{f.name}",
                dimensions,
                float(f.value),
                self.end,
            )
            for f in self.drift.features
        ]
        total = DataMetric(
            DATA_METRICS_NAMESPACE, VIOLATIONS_METRIC, dimensions, float(count), self.end
        )
        return [*drift, total]


# ------------------------------------------------------------------------------ locations


def resolve_location(uri: str, base: Path) -> Location:
    """``s3://bucket/prefix``, ``file:///abs/dir`` or ``file:rel/dir`` (under ``base``)."""
    parsed = urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        if not parsed.netloc:
            raise MonitorError(f"{uri} names no bucket")
        return S3Location(parsed.netloc, parsed.path.strip("/"))
    if scheme == "file":
        path = Path(unquote(parsed.path))
        if ".." in path.parts:
            raise MonitorError(f"{uri}: a file URI may not use '..'")
        return path if path.is_absolute() else base / path
    raise MonitorError(f"{uri}: pier reads and writes s3:// and file: locations")


def output_location(
    target: Location, endpoint: str, schedule: str, scheduled: datetime
) -> Location:
    """SageMaker's report directory of one execution: ``{endpoint}/{schedule}/yyyy/mm/dd/hh``."""
    return child(target, endpoint, schedule, f"{scheduled.astimezone(UTC):%Y/%m/%d/%H}")


def location_uri(target: Location) -> str:
    if isinstance(target, Path):
        return target.as_uri()
    return f"s3://{target.bucket}/{target.prefix}"


def _write(target: Location, files: dict[str, dict[str, Any]], s3: S3ClientFactory) -> None:
    if isinstance(target, Path):
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (target / name).write_text(json.dumps(content, indent=2) + "\n")
        return
    client = s3()
    for name, content in files.items():
        key = f"{target.prefix}/{name}" if target.prefix else name
        body = (json.dumps(content, indent=2) + "\n").encode()
        client.put_object(Bucket=target.bucket, Key=key, Body=body)


# ------------------------------------------------------------------------------ baselines


def load_baseline(
    statistics_uri: str,
    constraints_uri: str,
    base: Path,
    *,
    s3: S3ClientFactory = s3_client,
    from_model: Callable[[str, Path], Path] | None = None,
) -> Baseline:
    """The baseline the two URIs name: files (``file:``), S3 objects, or ``models:/name/version``
    (the directory ``from_model(uri, scratch)`` downloads the stored baseline into)."""
    with tempfile.TemporaryDirectory(prefix="pier-baseline-") as scratch:
        paths = []
        downloaded: dict[str, Path] = {}
        for uri, name in ((statistics_uri, STATISTICS_FILE), (constraints_uri, "constraints.json")):
            if uri.startswith(MODEL_SCHEME):
                if from_model is None:
                    raise MonitorError(f"{uri}: no MLflow registry to read the baseline from")
                if uri not in downloaded:
                    downloaded[uri] = from_model(uri, Path(scratch) / f"model-{len(downloaded)}")
                paths.append(downloaded[uri] / name)
                continue
            target = resolve_location(uri, base)
            if isinstance(target, Path):
                paths.append(target)
                continue
            local = Path(scratch) / f"{len(paths)}-{name}"
            body = s3().get_object(Bucket=target.bucket, Key=target.prefix)["Body"].read()
            local.write_bytes(body)
            paths.append(local)
        return read_baseline(statistics=paths[0], constraints=paths[1])


# ------------------------------------------------------------------------------ the job


def analyse(
    baseline: Baseline | None,
    capture: Location,
    endpoint: str,
    start: datetime,
    end: datetime,
    output: Location,
    *,
    s3: S3ClientFactory = s3_client,
) -> Outcome:
    """Profile ``endpoint``'s captured requests of ``[start, end)``, check them against
    ``baseline`` (None: statistics only) and write the files into ``output``."""
    stats = ReadStats()
    outcome = Outcome(ExecutionStatus.FAILED, start, end, stats)
    features = [f.name for f in baseline.statistics.features] if baseline is not None else []
    try:
        batches = read_window(capture, endpoint, start, end, features, stats, s3=s3)
        profile = profile_frame(batches)
    except MonitorError as exc:
        outcome.failure_reason = f"Could not profile the captured data: {exc}"
        return outcome
    if stats.rows == 0:
        where = location_uri(capture)
        reason = f"Job inputs had no data: no captured request of endpoint {endpoint}"
        if stats.records:
            problems = "; ".join(f"{n} × {why}" for why, n in stats.unreadable.most_common(3))
            reason = (
                f"Job inputs had no data: {stats.records} captured record(s) of endpoint "
                f"{endpoint}, none readable as rows ({problems})"
            )
        outcome.failure_reason = (
            f"{reason} between {_iso(start)} and {_iso(end)} in {where}/{endpoint}/."
        )
        return outcome
    files: dict[str, dict[str, Any]] = {STATISTICS_FILE: to_dict(statistics_from_profile(profile))}
    if baseline is not None:
        try:
            outcome.drift = compare(baseline, profile)
            outcome.violations = check(baseline, profile, drift=outcome.drift)
        except MonitorError as exc:
            outcome.failure_reason = f"Could not compare with the baseline: {exc}"
            return outcome
        files[VIOLATIONS_FILE] = to_dict(outcome.violations)
    _write(output, files, s3)
    outcome.output = location_uri(output)
    has_violations = outcome.violations is not None and bool(outcome.violations.violations)
    outcome.status = (
        ExecutionStatus.COMPLETED_WITH_VIOLATIONS if has_violations else ExecutionStatus.COMPLETED
    )
    return outcome


__all__ = [
    "DATA_METRICS_NAMESPACE",
    "STATISTICS_FILE",
    "VIOLATIONS_METRIC",
    "DataMetric",
    "ExecutionStatus",
    "Outcome",
    "analyse",
    "load_baseline",
    "location_uri",
    "output_location",
    "resolve_location",
]
