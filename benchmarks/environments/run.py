"""Model environment creation: pier (uv) vs MLflow's virtualenv manager, first and cached.

The model is the diabetes random forest trained with scikit-learn 1.6.1 (tests/e2e/
other_sklearn.py: its training venv and model are cached under the temporary directory).
Each tool gets fresh cache roots in a temporary directory, so "first" builds an environment
and "cached" finds it; package caches (uv's, pip's) stay as they are on this machine: say so
when quoting the numbers.

    .venv/bin/python -m benchmarks.environments.run
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mlflow.utils.virtualenv import _get_or_create_virtualenv
from tests.e2e.other_sklearn import trained_model

from pier.hosting import environments, model_env


def timed(what: Callable[[], object]) -> float:
    started = time.perf_counter()
    what()
    return time.perf_counter() - started


def main() -> None:
    model = trained_model()
    env = model_env.read(model)
    print(f"model {model}: {environments.describe(env)}")
    with tempfile.TemporaryDirectory(prefix="pier-bench-envs-") as tmp:
        root = Path(tmp)
        for name, build in (
            ("pier (uv)", lambda: environments.ensure(env, root / "pier")),
            ("mlflow --env-manager virtualenv", lambda: mlflow_env(model, root, "virtualenv")),
            ("mlflow --env-manager uv", lambda: mlflow_env(model, root, "uv")),
        ):
            try:
                first = timed(build)
                cached = timed(build)
            except Exception as exc:  # say why a manager cannot run here, measure the others
                print(f"{name:34s} failed: {str(exc).strip().splitlines()[-1][:200]}")
                continue
            print(f"{name:34s} first {first:7.2f} s   cached {cached:6.3f} s", flush=True)


def mlflow_env(model: Path, root: Path, manager: Literal["virtualenv", "uv"]) -> None:
    """MLflow's environment for `model` as `mlflow models serve` makes it: envs under
    MLFLOW_ENV_ROOT, Pythons from the default pyenv root (an env_root_dir would make MLflow
    install Python into its own pyenv root, which needs python.org)."""
    os.environ["MLFLOW_ENV_ROOT"] = str(root / f"mlflow-{manager}")
    _get_or_create_virtualenv(model, env_manager=manager)


if __name__ == "__main__":
    main()
