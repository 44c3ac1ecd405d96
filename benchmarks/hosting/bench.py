"""What every part of the hosting benchmark shares: where it runs from, and how it talks.

The parts import benchmarks/serving's wrk runner (loadgen) and process helpers (procs): the
script that runs them (run.py, benchmarks/capture/run.py, ...) puts both directories on sys.path.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"


def say(text: str) -> None:
    print(text, flush=True)
