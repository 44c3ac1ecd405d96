"""README.md and docs/ run as written, in reading order, after `make demo`.

One quickstart home (`pier quickstart`, what `make demo` runs), then every shell block of
README.md and docs/*.md in tests/docs/blocks.py's ORDER, in one bash shell: variables and
the working directory carry from block to block, as in a reader's terminal. A command that
exits non-zero fails the test naming the block, unless the page marks the block
`<!-- docs-run: expect-fail: ... -->`; `<!-- docs-run: skip: ... -->` blocks are not run
(CONTRIBUTING.md). The reader's HOME is a temporary directory (pier's home is the default,
~/.pier); pier's ports are free ones (PIER_PORT, PIER_MLFLOW_PORT=0), so a developer's own
pier and MLflow are never touched.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boto3.platform_fixtures import BIN
from tests.docs.blocks import ROOT, all_blocks, script
from tests.e2e.test_serve_process import free_port

pytestmark = pytest.mark.slow
#: What a reader's working directory (a clone of the repository) holds that the docs use.
LINKED = ("examples", "benchmarks", "scripts", "Makefile", "pyproject.toml", "src")


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A clone-like working directory and a reader's environment; pier is stopped after."""
    work = tmp_path / "pier"
    work.mkdir()
    for name in LINKED:
        (work / name).symlink_to(ROOT / name)
    (work / ".venv").symlink_to(BIN.parent)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_", "MLFLOW_"))}
    env.update(
        HOME=str(home),
        PATH=f"{BIN}:{env.get('PATH', '')}",
        PIER_PORT=str(free_port()),
        PIER_MLFLOW_PORT="0",
        UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
        COLUMNS="160",
    )
    try:
        yield work, env
    finally:
        subprocess.run(
            [str(BIN / "pier"), "down"], env=env, cwd=work, capture_output=True, timeout=180
        )


def test_every_shell_block_runs_in_order_after_make_demo(
    reader: tuple[Path, dict[str, str]],
) -> None:
    work, env = reader
    demo = subprocess.run(
        [".venv/bin/pier", "quickstart"], cwd=work, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    (work.parent / "docs-run.sh").write_text(script(all_blocks()))
    log = work.parent / "docs-run.log"
    with log.open("w") as out:
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", str(work.parent / "docs-run.sh")],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=2400,
        )
    text = log.read_text()
    assert done.returncode == 0, text[-6000:]
    assert "::docs-run all blocks ran" in text, text[-6000:]
