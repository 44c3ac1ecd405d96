"""`pier compare ENDPOINT`: the production variant vs the shadow variant on the same requests.

Reads the endpoint's data capture (DescribeEndpoint's DataCaptureConfig, `--capture` to read
another destination, e.g. an inference experiment's DataStorageConfig) and pairs the records of
each copied request (pier.monitor.shadow_compare): latency percentiles, error rates, and
prediction agreement (classification) or the distribution of differences (regression), with the
number of paired requests. The variants default to the endpoint's production variant and shadow
variant; after an experiment has ended (no shadow any more) name it with `--shadow`.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

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
from pier.cli.ground_truth_command import parse_duration


class Problem(StrEnum):
    auto = "auto"
    classification = "classification"
    regression = "regression"


def _variants(
    described: dict[str, Any], production: str | None, shadow: str | None
) -> tuple[str, str]:
    if production is None:
        names = [v["VariantName"] for v in described.get("ProductionVariants", [])]
        if len(names) != 1:
            raise fail(
                f"the endpoint has {len(names)} production variants: name one with --production", 2
            )
        production = names[0]
    if shadow is None:
        names = [v["VariantName"] for v in described.get("ShadowProductionVariants", [])]
        if not names:
            raise fail(
                f"endpoint {described['EndpointName']} has no shadow variant now: name the one "
                "to compare with --shadow", 2,
            )  # fmt: skip
        shadow = names[0]
    return production, shadow


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def compare(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose shadow to compare.")],
    since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d...")] = "24h",
    production: Annotated[
        str | None, typer.Option(help="The production variant (default: the endpoint's one).")
    ] = None,
    shadow: Annotated[
        str | None, typer.Option(help="The shadow variant (default: the endpoint's shadow).")
    ] = None,
    capture: Annotated[
        str | None,
        typer.Option(
            help="Capture destination to read (default: the endpoint's DataCaptureConfig)."
        ),
    ] = None,
    problem: Annotated[
        Problem, typer.Option(help="Predictions: auto (regression for real numbers), or say which.")
    ] = Problem.auto,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Production vs shadow on the same requests: latency, errors, predictions."""
    window_s = parse_duration(since, "--since")
    from pier.monitor.capture.capture import default_base
    from pier.monitor.shadow_compare import compare as run_compare
    from pier.storage import resolve

    settings = platform_settings(home=home)
    sm = connect(home)
    with aws_errors():
        described = sm.describe_endpoint(EndpointName=endpoint)
    prod_name, shadow_name = _variants(described, production, shadow)
    uri = capture or (described.get("DataCaptureConfig") or {}).get("DestinationS3Uri")
    if not uri:
        raise fail(
            f"endpoint {endpoint} has no DataCaptureConfig: nothing was captured to compare; "
            "give the destination with --capture"
        )
    end = time.time() + 60  # records of the current second are in
    with aws_errors():
        try:
            result = run_compare(
                resolve(uri, default_base(settings.home)), endpoint, prod_name, shadow_name,
                end - window_s - 60, end, problem.value,
            )  # fmt: skip
        except ValueError as exc:
            raise fail(str(exc)) from None
    if as_json:
        print_json({"endpoint": endpoint, "capture_destination": uri, **result.to_dict()})
        return
    if not result.pairs:
        out.print(
            f"No paired requests of {escape(prod_name)} and {escape(shadow_name)} on "
            f"{escape(endpoint)} in the last {escape(since)} (capture destination {escape(uri)})."
        )
        return
    table = Table(
        title=f"{escape(endpoint)}: {result.pairs} paired requests (last {escape(since)})",
        title_justify="left",
    )
    table.add_column("")
    table.add_column(f"production ({escape(prod_name)})", justify="right")
    table.add_column(f"shadow ({escape(shadow_name)})", justify="right")
    p, s = result.production, result.shadow
    for pct in ("p50", "p90", "p99"):
        table.add_row(
            f"model latency {pct} (ms)", _ms(p["latency_ms"][pct]), _ms(s["latency_ms"][pct])
        )
    table.add_row(
        "errors",
        f"{p['errors']} ({_rate(p['error_rate'])})",
        f"{s['errors']} ({_rate(s['error_rate'])})",
    )
    out.print(table)
    pred = result.predictions
    if result.problem == "classification":
        out.print(
            f"Predictions ({pred['compared']} compared, classification): "
            f"agreement {_rate(pred['agreement'])}"
        )
    elif result.problem == "regression":
        d = pred["difference"]
        out.print(
            f"Predictions ({pred['compared']} compared, regression): shadow − production "
            f"mean {d['mean']:.4g}, std {d['std']:.4g}, p5 {d['p5']:.4g}, p50 {d['p50']:.4g}, "
            f"p95 {d['p95']:.4g}, max |diff| {d['max_abs']:.4g}"
        )
    else:
        out.print("No prediction to compare (every pair has an error on one side).")
    if result.unpaired_production or result.unpaired_shadow or result.unreadable:
        out.print(
            f"Not paired: {result.unpaired_production} production and "
            f"{result.unpaired_shadow} shadow record(s); {result.unreadable} unreadable line(s)."
        )
