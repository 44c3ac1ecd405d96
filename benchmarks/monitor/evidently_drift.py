"""Evidently's DataDriftPreset on the benchmark's data; runs inside .venv-evidently.

    python evidently_drift.py REFERENCE.parquet CURRENT.parquet ROUNDS

Prints one JSON object: the seconds of each round (reading the files is not timed) and the
columns Evidently found drifted in the last round.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def drifted_columns(snapshot: Any) -> list[str]:
    """Columns whose ValueDrift metric says drift (score past the method's threshold)."""
    found = []
    for metric in snapshot.dict().get("metrics", []):
        name = str(metric.get("metric_name", ""))
        config = metric.get("config", {})
        if not name.startswith("ValueDrift"):
            continue
        column = config.get("column")
        value = metric.get("value")
        threshold = config.get("threshold")
        method = str(config.get("method", ""))
        if value is None or threshold is None:
            continue
        # p-value methods drift below the threshold, distances at or above it
        is_p_value = "p_value" in method or "test" in method.lower()
        if (value < threshold) if is_p_value else (value >= threshold):
            found.append(str(column))
    return found


def main() -> None:
    reference = pd.read_parquet(sys.argv[1])
    current = pd.read_parquet(sys.argv[2])
    rounds = int(sys.argv[3])
    seconds = []
    snapshot = None
    for _ in range(rounds):
        start = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        seconds.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "drifted": drifted_columns(snapshot),
                "versions": {p: version(p) for p in ("evidently", "pandas", "numpy", "scipy")},
            }
        )
    )


if __name__ == "__main__":
    main()
