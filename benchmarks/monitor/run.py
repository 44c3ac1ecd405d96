"""Monitoring benchmark: profiling and comparing 1,000,000 rows × 10 features, pier against
Evidently's DataDriftPreset on the same data, in one run.

    .venv/bin/python benchmarks/monitor/run.py                  # 3 rounds each (≈ 4 min)
    .venv/bin/python benchmarks/monitor/run.py --rows 100000 --rounds 1 --no-evidently   # smoke

pier's time is everything a monitoring job computes from data already in memory: profile the
reference (baseline) and the current window, write statistics.json / constraints.json in
memory, compare and list the violations. Evidently's is ``Report([DataDriftPreset()]).run``.
Evidently 0.7.23 does not import with pandas 3, so it runs in its own venv
(benchmarks/monitor/.venv-evidently, created here with pinned pandas/numpy). Reading the
Parquet files is not timed on either side. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pier.monitor.stats.baseline import suggest_baseline
from pier.monitor.stats.drift import compare
from pier.monitor.stats.profile import profile_frame
from pier.monitor.stats.violations import check

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
EVIDENTLY_VENV = HERE / ".venv-evidently"
# Evidently 0.7.23 needs pandas < 3; pandas 2.2.3 has wheels for numpy 2.1 on Python 3.11.
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas==2.2.3", "numpy==2.1.3"]
NUMERIC = 8
CATEGORIES = np.array([f"c{i:02d}" for i in range(12)])


def say(message: str) -> None:
    print(f"[monitor-bench] {message}", flush=True)


def make_data(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """8 numeric and 2 categorical features; the current data drifts in 3 of them."""
    rng = np.random.default_rng(seed)

    def frame(drift: bool) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        for i in range(NUMERIC):
            kind = i % 4
            if kind == 0:
                values = rng.standard_normal(rows)
            elif kind == 1:
                values = rng.lognormal(0.0, 0.5, rows)
            elif kind == 2:
                values = rng.uniform(0, 100, rows)
            else:
                values = rng.poisson(5, rows).astype(float)
            columns[f"num_{i}"] = values
        if drift:
            columns["num_0"] = columns["num_0"] + 0.5  # 0.5σ
            columns["num_1"] = columns["num_1"] * 1.3
        shares = np.linspace(2, 1, len(CATEGORIES))
        shares /= shares.sum()
        columns["cat_0"] = CATEGORIES[rng.choice(len(CATEGORIES), rows, p=shares)]
        if drift:  # 15 % of the traffic moves to the first category (+0.14 in share)
            shares = 0.85 * shares + 0.15 * np.eye(len(CATEGORIES))[0]
        columns["cat_1"] = CATEGORIES[rng.choice(len(CATEGORIES), rows, p=shares)]
        return pd.DataFrame(columns)

    return frame(drift=False), frame(drift=True)


def run_pier(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    start = time.perf_counter()
    baseline = suggest_baseline(reference)
    profiled_reference = time.perf_counter()
    window = profile_frame(current)
    profiled_current = time.perf_counter()
    report = compare(baseline, window)
    violations = check(baseline, window, drift=report)
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "baseline": profiled_reference - start,
        "profile_current": profiled_current - profiled_reference,
        "compare_and_check": end - profiled_current,
        "drifted": [f.name for f in report.drifted],
        "violations": len(violations.violations),
    }


def run_scipy_ks(reference: pd.DataFrame, current: pd.DataFrame) -> float:
    """Exact two-sample KS on every numeric column: the distance pier approximates."""
    start = time.perf_counter()
    for i in range(NUMERIC):
        stats.ks_2samp(reference[f"num_{i}"].to_numpy(), current[f"num_{i}"].to_numpy())
    return time.perf_counter() - start


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    stamp = EVIDENTLY_VENV / ".pins"
    if python.exists() and stamp.exists() and stamp.read_text() == " ".join(EVIDENTLY_PINS):
        return python
    say(f"creating {EVIDENTLY_VENV} ({' '.join(EVIDENTLY_PINS)})")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(EVIDENTLY_VENV)], check=True)
    (EVIDENTLY_VENV / ".gitignore").write_text("*\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *EVIDENTLY_PINS], check=True)
    stamp.write_text(" ".join(EVIDENTLY_PINS))
    return python


def run_evidently(work: Path, rounds: int) -> dict[str, Any]:
    python = ensure_evidently()
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    result = subprocess.run(
        [
            str(python),
            str(HERE / "evidently_drift.py"),
            str(work / "reference.parquet"),
            str(work / "current.parquet"),
            str(rounds),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows on each side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each contender")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-evidently", action="store_true", help="pier (and scipy) only")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--work", type=Path, default=RESULTS / "data", help="the Parquet files")
    args = parser.parse_args()

    say(f"data: {args.rows:,} rows × 10 features on each side (seed {args.seed})")
    reference, current = make_data(args.rows, args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(args.work / "reference.parquet", index=False)
    current.to_parquet(args.work / "current.parquet", index=False)

    results: dict[str, Any] = {
        "rows": args.rows,
        "features": reference.shape[1],
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "numpy": np.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "truth": ["num_0", "num_1", "cat_1"],
    }
    pier_rounds = []
    for i in range(args.rounds):
        pier_rounds.append(run_pier(reference, current))
        say(f"pier round {i + 1}: {pier_rounds[-1]['seconds']:.2f} s")
    results["pier"] = {
        "rounds": pier_rounds,
        "median_seconds": statistics.median(r["seconds"] for r in pier_rounds),
        "drifted": pier_rounds[-1]["drifted"],
    }
    ks = [run_scipy_ks(reference, current) for _ in range(args.rounds)]
    results["scipy_ks_numeric"] = {"seconds": ks, "median_seconds": statistics.median(ks)}
    say(f"scipy ks_2samp (8 numeric columns): {statistics.median(ks):.2f} s")
    if not args.no_evidently:
        try:
            evidently = run_evidently(args.work, args.rounds)
        except subprocess.CalledProcessError as exc:
            results["evidently"] = {"error": (exc.stderr or str(exc))[-2000:]}
            say(f"Evidently failed: {results['evidently']['error']}")
        else:
            evidently["median_seconds"] = statistics.median(evidently["seconds"])
            results["evidently"] = evidently
            results["ratio_evidently_over_pier"] = (
                evidently["median_seconds"] / results["pier"]["median_seconds"]
            )
            for i, seconds in enumerate(evidently["seconds"]):
                say(f"Evidently round {i + 1}: {seconds:.2f} s")
    results["machine"]["load_average_at_end"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")

    pier = results["pier"]
    say(f"pier median {pier['median_seconds']:.2f} s; drifted: {pier['drifted']}")
    if "ratio_evidently_over_pier" in results:
        evidently = results["evidently"]
        say(
            f"Evidently median {evidently['median_seconds']:.2f} s; drifted: "
            f"{evidently['drifted']}; ratio {results['ratio_evidently_over_pier']:.1f}x"
        )
    say(f"results: {args.output}")


if __name__ == "__main__":
    main()
