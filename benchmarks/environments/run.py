"""Model environment creation: pier (uv) vs MLflow's virtualenv manager, first and cached.

The model is the diabetes random forest trained with scikit-learn 1.6.1 (tests/e2e/
other_sklearn.py: its training venv and model are cached under the temporary directory).
Each tool gets fresh cache roots in a temporary directory, so "first" builds an environment
and "cached" finds it; package caches (uv's, pip's) stay as they are on this machine: say so
when quoting the numbers.

    .venv/bin/python -m benchmarks.environments.run
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.utils.virtualenv import _get_or_create_virtualenv

from pier.hosting import environments, model_env
from tests.e2e.other_sklearn import trained_model


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
        rows = []
        for name, build in (
            ("pier (uv)", lambda: environments.ensure(env, root / "pier")),
            (
                "mlflow --env-manager virtualenv",
                lambda: _get_or_create_virtualenv(
                    model, env_root_dir=str(root / "mlflow-virtualenv"), env_manager="virtualenv"
                ),
            ),
            (
                "mlflow --env-manager uv",
                lambda: _get_or_create_virtualenv(
                    model, env_root_dir=str(root / "mlflow-uv"), env_manager="uv"
                ),
            ),
        ):
            first = timed(build)
            cached = timed(build)
            rows.append((name, first, cached))
            print(f"{name:34s} first {first:7.2f} s   cached {cached:6.3f} s", flush=True)


if __name__ == "__main__":
    main()
