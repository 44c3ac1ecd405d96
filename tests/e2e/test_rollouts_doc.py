"""docs/rollouts.md's walkthrough, run as written against a real platform: every ```bash block
of "Walkthrough: a canary that an alarm rolls back", in order, in one `bash` with
`set -euo pipefail`, with the virtualenv on PATH and PIER_HOME set as a user's shell has them;
then what the page says happens is checked in the output."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.boto3.platform_fixtures import running_platform
from tests.e2e.test_monitoring_walkthrough import run_bash, user_env

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "rollouts.md"
HEADING = "## Walkthrough: a canary that an alarm rolls back"


def walkthrough() -> list[str]:
    """The ```bash blocks between the section's heading and the next `## ` heading."""
    text = DOC.read_text()
    start = text.index(HEADING)
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M)


def test_the_rollouts_walkthrough_runs_as_written(tmp_path: Path) -> None:
    blocks = walkthrough()
    assert len(blocks) == 4, "the walkthrough's ```bash blocks were not found"
    home = tmp_path / "home"
    with running_platform(home) as platform:
        started = time.monotonic()
        env = user_env(platform.home)
        code, out = run_bash("set -euo pipefail\n" + "\n".join(blocks), tmp_path, env)
        print(f"walkthrough: {time.monotonic() - started:.0f} s")
    assert code == 0, out
    assert not re.search(r"^warning:", out, flags=re.M), out
    # 1. deployed on v1; 2. the canary bakes, and pier describe shows it in progress
    assert out.count("churn serves churn-v1") == 2, out
    assert "Baking - step 1 of 2: canary (10%), 10% of the traffic on the new fleet" in out, out
    assert "deployment in progress" in out, out
    assert re.search(r"step\s+1 of 2: canary \(10%\)", out), out
    assert re.search(r"new fleet\s+10% of the traffic", out), out
    assert re.search(r"alarms\s+churn-5xx \(one in ALARM rolls back\)", out), out
    # 3. the alarm rolled it back, as the page says
    reason = (
        "FailureReason: Update to churn-v2 was rolled back, still serving churn-v1: the alarm "
        '"churn-5xx" went into ALARM while canary (10%) baked (step 1 of 2)'
    )
    assert reason in out, out
    assert re.search(r"churn-v1 → churn-v2\s+│\s+CANARY\s+│\s+RolledBack", out), out
