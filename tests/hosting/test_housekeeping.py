"""pier.hosting.housekeeping.sweep on real directories: what it removes, what it keeps."""

from __future__ import annotations

import os
from pathlib import Path

from pier.hosting.housekeeping import sweep
from pier.hosting.model_local import cache_key

NOW = 1_000_000.0
GRACE = 3600.0


def _made(path: Path, age: float, directory: bool = True) -> Path:
    if directory:
        path.mkdir(parents=True)
        (path / "serve.log").write_text("log")
        os.utime(path / "serve.log", (NOW - age, NOW - age))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_what_no_running_instance_uses_goes_after_the_grace_period(tmp_path: Path) -> None:
    instances, models = tmp_path / "instances", tmp_path / "models"
    mlflow = models / "mlflow"
    running = _made(instances / "ep-main-1", age=2 * GRACE)
    stopped_long_ago = _made(instances / "ep-main-2", age=2 * GRACE)
    stopped_just_now = _made(instances / "ep-main-3", age=10)
    unpacked_in_use = _made(models / ("a" * 40), age=2 * GRACE)
    (unpacked_in_use / "model").mkdir()
    unpacked_unused = _made(models / ("b" * 40), age=2 * GRACE)
    downloaded_in_use = _made(mlflow / cache_key("models:/m/3"), age=2 * GRACE)
    downloaded_unused = _made(mlflow / cache_key("models:/m/2"), age=2 * GRACE)
    stale_lock = _made(mlflow / f".{cache_key('models:/m/2')}.lock", 2 * GRACE, directory=False)
    fresh_download = _made(mlflow / cache_key("runs:/abc/model"), age=1)
    os.utime(mlflow, (NOW - 2 * GRACE, NOW - 2 * GRACE))

    swept = sweep(
        instances,
        [models, mlflow],
        running={"ep-main-1"},
        model_paths={str(unpacked_in_use / "model"), "models:/m/3"},
        grace_s=GRACE,
        now=NOW,
    )

    assert (swept.instance_dirs, swept.models) == (1, 3)
    assert not stopped_long_ago.exists()
    assert not unpacked_unused.exists()
    assert not downloaded_unused.exists()
    assert not stale_lock.exists()
    for kept in (running, stopped_just_now, unpacked_in_use, downloaded_in_use, fresh_download):
        assert kept.exists(), kept
    assert mlflow.is_dir()  # a cache root inside another is never an entry to remove


def test_missing_directories_are_nothing_to_sweep(tmp_path: Path) -> None:
    swept = sweep(
        tmp_path / "instances",
        [tmp_path / "models"],
        running=set(),
        model_paths=set(),
        grace_s=0,
    )
    assert (swept.instance_dirs, swept.models) == (0, 0)
