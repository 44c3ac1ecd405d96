"""`pier monitor ...`: baselines stored with model versions, monitoring schedules, reports.

    pier monitor baseline --model models:/diabetes/3 [--data train.csv] [-o DIR]
    pier monitor schedule NAME --endpoint E --baseline models:/diabetes/3 [--cron ...]
    pier monitor run NAME          # one execution now, waits for its result
    pier monitor report NAME       # the latest execution: drift per feature, violations
    pier monitor list              # schedules and their last execution

`baseline` works with MLflow directly (the tracking server `pier up` started, or
MLFLOW_TRACKING_URI). `schedule` is boto3's CreateMonitoringSchedule against the platform, like
users' own code; `run` and `report` use pier's routes beside it (SageMaker has neither), signed
with the home's credentials.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from pier.cli.common import (
    HomeOption,
    JsonOption,
    aws_errors,
    connect,
    err,
    fail,
    out,
    platform_settings,
    print_json,
)
from pier.platform.home import Home

if TYPE_CHECKING:
    from pier.monitor.stats.baseline import Baseline

monitor_app = typer.Typer(
    name="monitor",
    help="Data-quality monitoring: baselines, schedules that check captured data, reports.",
    no_args_is_help=True,
)

DEFAULT_OUTPUT = "file:reports"  # $PIER_HOME/monitoring/reports
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/pier-monitoring"  # SageMaker requires one
_TERMINAL = {"Completed", "CompletedWithViolations", "Failed", "Stopped"}


# ------------------------------------------------------------------------------ baseline
def _tracking_uri(home: Path | None) -> str | None:
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or Home(platform_settings(home=home).home).mlflow_url()
    )


@monitor_app.command("baseline")
def baseline(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Registered model version to store the baseline with: models:/name/3 or "
            "models:/name@alias.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Training data: a CSV (with a header) or Parquet file, or a directory of them. "
            "Default: the dataset logged with the version's run.",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the two files here.")
    ] = None,
    all_columns: Annotated[
        bool,
        typer.Option(
            "--all-columns",
            help="Keep columns that are not model inputs (by default a label or an ID column "
            "the signature does not name is left out).",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Compute statistics.json and constraints.json (SageMaker's formats) from training data."""
    if model is None and output is None:
        raise fail("give --model models:/name/version (to store it), -o DIR, or both", 2)
    if model is None and data is None:
        raise fail("without --model, give the data with --data", 2)
    from pier.monitor.errors import MonitorError
    from pier.monitor.schedules.baseline_job import baseline_data, suggest_for
    from pier.monitor.stats.baseline import write_baseline

    with tempfile.TemporaryDirectory(prefix="pier-baseline-") as scratch:
        try:
            version = _model_version(model, home) if model else None
            if data is not None and not data.exists():
                raise fail(f"--data {data}: no such file or directory", 2)
            source = baseline_data(version, data, Path(scratch))
            if source.warning:
                err.print(f"[yellow]warning:[/yellow] {escape(source.warning)}")
            described = source.description
            with out.status(f"Profiling {described}..."):
                suggested = suggest_for(source, version, all_columns)
        except MonitorError as exc:
            raise fail(exc.message) from None
        result, dropped = suggested.baseline, suggested.dropped
        if dropped:
            out.print(
                f"Left out {len(dropped)} column(s) the model does not take as input: "
                f"{escape(', '.join(dropped))} (keep them with --all-columns)"
            )
        _print_baseline(result, described)
        directory = output or Path(scratch) / "baseline"
        write_baseline(result, directory)
        if output is not None:
            out.print(f"Wrote {output / 'statistics.json'} and {output / 'constraints.json'}")
        if version is not None:
            from pier.monitor.schedules.model_baselines import BASELINE_TAG, store_baseline

            try:
                stored = store_baseline(version, directory)
            except Exception as exc:  # MLflow's errors: say them in one line
                raise fail(f"cannot store the baseline with {version.uri}: {exc}") from None
            out.print(
                f"Stored with [bold]{escape(version.uri)}[/bold]: {escape(stored)} "
                f"(model version tag {BASELINE_TAG}); use --baseline {escape(version.uri)} "
                "in `pier monitor schedule`"
            )


def _model_version(uri: str, home: Path | None) -> Any:
    from pier.monitor.schedules.model_baselines import model_version

    tracking = _tracking_uri(home)
    if not tracking:
        raise fail("no MLflow tracking server: start pier (pier up) or set MLFLOW_TRACKING_URI", 1)
    import mlflow

    mlflow.set_tracking_uri(tracking)
    return model_version(uri)


