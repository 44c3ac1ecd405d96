"""Results of a benchmark run: the table, the ratios against the targets, JSON and Markdown."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from inprocess import CallTiming
from loadgen import LoadResult
from rich.table import Table


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    rows: int
    connections: int


SCENARIOS = [
    Scenario("c1", "c1 · 1 row", 1, 1),
    Scenario("c8", "c8 · 1 row", 1, 8),
    Scenario("c64", "c64 · 1 row", 1, 64),
    Scenario("c8x100", "c8 · 100 rows", 100, 8),
]

PIER_KEY = "pier"  # `pier serve` with default settings: what the ratios measure
UVICORN_KEY, GRANIAN_KEY = "pier", "pier-granian"
PYFUNC_LABEL = "pyfunc.predict, 1-row DataFrame"


@dataclass
class ServerResult:
    key: str
    label: str
    family: str
    workers: int = 1
    cold_starts_s: list[float] = field(default_factory=list)  # launch → first GET /ping 200
    all_ready_s: list[float] = field(default_factory=list)  # launch → 20 fresh 200s in a row
    loads: dict[str, LoadResult] = field(default_factory=dict)
    mean_batch: dict[str, float] = field(default_factory=dict)  # requests per predict call
    server_ms: dict[str, float] = field(default_factory=dict)  # pier's own mean request time
    error: str | None = None

    @property
    def cold_start_s(self) -> float | None:
        return statistics.median(self.cold_starts_s) if self.cold_starts_s else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "family": self.family,
            "cold_start_s": self.cold_start_s,
            "cold_starts_s": self.cold_starts_s,
            "all_workers_ready_s": self.all_ready_s,
            "scenarios": {k: v.as_dict() for k, v in self.loads.items()},
            "mean_requests_per_predict": self.mean_batch,
            "server_side_mean_ms": self.server_ms,
            "error": self.error,
        }


def _median_load(loads: list[LoadResult]) -> LoadResult:
    return LoadResult(
        rps=statistics.median(x.rps for x in loads),
        p50_ms=statistics.median(x.p50_ms for x in loads),
        p99_ms=statistics.median(x.p99_ms for x in loads),
        requests=sum(x.requests for x in loads),
        errors=sum(x.errors for x in loads),
    )


def merge_rounds(runs: list[ServerResult]) -> ServerResult:
    """One server's rounds as one result: every metric is the median over the rounds it has."""
    first = runs[0]
    if len(runs) == 1:
        return first
    merged = ServerResult(first.key, first.label, first.family, first.workers)
    for r in runs:
        merged.cold_starts_s += r.cold_starts_s
        merged.all_ready_s += r.all_ready_s
    for s in SCENARIOS:
        loads = [r.loads[s.key] for r in runs if s.key in r.loads]
        if loads:
            merged.loads[s.key] = _median_load(loads)
        batches = [r.mean_batch[s.key] for r in runs if s.key in r.mean_batch]
        if batches:
            merged.mean_batch[s.key] = statistics.median(batches)
        inside = [r.server_ms[s.key] for r in runs if s.key in r.server_ms]
        if inside:
            merged.server_ms[s.key] = statistics.median(inside)
    errors = [f"round {i + 1}: {r.error}" for i, r in enumerate(runs) if r.error]
    merged.error = "; ".join(errors) or None
    return merged


@dataclass(frozen=True)
class Ratio:
    name: str
    pier: str
    mlflow: str
    value: float | None
    shown: str
    target: str
    met: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pier": self.pier,
            "mlflow_best": self.mlflow,
            "value": self.value,
            "target": self.target,
            "met": self.met,
        }


def fmt_ms(ms: float) -> str:
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def _cell(load: LoadResult | None) -> str:
    if load is None:
        return "–"
    text = f"{load.rps:,.0f} · {fmt_ms(load.p50_ms)} · {fmt_ms(load.p99_ms)}"
    if load.errors:
        text += f" ({load.errors} errors)"
    return text


def timing_cell(t: CallTiming) -> str:
    text = f"{t.calls_per_s:,.0f} calls/s · {fmt_ms(t.median_ms)} ms"
    if t.rows > 1:
        text += f" · {t.rows_per_s:,.0f} rows/s"
    return text


def rows(results: list[ServerResult], timings: list[CallTiming]) -> list[list[str]]:
    """The one table as strings: a row per server, then the in-process rows."""
    out: list[list[str]] = []
    for r in results:
        if r.error and not r.loads:
            out.append([r.label, "failed (see notes)", "", "", "", ""])
            continue
        cold = f"{r.cold_start_s:.2f}" if r.cold_start_s is not None else "–"
        if r.workers > 1 and r.all_ready_s:
            cold += f" (all workers {statistics.median(r.all_ready_s):.2f})"
        out.append([r.label, *(_cell(r.loads.get(s.key)) for s in SCENARIOS), cold])
    for t in timings:
        cells = ["", "", "", ""]
        cells[3 if t.rows > 1 else 0] = timing_cell(t)
        out.append([f"in-process: {t.label}", *cells, ""])
    return out


HEADERS = [
    "server",
    *(f"{s.title}\nreq/s · p50 · p99 ms" for s in SCENARIOS),
    "cold start\ns (median)",
]


