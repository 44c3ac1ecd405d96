"""`pier ground-truth upload FILE --endpoint NAME` and `pier quality NAME`: labels for captured
inferences, and model quality per variant over time.

The upload is checked here first (every bad line named, exit 2, nothing sent), then sent to the
platform's `POST /endpoints/{name}/ground-truth`, signed with SigV4 and the home's credentials
like any boto3 call, in parts of at most 8 MiB.

`pier quality` computes in this process, not in the platform: it reads the endpoint's capture
destination (DescribeEndpoint's DataCaptureConfig) and the ground-truth store, joins and scores.
A window of a day can be a few hundred thousand records of JSON; parsing them inside the
platform would take the GIL from the invoke path for seconds, and the CLI already runs where
the platform's files are (it reads the home for the platform's address and credentials). It
is also what SageMaker does: a model-quality job runs apart from the endpoint, on S3.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
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
    from pier.monitor.quality.quality import QualityReport

CHUNK_BYTES = 8 * 1024 * 1024  # the platform takes up to 16 MiB per request
CONTENT_TYPE = "application/jsonlines"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

ground_truth_app = typer.Typer(
    name="ground-truth",
    help="Labels for captured inferences (SageMaker's ground-truth JSON Lines).",
    no_args_is_help=True,
)


class ProblemType(StrEnum):
    regression = "regression"
    binary = "binary"
    multiclass = "multiclass"


def parse_duration(text: str, option: str) -> float:
    """`90s`, `30m`, `24h`, `7d`, `1h30m` -> seconds; exit 2 otherwise."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != compact or seconds <= 0:
        raise fail(f"{option} {text!r}: give a duration such as 30m, 24h, 7d or 1h30m", 2)
    return seconds


# ------------------------------------------------------------------------------- upload
def _platform(home: Path | None) -> tuple[str, Any, str]:
    """(url, credentials, region) of the running platform of `home`; exit 1 if it is not."""
    settings = platform_settings(home=home)
    h = Home(settings.home)
    url = h.url()
    creds = h.credentials(create=False)
    if h.running_pid() is None or url is None or creds is None:
        raise fail(f"pier is not running (home {h.root}); start it with pier up --detach")
    return url, creds, settings.region


def _chunks(lines: list[bytes], limit: int) -> list[list[bytes]]:
    parts: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if parts[-1] and size + len(line) + 1 > limit:
            parts.append([])
            size = 0
        parts[-1].append(line)
        size += len(line) + 1
    return parts


