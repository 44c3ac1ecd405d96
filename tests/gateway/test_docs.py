"""docs/gateway.md's walkthrough, run as written against the gateway tests' platform (endpoint
`diabetes` InService): every ```bash block of the section, in order, in one `bash` with
`set -euo pipefail`, PIER_HOME set and the virtualenv on PATH, as a user's shell has them."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.boto3.platform_fixtures import BIN, Platform

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
HEADING = "## Walkthrough: a key, a call, its usage, a 429"


def walkthrough() -> list[str]:
    text = DOC.read_text()
    start = text.index(f"\n{HEADING}\n")
    end = text.find("\n## ", start + len(HEADING))
    return re.findall(r"^```bash\n(.*?)^```$", text[start:end], flags=re.S | re.M)


def test_the_walkthrough_runs_as_written(platform: Platform, tmp_path: Path) -> None:
    blocks = walkthrough()
    assert len(blocks) == 5, "the walkthrough's ```bash blocks were not found"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    env.update(PATH=f"{BIN}:{env.get('PATH', '')}", PIER_HOME=str(platform.home), COLUMNS="200")
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + "\n".join(blocks)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    assert len(re.findall(r'\{"predictions":\[[-0-9.e]+\]\}', out)) == 2, out
    assert re.search(r"^200$", out, flags=re.M), out
    assert "HTTP/1.1 429 Too Many Requests" in out
    assert re.search(r"^retry-after: [0-9]+\r?$", out, flags=re.M), out
    assert '{"message":"Too Many Requests"}' in out
    assert re.search(r"diabetes\s+│\s+3 / 3\s+│\s+1\s+│\s+3\s+│", out), out  # usage
    assert "revoked" in out
    assert out.rstrip().endswith('{"message":"Forbidden"}'), out[-500:]
