"""`pier compare` on real captured pairs: the shadow endpoints of conftest, invoked here, their
capture files read by the CLI run as a subprocess against the running platform."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.boto3.hosting import PROBE, Created, Models, invoke
from tests.boto3.platform_fixtures import BIN, Platform, platform_env, wait_for
from tests.shadow.conftest import FAILING, SHADOWED
from tests.shadow.observe import records, settled


def pier(platform: Platform, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "COLUMNS": "200"}  # rich tables: no wrapped cells
    r = subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(platform.home)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert r.returncode == code, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def paired_in_files(capture_dir: Path, endpoint: str) -> int:
    """The pairs, counted from the files themselves: shadow records whose eventId has a
    production record."""
    production = {
        r["eventMetadata"]["eventId"] for r in records(capture_dir, endpoint, "production")
    }
    return sum(
        r["eventMetadata"]["eventId"] in production
        for r in records(capture_dir, endpoint, "shadow")
    )


def captured(platform: Platform, rt: Any, capture_dir: Path, endpoint: str, n: int) -> int:
    for _ in range(n):
        invoke(rt, endpoint)
    settled(platform)
    before = paired_in_files(capture_dir, endpoint)
    # The capture writer flushes every second: wait until the count stops moving.
    wait_for(lambda: paired_in_files(capture_dir, endpoint) > 0 or None, 20, 0.2, "pairs")
    last = -1
    while (now := paired_in_files(capture_dir, endpoint)) != last:
        last = now
        time.sleep(1.5)  # one flush interval and a half
    assert now >= before
    return now


def test_compare_reports_the_regression_difference_on_real_pairs(
    platform: Platform, rt: Any, models: Models, shadowed: Created, capture_dir: Path
) -> None:
    pairs = captured(platform, rt, capture_dir, SHADOWED, 40)
    report = json.loads(pier(platform, "compare", SHADOWED, "--json").stdout)
    assert report["pairs"] == pairs
    assert report["unpaired"] == {"production": report["unpaired"]["production"], "shadow": 0}
    assert report["problem"] == "regression"
    expected = models.b.predict(PROBE)[0] - models.a.predict(PROBE)[0]  # 98 - 15
    diff = report["predictions"]["difference"]
    assert abs(diff["p50"] - expected) < 1e-6
    assert abs(diff["mean"] - expected) < 1e-6
    assert report["predictions"]["compared"] == pairs
    for side in ("production", "shadow"):
        assert report[side]["errors"] == 0
        assert report[side]["latency_ms"]["p50"] > 0
        assert report[side]["latency_ms"]["p99"] >= report[side]["latency_ms"]["p50"]
    table = pier(platform, "compare", SHADOWED).stdout
    assert f"{pairs} paired requests" in table
    assert "model latency p99 (ms)" in table
    assert "regression" in table
    agreement = json.loads(
        pier(platform, "compare", SHADOWED, "--problem", "classification", "--json").stdout
    )
    assert agreement["predictions"]["agreement"] == 0.0  # A and B never give the same answer


def test_compare_counts_the_shadows_errors(
    platform: Platform, rt: Any, failing: Created, capture_dir: Path
) -> None:
    pairs = captured(platform, rt, capture_dir, FAILING, 20)
    report = json.loads(pier(platform, "compare", FAILING, "--json").stdout)
    assert report["pairs"] == pairs
    assert report["shadow"]["error_rate"] == 1.0
    assert report["production"]["error_rate"] == 0.0
    assert report["problem"] == "none"


def test_compare_says_what_is_wrong(platform: Platform, shadowed: Created) -> None:
    missing = pier(platform, "compare", "nowhere", code=1)
    assert "Could not find endpoint" in missing.stderr
    bad = pier(platform, "compare", SHADOWED, "--since", "forever", code=2)
    assert "--since 'forever'" in bad.stderr
