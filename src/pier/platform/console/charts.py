"""Charts of CloudWatch series as inline SVG geometry, computed on the server.

Why not a charting library: the console has no build step and no asset pipeline, and a page
of twenty charts must stay small and render without JavaScript. A line chart of 1-minute
points is a polyline in a fixed viewBox; this module maps points to it (counts are 0 in a
minute without requests, latencies leave a gap) and picks a few axis labels. The template
(templates/_charts.html) draws the SVG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

WIDTH, HEIGHT = 600.0, 160.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 8.0, 8.0, 22.0
RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
PERIOD_S = 60


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    css: str  # the line's class: its colour in console.css
    segments: list[str]  # SVG polyline `points`, one per run of consecutive minutes
    dots: list[tuple[float, float]]  # minutes with data and no neighbour: drawn as a dot
    latest: str  # the newest value, formatted ("-" without data)


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    series: list[Series]
    y_labels: list[tuple[float, str]]  # (y, text)
    x_labels: list[tuple[float, str, str]]  # (x, text, text-anchor)
    empty: bool
    plot: tuple[float, float, float, float] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    size: tuple[float, float] = field(default=(WIDTH, HEIGHT))


@dataclass(frozen=True, slots=True)
class Line:
    """One series' data: epoch seconds → value; `counts` fills empty minutes with 0."""

    label: str
    css: str
    points: dict[int, float]
    counts: bool


def minute(t: datetime | float) -> int:
    """Epoch seconds of the minute a timestamp falls in."""
    epoch = t.timestamp() if isinstance(t, datetime) else float(t)
    return int(epoch // PERIOD_S * PERIOD_S)


def chart(title: str, unit: str, lines: list[Line], start: int, end: int) -> Chart:
    """A chart over minutes [start, end) of `lines` (epoch seconds, whole minutes)."""
    minutes = list(range(start, end, PERIOD_S))
    filled = [
        {m: line.points.get(m, 0.0) for m in minutes} if line.counts else line.points
        for line in lines
    ]
    values = [v for f in filled for v in f.values() if math.isfinite(v)]
    top = _nice(max(values)) if values else 1.0
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    span = max(end - start - PERIOD_S, PERIOD_S)

    def x(m: int) -> float:
        return round(x0 + (m - start) / span * (x1 - x0), 1)

    def y(v: float) -> float:
        return round(y1 - v / top * (y1 - y0), 1)

    series = []
    for line, points in zip(lines, filled, strict=True):
        runs: list[list[tuple[float, float]]] = []
        previous: int | None = None
        for m in minutes:
            value = points.get(m)
            if value is None or not math.isfinite(value):
                continue
            if previous is None or m - previous > PERIOD_S:
                runs.append([])
            runs[-1].append((x(m), y(value)))
            previous = m
        segments = [" ".join(f"{px},{py}" for px, py in run) for run in runs if len(run) > 1]
        dots = [run[0] for run in runs if len(run) == 1]
        present = [m for m in minutes if m in points]
        latest = _fmt(points[present[-1]]) if present else "-"
        series.append(Series(line.label, line.css, segments, dots, latest))
    y_labels = [(y(top * f), _fmt(top * f)) for f in (0.0, 0.5, 1.0)]
    middle = start + (end - start) // 2 // PERIOD_S * PERIOD_S
    x_labels = [
        (x(m), datetime.fromtimestamp(m, UTC).strftime("%H:%M"), anchor)
        for m, anchor in ((start, "start"), (middle, "middle"), (end - PERIOD_S, "end"))
    ]
    empty = not any(line.points for line in lines)
    return Chart(title, unit, series, y_labels, x_labels, empty)


def _nice(value: float) -> float:
    """A round axis top at or above `value` (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


__all__ = ["RANGES", "Chart", "Line", "Series", "chart", "minute"]