def _post(url: str, endpoint: str, body: bytes, creds: Any, region: str) -> Any:
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    target = f"{url}/endpoints/{quote(endpoint, safe='')}/ground-truth"
    request = AWSRequest(method="POST", url=target, data=body,
                         headers={"Content-Type": CONTENT_TYPE})  # fmt: skip
    signer = Credentials(creds.access_key_id, creds.secret_access_key)
    SigV4Auth(signer, "sagemaker", region).add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    try:
        return httpx.post(target, content=body, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach pier at {url}: {exc}") from None


@ground_truth_app.command("upload")
def upload(
    file: Annotated[
        Path, typer.Argument(help="SageMaker ground-truth JSON Lines, one record per inference.")
    ],
    endpoint: Annotated[str, typer.Option("--endpoint", "-e", help="The endpoint labelled.")],
    home: HomeOption = None,
) -> None:
    """Upload labels for captured inferences (eventMetadata.eventId = the InferenceId)."""
    from pier.monitor.quality.ground_truth import GroundTruthError, validate

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", 2) from None
    try:
        checked = validate(data)
    except GroundTruthError as exc:
        for p in exc.problems:
            err.print(f"[red]error:[/red] {escape(str(file))}:{p.line}: {escape(p.problem)}")
        if exc.more:
            err.print(f"[red]error:[/red] ... and {exc.more} more bad line(s)")
        if not exc.problems:
            err.print(f"[red]error:[/red] {escape(str(file))}: no ground-truth records")
        err.print("nothing was uploaded")
        raise typer.Exit(2) from None
    url, creds, region = _platform(home)
    accepted = labels = 0
    for part in _chunks(checked.lines, CHUNK_BYTES):
        answer = _post(url, endpoint, b"\n".join(part) + b"\n", creds, region)
        if answer.status_code != 200:
            _refused(answer, accepted, checked.records)
        body = answer.json()
        accepted += int(body["accepted"])
        labels += int(body.get("labels", 0))
    out.print(
        f"Uploaded {accepted} ground-truth record(s) with {labels} label(s) for endpoint "
        f"{escape(endpoint)}."
    )
    repeated = sum(n - 1 for n in Counter(checked.ids).values() if n > 1)
    if repeated:
        out.print(
            f"{repeated} record(s) repeat an eventId seen earlier in the file: the last label "
            "of an id is the one that counts."
        )


def _refused(answer: Any, accepted: int, total: int) -> None:
    try:
        body = answer.json()
        message = f"{body.get('ErrorCode', answer.status_code)}: {body.get('message', '')}"
    except ValueError:
        message = f"HTTP {answer.status_code}: {answer.text[:200]}"
    if accepted:
        message += f" ({accepted} of {total} records were stored before this part; upload the rest)"
    raise fail(message, 2 if answer.status_code == 400 else 1)


# ------------------------------------------------------------------------------ quality
def quality(
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d...")] = "24h",
    bucket: Annotated[str, typer.Option(help="Width of a time bucket (UTC-aligned).")] = "1h",
    problem: Annotated[
        ProblemType, typer.Option(help="What the model predicts.", case_sensitive=False)
    ] = ProblemType.regression,
    positive_label: Annotated[
        str, typer.Option(help="Binary: the class precision, recall, F1 and AUC are about.")
    ] = "1",
    inference_attribute: Annotated[
        str | None,
        typer.Option(help="Key (JSON object) or 0-based column of the prediction in a row."),
    ] = None,
    probability_attribute: Annotated[
        str | None, typer.Option(help="Key or column of the probability (classification).")
    ] = None,
    probability_threshold: Annotated[
        float, typer.Option(help="Binary, probability only: positive at or above it.")
    ] = 0.5,
    classes: Annotated[
        str | None,
        typer.Option(help="Comma-separated classes of probability vectors (default 0,1,...)."),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Model quality per variant and time bucket: captured predictions joined with ground truth
    (regression: RMSE, MAE, R²; classification: accuracy, precision, recall, F1, AUC)."""
    window_s = parse_duration(since, "--since")
    bucket_s = parse_duration(bucket, "--bucket")
    if not bucket_s.is_integer():
        raise fail(f"--bucket {bucket!r}: a whole number of seconds", 2)
    from pier.monitor.capture.capture import default_base
    from pier.monitor.quality.ground_truth import store_for_home
    from pier.monitor.quality.job import run_quality
    from pier.monitor.quality.quality import Problem, QualityError, QualityOptions

    try:
        options = QualityOptions(
            problem=Problem(problem.value),
            positive_label=positive_label,
            probability_threshold=probability_threshold,
            inference_attribute=inference_attribute,
            probability_attribute=probability_attribute,
            classes=tuple(c.strip() for c in classes.split(",")) if classes else None,
            bucket_seconds=int(bucket_s),
        )
    except QualityError as exc:
        raise fail(exc.message, 2) from None
    settings = platform_settings(home=home)
    sm = connect(home)
    with aws_errors():
        described = sm.describe_endpoint(EndpointName=endpoint)
    destination_uri = (described.get("DataCaptureConfig") or {}).get("DestinationS3Uri")
    if not destination_uri:
        raise fail(
            f"endpoint {endpoint} has no DataCaptureConfig: nothing of it was captured, so "
            "there is nothing to join ground truth with"
        )
    end = time.time()
    start = end - window_s
    try:
        store = store_for_home(settings.home, settings.ground_truth_uri)
    except ValueError as exc:
        raise fail(str(exc)) from None
    capture_base = default_base(settings.home)
    with aws_errors():  # S3 destinations: botocore's errors as one line
        try:
            run = run_quality(endpoint, destination_uri, capture_base, store, options, start, end)
        except QualityError as exc:  # before ValueError: it is one
            raise fail(exc.message, 2) from None
        except ValueError as exc:  # the capture destination cannot be read
            raise fail(str(exc)) from None
    report, captured, labels = run.report, run.captured, run.labels
    if as_json:
        print_json(
            {
                "endpoint": endpoint,
                "capture_destination": destination_uri,
                "ground_truth": store.uri,
                **report.to_dict(),
                "unreadable_capture_lines": captured.bad_lines,
                "unreadable_ground_truth_lines": labels.bad_lines,
            }
        )
        return
    _print_report(endpoint, report, destination_uri, store.uri, bucket)
    for what, count, example in (
        ("capture", captured.bad_lines, captured.example),
        ("ground-truth", labels.bad_lines, labels.example),
    ):
        if count:
            out.print(f"{count} {what} line(s) could not be read, e.g. {escape(example or '')}")


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4f}"


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _print_report(
    endpoint: str, report: QualityReport, capture: str, store: str, bucket: str
) -> None:
    if not report.captures:
        out.print(
            f"No captured inference of {escape(endpoint)} since {_when(report.start)} UTC "
            f"(capture destination {escape(capture)}); {report.labels} label record(s) read."
            if report.start
            else "No captured inference."
        )
        return
    names = report.metric_names
    table = Table(
        title=f"Model quality of {escape(endpoint)} ({report.problem}), buckets of {bucket}, UTC",
        title_justify="left",
    )
    for column in ("variant", "bucket", "rows", *names, "unlabelled", "unscorable"):
        numeric = column not in ("variant", "bucket")
        table.add_column(column, justify="right" if numeric else "left")
    for variant, total in report.totals.items():
        for b in (b for b in report.buckets if b.variant == variant):
            table.add_row(
                escape(variant), _when(b.start), str(b.count),
                *(_fmt(b.metrics.get(n)) for n in names),
                str(b.captures_without_label), str(b.unscorable),
            )  # fmt: skip
        table.add_row(
            escape(variant), "[bold]all[/bold]", f"[bold]{total.count}[/bold]",
            *(f"[bold]{_fmt(total.metrics.get(n))}[/bold]" for n in names),
            str(total.captures_without_label), str(total.unscorable),
            end_section=True,
        )  # fmt: skip
    out.print(table)
    out.print(
        f"{report.captures} captured inference(s), {report.labels} label record(s); "
        f"{report.labels_without_capture} label(s) match no capture in the window"
        + (f"; {report.replaced_labels} replaced by a later one" if report.replaced_labels else "")
        + (f"; {report.shared_ids} capture(s) share an id" if report.shared_ids else "")
    )
    for reason, count in sorted(report.problems.items()):
        out.print(f"unscorable, {reason.replace('_', ' ')}: {count}")
    for example in report.examples:
        out.print(f"  e.g. {escape(example)}")
    out.print(f"[dim]captures: {escape(capture)}  ground truth: {escape(store)}[/dim]")


__all__ = ["ground_truth_app", "parse_duration", "quality", "upload"]