def _print_baseline(result: Baseline, source: str) -> None:
    table = Table(title=f"Baseline of {source} ({result.statistics.dataset.item_count} rows)")
    for column in ("feature", "type", "complete", "mean", "min", "max", "distinct"):
        table.add_column(column, justify="left" if column in ("feature", "type") else "right")
    for f in result.statistics.features:
        num, text = f.numerical_statistics, f.string_statistics
        common = f.common
        rows = common.num_present + common.num_missing if common else 0
        complete = f"{common.num_present / rows:.1%}" if common and rows else "-"
        if num is not None:
            values = (f"{num.mean:.4g}", f"{num.min:.4g}", f"{num.max:.4g}", "-")
        elif text is not None:
            values = ("-", "-", "-", str(text.distinct_count))
        else:
            values = ("-", "-", "-", "-")
        table.add_row(escape(f.name), str(f.inferred_type), complete, *values)
    out.print(table)


# ------------------------------------------------------------------------------ schedule
def _baseline_uris(baseline: str) -> tuple[str, str]:
    """(statistics, constraints) URIs of --baseline: models:/..., s3://prefix or a directory."""
    if baseline.startswith("models:/"):
        return baseline, baseline
    if baseline.startswith(("s3://", "file:")):
        root = baseline.rstrip("/")
        return f"{root}/statistics.json", f"{root}/constraints.json"
    directory = Path(baseline).expanduser().resolve()
    for name in ("statistics.json", "constraints.json"):
        if not (directory / name).is_file():
            raise fail(f"--baseline {baseline}: no {name} in that directory", 2)
    return (directory / "statistics.json").as_uri(), (directory / "constraints.json").as_uri()


@monitor_app.command("schedule")
def schedule(
    name: Annotated[str, typer.Argument(help="The monitoring schedule's name.")],
    endpoint: Annotated[str, typer.Option("--endpoint", "-e", help="The endpoint to monitor.")],
    baseline: Annotated[
        str,
        typer.Option(
            "--baseline",
            "-b",
            help="models:/name/version (stored by pier monitor baseline), a directory holding "
            "statistics.json and constraints.json, or an s3:// prefix.",
        ),
    ],
    cron: Annotated[
        str,
        typer.Option(help="SageMaker's cron (UTC): hourly by default; NOW runs once."),
    ] = "cron(0 * ? * * *)",
    output: Annotated[
        str,
        typer.Option(
            help="Where reports go: s3://bucket/prefix, file:///dir, or file:name (under "
            "$PIER_HOME/monitoring)."
        ),
    ] = DEFAULT_OUTPUT,
    home: HomeOption = None,
) -> None:
    """Create a monitoring schedule (CreateMonitoringSchedule) for an endpoint's captured data."""
    statistics, constraints = _baseline_uris(baseline)
    schedule_config: dict[str, Any] = {"ScheduleExpression": cron}
    if cron.strip().upper() == "NOW":
        schedule_config |= {"DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT0H"}
    sm = connect(home)
    with aws_errors():
        arn = sm.create_monitoring_schedule(
            MonitoringScheduleName=name,
            MonitoringScheduleConfig={
                "ScheduleConfig": schedule_config,
                "MonitoringType": "DataQuality",
                "MonitoringJobDefinition": {
                    "BaselineConfig": {
                        "StatisticsResource": {"S3Uri": statistics},
                        "ConstraintsResource": {"S3Uri": constraints},
                    },
                    "MonitoringInputs": [
                        {"EndpointInput": {"EndpointName": endpoint,
                                           "LocalPath": "/opt/ml/processing/input/endpoint"}}
                    ],
                    "MonitoringOutputConfig": {
                        "MonitoringOutputs": [
                            {"S3Output": {"S3Uri": output,
                                          "LocalPath": "/opt/ml/processing/output"}}
                        ]
                    },
                    "MonitoringResources": {
                        "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                          "VolumeSizeInGB": 20}
                    },
                    "MonitoringAppSpecification": {"ImageUri": "pier/model-monitor"},
                    "RoleArn": DEFAULT_ROLE,
                },
            },
        )["MonitoringScheduleArn"]  # fmt: skip
    out.print(f"Created monitoring schedule [bold]{escape(name)}[/bold] ({escape(arn)}), {cron}")


# ------------------------------------------------------------------------------ run, report
def _request(home: Path | None, method: str, path: str) -> dict[str, Any]:
    """A signed request to one of pier's monitoring routes; its JSON, or exit 1 with the error."""
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    settings = platform_settings(home=home)
    h = Home(settings.home)
    url, creds = h.url(), h.credentials(create=False)
    if h.running_pid() is None or url is None or creds is None:
        raise fail(f"pier is not running (home {h.root}); start it with pier up --detach")
    target = f"{url}/pier/monitoring-schedules/{path}"
    request = AWSRequest(method=method, url=target, data=b"")
    signer = Credentials(creds.access_key_id, creds.secret_access_key)
    SigV4Auth(signer, "sagemaker", settings.region).add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    try:
        response = httpx.request(method, target, headers=headers, content=b"", timeout=60)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach pier at {url}: {exc}") from None
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code != 200:
        raise fail(f"{body.get('__type', response.status_code)}: {body.get('message', '')}")
    return body


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _status(status: str) -> str:
    color = {"Completed": "green", "CompletedWithViolations": "red", "Failed": "red"}.get(
        status, "yellow"
    )
    return f"[{color}]{escape(status)}[/{color}]"