def rich_table(results: list[ServerResult], timings: list[CallTiming], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    table_rows = rows(results, timings)
    n_servers = len(results)
    for i, row in enumerate(table_rows):
        if i == n_servers:
            table.add_section()
        table.add_row(*row)
    return table


def markdown_table(results: list[ServerResult], timings: list[CallTiming]) -> str:
    headers = [h.replace("\n", "<br>") for h in HEADERS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results, timings)]
    return "\n".join(lines)


def _by_key(results: list[ServerResult]) -> dict[str, ServerResult]:
    return {r.key: r for r in results}


def _load(results: dict[str, ServerResult], key: str, scenario: str) -> LoadResult | None:
    r = results.get(key)
    return r.loads.get(scenario) if r else None


def ratios(results: list[ServerResult], timings: list[CallTiming]) -> list[Ratio]:
    """pier serve (defaults) against the better of MLflow's 1- and 2-worker runs."""
    by_key = _by_key(results)
    pier = by_key.get(PIER_KEY)
    mlflow = [r for r in results if r.family == "mlflow"]
    out: list[Ratio] = []

    pier_c64 = _load(by_key, PIER_KEY, "c64")
    ml_c64 = [r.loads["c64"] for r in mlflow if "c64" in r.loads]
    if pier_c64 and ml_c64:
        best = max(ml_c64, key=lambda x: x.rps)
        v = pier_c64.rps / best.rps
        out.append(
            Ratio(
                "throughput at c64 (pier ÷ MLflow)",
                f"{pier_c64.rps:,.0f} req/s",
                f"{best.rps:,.0f} req/s",
                v,
                f"{v:.1f}×",
                "≥ 20×",
                v >= 20,
            )
        )
        best_p99 = min(ml_c64, key=lambda x: x.p99_ms)
        v = pier_c64.p99_ms / best_p99.p99_ms
        out.append(
            Ratio(
                "p99 at c64 (pier ÷ MLflow)",
                f"{fmt_ms(pier_c64.p99_ms)} ms",
                f"{fmt_ms(best_p99.p99_ms)} ms",
                v,
                f"{v:.3f} (1/{1 / v:.0f})" if v > 0 else "0",
                "≤ 0.1 (1/10)",
                v <= 0.1,
            )
        )

    pier_c1 = _load(by_key, PIER_KEY, "c1")
    pyfunc = next((t for t in timings if t.label == PYFUNC_LABEL), None)
    if pier_c1 and pyfunc:
        v = pier_c1.p50_ms - pyfunc.median_ms
        out.append(
            Ratio(
                "c1 p50 − in-process pyfunc.predict",
                f"{fmt_ms(pier_c1.p50_ms)} ms",
                f"pyfunc {fmt_ms(pyfunc.median_ms)} ms",
                v,
                f"{v:+.2f} ms",
                "≤ 1 ms",
                v <= 1.0,
            )
        )

    ml_cold = [c for c in (r.cold_start_s for r in mlflow) if c is not None]
    if pier and pier.cold_start_s is not None:
        v = pier.cold_start_s
        ml = f"{min(ml_cold):.2f} s" if ml_cold else "–"
        faster = f" ({min(ml_cold) / v:.1f}× faster)" if ml_cold else ""
        out.append(
            Ratio(
                "cold start, launch → /ping 200 (median)",
                f"{v:.2f} s",
                ml,
                v,
                f"{v:.2f} s{faster}",
                "≤ 1.5 s",
                v <= 1.5,
            )
        )
    return out


def ratio_table(items: list[Ratio]) -> Table:
    table = Table(title="pier serve vs MLflow (better of 1 and 2 workers)", title_justify="left")
    for name in ("measure", "pier", "MLflow", "result", "target", "met"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    for r in items:
        met = "–" if r.met is None else ("[green]yes[/]" if r.met else "[red]no[/]")
        table.add_row(r.name, r.pier, r.mlflow, r.shown, r.target, met)
    return table


def markdown_ratios(items: list[Ratio]) -> str:
    lines = [
        "| measure | pier | MLflow (better of 1/2 workers) | result | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in items:
        met = "–" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.name} | {r.pier} | {r.mlflow} | {r.shown} | {r.target} | {met} |")
    return "\n".join(lines)


def asgi_comparison(results: list[ServerResult]) -> tuple[dict[str, float], str] | None:
    """granian ÷ uvicorn throughput per scenario for the same app, and a one-line verdict."""
    by_key = _by_key(results)
    per: dict[str, float] = {}
    for s in SCENARIOS:
        uv, gr = _load(by_key, UVICORN_KEY, s.key), _load(by_key, GRANIAN_KEY, s.key)
        if uv and gr and uv.rps > 0:
            per[s.key] = gr.rps / uv.rps
    if not per:
        return None
    geo = math.exp(sum(math.log(v) for v in per.values()) / len(per))
    parts = ", ".join(f"{k} {v:.2f}×" for k, v in per.items())
    if abs(geo - 1) < 0.03:
        verdict = "no clear difference"
    else:
        verdict = "granian is faster" if geo > 1 else "uvicorn is faster"
    return per, f"granian ÷ uvicorn throughput: {parts} (geometric mean {geo:.2f}×): {verdict}"
