"""The console's browser tests: a real `pier up` (with MLflow), the real quickstart, and
Debian's Chromium driven by Playwright.

Chromium is the system's (`scripts/browser` installs Debian's `chromium` for `make test`);
Playwright never downloads a browser here. Without it the tests fail saying how to install
it: a console nobody tested in a browser is not done.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.boto3.platform_fixtures import (
    Platform,
    free_port,
    kill_leftovers,
    platform_env,
)

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("PIER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
FILLERS = 49  # with the quickstart's endpoint: 50 endpoints on the list page


@contextlib.contextmanager
def platform_of(home: Path, options: tuple[str, ...], env: dict[str, str]) -> Iterator[Platform]:
    """A `pier up` on a free port; it must stop cleanly (exit 0) on SIGTERM at the end. It
    may take minutes to start MLflow on a loaded machine: up to 300 s are allowed."""
    p = Platform(home, free_port(), None, "sqlite", options=options, env=env)
    code: int | None = None
    try:
        p.start(timeout=300)
        yield p
        code = p.terminate(timeout=180)
    finally:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        kill_leftovers(p.home)
    assert code == 0, p.log_tail()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run scripts/browser (apt-get install chromium), "
            "or point PIER_CHROMIUM at one"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (kept with pytest's temporary directories)."""
    path = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {path}")
    return path


def pier(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in platform_env().items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(home)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    """A platform with MLflow that the real `pier quickstart` deployed `diabetes` on, plus
    FILLERS endpoints (Failed: their model directory does not exist, so they cost no
    process) to measure the list page with 50 endpoints. Yields it and the quickstart's
    output."""
    home = tmp_path_factory.mktemp("console") / "home"
    env = {"PIER_METRICS_FLUSH_SECONDS": "1"}
    with platform_of(home, ("--mlflow-port", "0"), env) as p:
        done = pier(home, "quickstart")
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{p.log_tail()}"
        sm = p.client("sagemaker")
        sm.create_model(
            ModelName="filler",
            PrimaryContainer={"ModelDataUrl": str(home.parent / "no-such-model")},
        )
        sm.create_endpoint_config(
            EndpointConfigName="filler",
            ProductionVariants=[
                {"VariantName": "only", "ModelName": "filler", "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large"}
            ],
        )  # fmt: skip
        for i in range(FILLERS):
            sm.create_endpoint(EndpointName=f"filler-{i:02d}", EndpointConfigName="filler")
        yield p, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform without MLflow whose console sessions last 4 s."""
    home = tmp_path_factory.mktemp("console-short") / "home"
    env = {"PIER_CONSOLE_SESSION_SECONDS": "4"}
    with platform_of(home, ("--no-mlflow",), env) as p:
        yield p