@monitor_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The monitoring schedule to run.")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the execution's result.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 600,
    home: HomeOption = None,
) -> None:
    """Run one execution of a schedule now, over the last interval of its cron (an hour)."""
    started = _request(home, "POST", f"{quote(name, safe='')}/executions")
    scheduled = started["ScheduledTime"]
    out.print(f"Started an execution of {escape(name)} at {_when(scheduled)}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with out.status("Profiling the captured data and checking it against the baseline..."):
        while True:
            report = _request(home, "GET", f"{quote(name, safe='')}/report")
            execution = report.get("Execution") or {}
            status = execution.get("MonitoringExecutionStatus", "")
            if execution.get("ScheduledTime") == scheduled and status in _TERMINAL:
                break
            if time.monotonic() > deadline:
                raise fail(f"the execution of {name} did not end within {timeout:g} s")
            time.sleep(0.5)
    _print_report(report)
    if status == "Failed":
        raise typer.Exit(1)


@monitor_app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="The monitoring schedule.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The latest execution of a schedule: status, drift per feature, violations."""
    result = _request(home, "GET", f"{quote(name, safe='')}/report")
    if as_json:
        print_json(result)
        return
    if "Execution" not in result:
        out.print(f"{escape(name)} ({escape(result['EndpointName'])}) has not run yet")
        return
    _print_report(result)


def _print_report(result: dict[str, Any]) -> None:
    execution = result["Execution"]
    details = execution.get("Report") or {}
    status = execution["MonitoringExecutionStatus"]
    out.print(
        f"[bold]{escape(result['MonitoringScheduleName'])}[/bold] on endpoint "
        f"{escape(result['EndpointName'])}: {_status(status)} (scheduled "
        f"{_when(execution.get('ScheduledTime'))})"
    )
    window = details.get("window")
    counts = details.get("input") or {}
    if window:
        unreadable = counts.get("unreadable_records", 0)
        out.print(
            f"Window {window['start']} to {window['end']}: {counts.get('records', 0)} captured "
            f"request(s), {counts.get('rows', 0)} row(s)"
            + (f", {unreadable} unreadable" if unreadable else "")
        )
    if execution.get("FailureReason"):
        out.print(f"[red]{escape(execution['FailureReason'])}[/red]")
    features = details.get("features") or []
    if features:
        table = Table(title="Drift against the baseline")
        for column in ("feature", "method", "distance", "threshold", "drift", "values"):
            table.add_column(column, justify="right" if column != "feature" else "left")
        for f in features:
            drifted = "[red]yes[/red]" if f["drifted"] else "no"
            distance = "-" if f["distance"] is None else f"{f['distance']:.4f}"
            table.add_row(
                escape(f["name"]), escape(f["method"]), distance, f"{f['threshold']:g}",
                drifted, f"{f['n_window']} vs {f['n_baseline']}",
            )  # fmt: skip
        out.print(table)
    for skipped in details.get("skipped") or []:
        out.print(f"Not compared: {escape(skipped['name'])} ({escape(skipped['reason'])})")
    violations = details.get("violations")
    if violations:
        table = Table(title=f"{len(violations)} constraint violation(s)")
        table.add_column("feature")
        table.add_column("check")
        table.add_column("description")
        for v in violations:
            table.add_row(
                escape(v["feature_name"]), escape(v["constraint_check_type"]),
                escape(v["description"]),
            )  # fmt: skip
        out.print(table)
    elif violations is not None:
        out.print("[green]No constraint violations.[/green]")
    if execution.get("OutputUri"):
        out.print(f"Files: {escape(execution['OutputUri'])}")


@monitor_app.command("list")
def list_schedules(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Monitoring schedules, their endpoint, status and last execution."""
    sm = connect(home)
    rows: list[dict[str, Any]] = []
    with aws_errors():
        for page in sm.get_paginator("list_monitoring_schedules").paginate():
            for summary in page["MonitoringScheduleSummaries"]:
                described = sm.describe_monitoring_schedule(
                    MonitoringScheduleName=summary["MonitoringScheduleName"]
                )
                rows.append({k: v for k, v in described.items() if k != "ResponseMetadata"})
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("schedule", "endpoint", "cron", "status", "last execution"):
        table.add_column(column)
    for r in rows:
        last = r.get("LastMonitoringExecutionSummary") or {}
        expression = (r["MonitoringScheduleConfig"].get("ScheduleConfig") or {}).get(
            "ScheduleExpression", "cron(0 * ? * * *)"
        )
        last_text = (
            f"{_status(last['MonitoringExecutionStatus'])} {last['ScheduledTime']:%Y-%m-%d %H:%M}"
            if last
            else "-"
        )
        table.add_row(
            escape(r["MonitoringScheduleName"]), escape(r.get("EndpointName", "")),
            escape(expression), escape(r["MonitoringScheduleStatus"]), last_text,
        )  # fmt: skip
    out.print(table)


__all__ = ["monitor_app"]
