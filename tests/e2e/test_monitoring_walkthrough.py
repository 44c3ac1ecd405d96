"""The walkthrough at the top of docs/monitoring.md, run as written against a real platform.

`pier quickstart --home TMP --port FREE` starts pier and MLflow and deploys endpoint `diabetes`;
then every ```bash block of the section "Walkthrough: from a deployed model to an alarm" runs,
in order, in one `bash` with `set -euo pipefail` (so `eval "$(pier env)"` carries over), with
the virtualenv on PATH and PIER_HOME set as a user's shell would have them. The drift report
must name the shifted feature alone, the alarm must reach ALARM and call the webhook the
walkthrough's WEBHOOK_URL names (a receiver in this test), and nothing may print a warning.
`pier down` stops everything at the end.

Only the platform's clocks are made faster: alarms are evaluated every second with no delay
(PIER_ALARM_EVALUATION_SECONDS, PIER_ALARM_EVALUATION_DELAY_SECONDS) and endpoint metrics are
flushed every second (PIER_METRICS_FLUSH_SECONDS); the commands are the documented ones.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.boto3.platform_fixtures import BIN, free_port, kill_leftovers, wait_for

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
HEADING = "## Walkthrough: from a deployed model to an alarm"
FAST = {
    "PIER_ALARM_EVALUATION_SECONDS": "1",
    "PIER_ALARM_EVALUATION_DELAY_SECONDS": "0",
    "PIER_METRICS_FLUSH_SECONDS": "1",
}
WALKTHROUGH_TIMEOUT = 300.0


def walkthrough() -> list[str]:
    """The ```bash blocks between the section's heading and the next `## ` heading."""
    text = DOC.read_text()
    start = text.index(f"\n{HEADING}\n")
    end = text.find("\n## ", start + len(HEADING))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M)


class Webhook:
    """Records the JSON bodies POSTed to it; answers 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                hook.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pier-alarms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A shell of a user who activated the virtualenv: nothing of pier, MLflow or AWS yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "MLFLOW_", "AWS_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["PIER_HOME"] = str(home)
    env["PIER_MLFLOW_PORT"] = "0"  # a free port: never collide with a developer's MLflow
    env["COLUMNS"] = "250"  # rich's tables, unwrapped
    return {**env, **extra}


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `script` in one bash; stop it at the first `warning:` line or at the timeout.
    Returns (exit code, stdout and stderr interleaved)."""
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=cwd, env=env, text=True, start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("warning:"):  # a walkthrough that warns shows the wrong thing
                lines.append("[stopped at the first warning]\n")
                os.killpg(proc.pid, signal.SIGTERM)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(WALKTHROUGH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
        lines.append(f"\n[killed after {WALKTHROUGH_TIMEOUT:.0f} s]\n")
    reader.join(10)
    if proc.stdout is not None:
        proc.stdout.close()
    return code, "".join(lines)


def test_the_walkthrough_runs_as_written(tmp_path: Path, webhook: Webhook) -> None:
    blocks = walkthrough()
    assert len(blocks) >= 5, "the walkthrough's ```bash blocks were not found"
    home = tmp_path / "home"
    env = user_env(home, **FAST)
    try:
        started = time.monotonic()
        quickstart = subprocess.run(
            [str(BIN / "pier"), "quickstart", "--home", str(home), "--port", str(free_port())],
            capture_output=True, text=True, timeout=300, env=env, check=False,
        )  # fmt: skip
        assert quickstart.returncode == 0, quickstart.stdout + quickstart.stderr
        script = "set -euo pipefail\n" + "\n".join(blocks)
        code, out = run_bash(script, tmp_path, {**env, "WEBHOOK_URL": webhook.url})
        print(f"quickstart and walkthrough: {time.monotonic() - started:.0f} s")
        assert code == 0, out
        assert not re.search(r"^warning:", out, flags=re.M), out

        # 1. metrics: the quickstart's requests, live and as 1-minute series.
        assert 'pier_endpoint_invocations_total{endpoint="diabetes",variant="champion"}' in out
        assert "diabetes / champion (per 1 min)" in out
        # 2. capture on; 3. the baseline from the dataset logged with the champion's run.
        assert "'CaptureStatus': 'Started'" in out
        assert "Baseline of dataset 'diabetes-train'" in out, out
        assert "Left out 1 column(s) the model does not take as input: target" in out
        # 5. normal traffic: no drift; shifted bmi: bmi alone.
        runs = re.findall(r"^diabetes-drift on endpoint diabetes: (\w+)", out, flags=re.M)
        assert runs == ["Completed", "CompletedWithViolations", "CompletedWithViolations"], out
        assert set(re.findall(r"Baseline drift distance for '(\w+)'", out)) == {"bmi"}, out
        assert re.search(r"^│ bmi\s+│ baseline_drift_check\s+│", out, flags=re.M), out
        # 6. the alarm on the published drift fired, and called the webhook.
        states = re.findall(r"^diabetes-bmi-drift\s+(\w+)\s", out, flags=re.M)  # `pier alarms`
        assert states == ["ALARM"], out

        def fired() -> list[dict[str, Any]]:
            return [n for n in webhook.received if n["NewStateValue"] == "ALARM"]

        wait_for(fired, 15, what="the webhook's ALARM notification")
        assert [n["AlarmName"] for n in fired()] == ["diabetes-bmi-drift"], webhook.received
        assert fired()[0]["Trigger"]["MetricName"] == "feature_baseline_drift_bmi"
    finally:
        down = subprocess.run(
            [str(BIN / "pier"), "down", "--home", str(home)],
            capture_output=True, text=True, timeout=180, env=env, check=False,
        )  # fmt: skip
        kill_leftovers(home)
    assert down.returncode == 0, down.stdout + down.stderr
