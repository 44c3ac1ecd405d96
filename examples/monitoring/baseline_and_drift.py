"""Baselines and drift, end to end, in SageMaker Model Monitor's files.

1. Suggest a baseline from training data: statistics.json and constraints.json.
2. Profile two hours of traffic separately (as per-hour, per-instance jobs would) and store
   the profiles.
3. Roll the stored profiles up into one window, compare it with the baseline and write
   constraint_violations.json.

    .venv/bin/python examples/monitoring/baseline_and_drift.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pier.monitor.stats.baseline import read_baseline, suggest_baseline, write_baseline
from pier.monitor.stats.formats import ConstraintViolations
from pier.monitor.stats.profile import DatasetProfile, merge_profiles, profile_frame
from pier.monitor.stats.violations import check, write_violations

PLANS = np.array(["basic", "plus", "premium"])


def traffic(rng: np.random.Generator, rows: int, *, income_shift: float = 0.0) -> pd.DataFrame:
    """Requests to a credit model: age (Integral), income (Fractional), plan (String)."""
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.lognormal(10.5 + income_shift, 0.4, rows),
            "plan": PLANS[rng.choice(3, rows, p=[0.6, 0.3, 0.1])],
        }
    )


def main(out: Path) -> ConstraintViolations:
    rng = np.random.default_rng(0)
    baseline = suggest_baseline(traffic(rng, 20_000))
    write_baseline(baseline, out / "baseline")

    quiet = traffic(rng, 5_000)
    drifted = traffic(rng, 5_000, income_shift=0.5)  # incomes up by 65 %
    drifted.loc[:249, "plan"] = "platinum"  # a plan the model never saw
    for hour, frame in enumerate([quiet, drifted]):
        (out / f"profile-hour-{hour}.json").write_bytes(profile_frame(frame).to_bytes())

    stored = sorted(out.glob("profile-hour-*.json"))
    window = merge_profiles(DatasetProfile.from_bytes(p.read_bytes()) for p in stored)
    violations = check(read_baseline(out / "baseline"), window)
    write_violations(violations, out)
    return violations


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="pier-"))
    result = main(target)
    for violation in result.violations:
        print(f"{violation.constraint_check_type}: {violation.description}")
    print(
        f"files in {target}: baseline/statistics.json, baseline/constraints.json, "
        "constraint_violations.json"
    )
