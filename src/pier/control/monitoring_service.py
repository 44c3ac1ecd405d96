"""SageMaker's monitoring-schedule API: the rules behind Create/Describe/List/Delete/Stop/Start
MonitoringSchedule and ListMonitoringExecutions, plus pier's own "run now" and report.

Input has passed botocore's shape validation (pier.contract.sagemaker), with the S3 URI
patterns relaxed so that ``file:`` and ``models:/`` locations get here; this module checks
what pier can run and says precisely why not. Executions are the scheduler's business
(pier.monitor.schedules.scheduler): this service records schedules, nudges the scheduler, and
reads the executions it recorded.

What pier runs: ``DataQuality`` schedules of an endpoint (``EndpointInput``) with an inline
``MonitoringJobDefinition``; the baseline from ``s3://``, ``file:`` or ``models:/name/version``
(the baseline ``pier monitor baseline`` stored with that model version); reports to ``s3://``
or ``file:``. ``ScheduleExpression`` is SageMaker's cron (hourly by default) or ``NOW``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pier.control import paging
from pier.control.arns import ArnFactory
from pier.control.deployment import deployed
from pier.errors import ResourceInUse, ResourceNotFound, ValidationException
from pier.monitor.schedules import cron
from pier.monitor.schedules.scheduler import ScheduleStatus, analysis_window, schedule_expression
from pier.storage import location_problem
from pier.store.db import Duplicate, Sessions
from pier.store.monitoring import MonitoringStore, MonitoringTx
from pier.store.tables import MonitoringExecutionRow, MonitoringScheduleRow

DATA_QUALITY = "DataQuality"
BASELINE_SCHEMES = ("s3", "file", "models")
MAX_WINDOW = timedelta(hours=24)  # SageMaker: the start may precede the end by 24 hours at most


def _now() -> datetime:
    return datetime.now(UTC)


def _schedule_arn(arns: ArnFactory, name: str) -> str:
    return f"arn:aws:sagemaker:{arns.region}:{arns.account}:monitoring-schedule/{name.lower()}"


def _location_problem(uri: str, what: str, schemes: tuple[str, ...]) -> str | None:
    parsed = urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "models":
        if "models" in schemes and uri.startswith("models:/") and len(uri) > len("models:/"):
            return None
    elif scheme == "s3":
        return None if parsed.netloc else f"{what} {uri} names no bucket."
    elif (
        scheme == "file"
        and parsed.netloc in ("", "localhost")
        and parsed.path
        and ".." not in parsed.path
    ):
        return None
    extra = ", or models:/name/version (the baseline stored with that model version)"
    return (
        f"{what} {uri}: pier reads and writes s3://bucket/key and file:///path"
        f"{extra if 'models' in schemes else ''}."
    )


class MonitoringService:
    def __init__(
        self,
        sessions: Sessions,
        arns: ArnFactory,
        *,
        run_now: Callable[[str], int],
        notify: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = MonitoringStore(sessions)
        self.arns = arns
        self._run_now = run_now
        self._notify = notify
        self._clock = clock

    # ---------------------------------------------------------------------------- checks
    def _check(self, tx: MonitoringTx, req: dict[str, Any]) -> tuple[str, str]:
        """(endpoint name, monitoring type) of a request pier can run, or the reason not."""
        config = req["MonitoringScheduleConfig"]
        monitoring_type = config.get("MonitoringType", DATA_QUALITY)
        if monitoring_type != DATA_QUALITY:
            raise ValidationException(
                f"MonitoringType {monitoring_type}: pier runs DataQuality schedules only "
                "(data drift and constraints); model quality, bias and explainability are not "
                "implemented."
            )
        if "MonitoringJobDefinitionName" in config:
            raise ValidationException(
                "MonitoringJobDefinitionName: pier does not implement job definitions "
                "(CreateDataQualityJobDefinition); give MonitoringJobDefinition inline."
            )
        job = config.get("MonitoringJobDefinition")
        if job is None:
            raise ValidationException(
                "MonitoringScheduleConfig must have a MonitoringJobDefinition."
            )
        schedule = config.get("ScheduleConfig") or {}
        expression = schedule_expression(config)
        is_now = expression.strip().upper() == cron.NOW
        if not is_now:
            try:
                cron.parse(expression)
            except cron.CronError as exc:
                raise ValidationException(str(exc)) from None
        if is_now and not (
            schedule.get("DataAnalysisStartTime") and schedule.get("DataAnalysisEndTime")
        ):
            raise ValidationException(
                "ScheduleExpression NOW needs DataAnalysisStartTime and DataAnalysisEndTime "
                "(offsets such as -PT1H and -PT0H): the window to analyse."
            )
        endpoint_input = job["MonitoringInputs"][0].get("EndpointInput")
        if endpoint_input is None:
            raise ValidationException(
                "MonitoringInputs: pier monitors endpoints (EndpointInput); BatchTransformInput "
                "is not supported."
            )
        try:
            start, end = analysis_window(config, datetime(2026, 1, 1, tzinfo=UTC), on_demand=False)
        except cron.CronError as exc:
            raise ValidationException(str(exc)) from None
        if end - start > MAX_WINDOW and (
            schedule.get("DataAnalysisStartTime") or endpoint_input.get("StartTimeOffset")
        ):
            raise ValidationException(
                "The analysis window may span 24 hours at most: the start offset precedes the "
                f"end offset by {end - start}."
            )
        app = job["MonitoringAppSpecification"]
        for key in ("RecordPreprocessorSourceUri", "PostAnalyticsProcessorSourceUri"):
            if key in app:
                raise ValidationException(
                    f"MonitoringAppSpecification.{key}: pier runs no preprocessing or "
                    "post-analytics scripts; leave it out."
                )
        self._check_baseline(job.get("BaselineConfig"))
        outputs = job["MonitoringOutputConfig"]["MonitoringOutputs"]
        problem = _location_problem(
            outputs[0]["S3Output"]["S3Uri"], "MonitoringOutputs.S3Output.S3Uri", ("s3", "file")
        )
        if problem:
            raise ValidationException(problem)
        name = endpoint_input["EndpointName"]
        endpoint = tx.endpoint(name)
        if endpoint is None:
            raise ValidationException(f'Could not find endpoint "{self.arns.endpoint(name)}".')
        capture = deployed(endpoint).data_capture
        modes = {o.get("CaptureMode") for o in (capture or {}).get("CaptureOptions", [])}
        if (
            not capture
            or not capture.get("EnableCapture", True)
            or not modes
            & {
                "Input",
                "InputAndOutput",
            }
        ):
            raise ValidationException(
                f"Endpoint {name} does not capture its requests: a monitoring schedule reads "
                "them from data capture (DataCaptureConfig with EnableCapture and CaptureMode "
                "Input in the endpoint's configuration)."
            )
        problem = location_problem(capture.get("DestinationS3Uri", ""))
        if problem:
            raise ValidationException(problem)
        return name, monitoring_type

    @staticmethod
    def _check_baseline(baseline: dict[str, Any] | None) -> None:
        if not baseline:
            return
        if "BaseliningJobName" in baseline:
            raise ValidationException(
                "BaselineConfig.BaseliningJobName: pier runs no baselining jobs; give "
                "ConstraintsResource and StatisticsResource (pier monitor baseline writes them)."
            )
        uris = {}
        for key in ("ConstraintsResource", "StatisticsResource"):
            uri = (baseline.get(key) or {}).get("S3Uri")
            if uri:
                problem = _location_problem(uri, f"BaselineConfig.{key}.S3Uri", BASELINE_SCHEMES)
                if problem:
                    raise ValidationException(problem)
                uris[key] = uri
        if len(uris) == 1 and not next(iter(uris.values())).startswith("models:/"):
            missing = ({"ConstraintsResource", "StatisticsResource"} - set(uris)).pop()
            raise ValidationException(
                f"BaselineConfig needs both ConstraintsResource and StatisticsResource: "
                f"{missing}.S3Uri is missing (a models:/ URI in one of them names both files)."
            )

    # ------------------------------------------------------------------------- schedules
    def create_monitoring_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["MonitoringScheduleName"]
        arn = _schedule_arn(self.arns, name)
        duplicate = f'Monitoring schedule "{arn}" already exists.'
        now = self._clock()
        try:
            with self._store.begin() as tx:
                if tx.schedule_taken(arn):
                    raise ResourceInUse(duplicate)
                endpoint, monitoring_type = self._check(tx, req)
                tx.add_schedule(
                    MonitoringScheduleRow(
                        name=name,
                        arn=arn,
                        status=ScheduleStatus.SCHEDULED,
                        endpoint_name=endpoint,
                        monitoring_type=monitoring_type,
                        created_at=now,
                        last_modified_at=now,
                        request={k: v for k, v in req.items() if k != "MonitoringScheduleName"},
                        last_tick_at=now,
                    )
                )
        except Duplicate:
            raise ResourceInUse(duplicate) from None
        if schedule_expression(req["MonitoringScheduleConfig"]).strip().upper() == cron.NOW:
            self._run_now(name)  # SageMaker's one-time schedule: one execution, at once
        self._notify()
        return {"MonitoringScheduleArn": arn}

    def _schedule(self, tx: MonitoringTx, name: str) -> MonitoringScheduleRow:
        row = tx.schedule(name)
        if row is None:
            arn = _schedule_arn(self.arns, name)
            raise ResourceNotFound(f'Could not find monitoring schedule "{arn}".')
        return row

    def describe_monitoring_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            row = self._schedule(tx, req["MonitoringScheduleName"])
            last = tx.latest_execution(row.name)
        out: dict[str, Any] = {
            "MonitoringScheduleArn": row.arn,
            "MonitoringScheduleName": row.name,
            "MonitoringScheduleStatus": row.status,
            "MonitoringType": row.monitoring_type,
            "CreationTime": row.created_at.timestamp(),
            "LastModifiedTime": row.last_modified_at.timestamp(),
            "MonitoringScheduleConfig": row.request["MonitoringScheduleConfig"],
            "EndpointName": row.endpoint_name,
        }
        if row.failure_reason:
            out["FailureReason"] = row.failure_reason
        if last is not None:
            out["LastMonitoringExecutionSummary"] = execution_summary(last)
        return out

    def list_monitoring_schedules(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            rows = tx.schedules()
        filters: list[Callable[[MonitoringScheduleRow], bool]] = []
        if req.get("EndpointName"):
            filters.append(lambda r: r.endpoint_name == req["EndpointName"])
        if req.get("StatusEquals"):
            filters.append(lambda r: r.status == req["StatusEquals"])
        if req.get("MonitoringTypeEquals"):
            filters.append(lambda r: r.monitoring_type == req["MonitoringTypeEquals"])
        if req.get("NameContains"):
            filters.append(lambda r: req["NameContains"].lower() in r.name.lower())
        if req.get("MonitoringJobDefinitionName"):
            filters.append(lambda r: False)  # pier has no job definitions
        rows = [r for r in rows if all(f(r) for f in filters)]
        rows = _within(rows, req, "CreationTime", lambda r: r.created_at)
        rows = _within(rows, req, "LastModifiedTime", lambda r: r.last_modified_at)
        keys: dict[str, Callable[[MonitoringScheduleRow], list[Any]]] = {
            "Name": lambda r: [r.name],
            "CreationTime": lambda r: [r.created_at.timestamp(), r.name],
            "Status": lambda r: [r.status, r.name],
        }
        page = paging.sagemaker_page(
            rows, req, keys[req.get("SortBy", "CreationTime")], default_size=10
        )
        items = [
            {
                "MonitoringScheduleName": r.name,
                "MonitoringScheduleArn": r.arn,
                "CreationTime": r.created_at.timestamp(),
                "LastModifiedTime": r.last_modified_at.timestamp(),
                "MonitoringScheduleStatus": r.status,
                "EndpointName": r.endpoint_name,
                "MonitoringType": r.monitoring_type,
            }
            for r in page.items
        ]
        return {"MonitoringScheduleSummaries": items, **page.token_field()}

    def delete_monitoring_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.begin() as tx:
            tx.delete_schedule(self._schedule(tx, req["MonitoringScheduleName"]))
        self._notify()
        return {}

    def _set_status(self, name: str, status: str) -> None:
        with self._store.begin() as tx:
            row = self._schedule(tx, name)
            if row.status != status:
                row.status = status
                row.last_modified_at = self._clock()
                # Started again: the next tick runs, not the ones missed while stopped.
                row.last_tick_at = self._clock()
        self._notify()

    def stop_monitoring_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        self._set_status(req["MonitoringScheduleName"], ScheduleStatus.STOPPED)
        return {}

    def start_monitoring_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        self._set_status(req["MonitoringScheduleName"], ScheduleStatus.SCHEDULED)
        return {}

    # ------------------------------------------------------------------------ executions
    def list_monitoring_executions(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            rows = tx.executions(
                schedule_name=req.get("MonitoringScheduleName") or None,
                endpoint_name=req.get("EndpointName") or None,
                statuses=[req["StatusEquals"]] if req.get("StatusEquals") else None,
                monitoring_type=req.get("MonitoringTypeEquals") or None,
            )
        if req.get("MonitoringJobDefinitionName"):
            rows = []
        rows = _within(rows, req, "ScheduledTime", lambda r: r.scheduled_at)
        rows = _within(rows, req, "CreationTime", lambda r: r.created_at)
        rows = _within(rows, req, "LastModifiedTime", lambda r: r.last_modified_at)
        keys: dict[str, Callable[[MonitoringExecutionRow], list[Any]]] = {
            "CreationTime": lambda r: [r.created_at.timestamp(), r.id],
            "ScheduledTime": lambda r: [r.scheduled_at.timestamp(), r.id],
            "Status": lambda r: [r.status, r.id],
        }
        page = paging.sagemaker_page(
            rows, req, keys[req.get("SortBy", "CreationTime")], default_size=10
        )
        items = [execution_summary(r) for r in page.items]
        return {"MonitoringExecutionSummaries": items, **page.token_field()}

    # ------------------------------------------------------------------ pier's extension
    # SageMaker has no "run now" nor a report API; pier.platform.monitoring_api serves these.
    def start_execution(self, name: str) -> dict[str, Any]:
        """Start an execution of schedule `name` now; its MonitoringExecutionSummary."""
        with self._store.read() as tx:
            self._schedule(tx, name)
        execution_id = self._run_now(name)
        with self._store.read() as tx:
            row = tx.execution(execution_id)
            assert row is not None
            return execution_summary(row)

    def latest_report(self, name: str) -> dict[str, Any]:
        """Schedule `name`, its status and its latest execution's summary, report and output."""
        with self._store.read() as tx:
            schedule = self._schedule(tx, name)
            row = tx.latest_execution(name)
            out: dict[str, Any] = {
                "MonitoringScheduleName": name,
                "EndpointName": schedule.endpoint_name,
                "MonitoringScheduleStatus": schedule.status,
            }
            if row is not None:
                out["Execution"] = execution_summary(row)
                out["Execution"]["Report"] = row.report
                out["Execution"]["OutputUri"] = row.output_uri
            return out


def execution_summary(row: MonitoringExecutionRow) -> dict[str, Any]:
    """SageMaker's MonitoringExecutionSummary of an execution."""
    out: dict[str, Any] = {
        "MonitoringScheduleName": row.schedule_name,
        "ScheduledTime": row.scheduled_at.timestamp(),
        "CreationTime": row.created_at.timestamp(),
        "LastModifiedTime": row.last_modified_at.timestamp(),
        "MonitoringExecutionStatus": row.status,
        "EndpointName": row.endpoint_name,
        "MonitoringType": row.monitoring_type,
    }
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    return out


def _within(
    rows: list[Any], req: dict[str, Any], prefix: str, at: Callable[[Any], datetime]
) -> list[Any]:
    """SageMaker's `<prefix>Before` / `<prefix>After` filters (strict bounds)."""
    if f"{prefix}Before" in req:
        rows = [r for r in rows if at(r).timestamp() < float(req[f"{prefix}Before"])]
    if f"{prefix}After" in req:
        rows = [r for r in rows if at(r).timestamp() > float(req[f"{prefix}After"])]
    return rows
