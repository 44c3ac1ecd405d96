"""Worker defaults: `pier serve` one per usable CPU (at most 4); instances behind the platform
leave one CPU to it; PIER_WORKERS, SAGEMAKER_MODEL_SERVER_WORKERS and --workers override."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pier.hosting.workers import workers_environment
from pier.settings import (
    MAX_DEFAULT_WORKERS,
    ContainerServeSettings,
    ServeSettings,
    default_workers,
    instance_workers,
)

CPUS = len(os.sched_getaffinity(0))


def test_the_server_defaults_to_one_worker_per_usable_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PIER_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    assert default_workers() == min(CPUS, MAX_DEFAULT_WORKERS)
    assert ServeSettings().workers == default_workers()
    assert ContainerServeSettings().workers == default_workers()
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    assert ContainerServeSettings().workers == 3
    monkeypatch.setenv("PIER_WORKERS", "5")
    assert ServeSettings().workers == 5
    assert ServeSettings(workers=1).workers == 1  # --workers


def test_the_default_follows_the_affinity_mask() -> None:
    # One CPU allowed (as a container's cpuset would): one worker, and instances get one too.
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from pier.settings import default_workers, instance_workers;"
        "print(default_workers(), instance_workers())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_instances_leave_one_cpu_to_the_platform() -> None:
    assert instance_workers() == max(1, min(MAX_DEFAULT_WORKERS, CPUS - 1))
    count = str(instance_workers())
    assert workers_environment({}) == {
        "PIER_WORKERS": count,
        "SAGEMAKER_MODEL_SERVER_WORKERS": count,
    }
    # the model's Environment decides when it names a number
    assert workers_environment({"PIER_WORKERS": "2"}) == {}
    assert workers_environment({"SAGEMAKER_MODEL_SERVER_WORKERS": "3"}) == {"PIER_WORKERS": "3"}
