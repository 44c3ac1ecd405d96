"""Suite-wide fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_mlflow_environment_leaks() -> Iterator[None]:
    """MLflow's fluent API writes MLFLOW_EXPERIMENT_ID (and the tracking URI) into os.environ,
    where every later subprocess of the suite would inherit a server that is long gone."""
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)
