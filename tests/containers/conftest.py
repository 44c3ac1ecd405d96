"""Fixtures of the container tests: the Docker Engine, and the R example's image and model.

Tests that need Docker FAIL when no engine answers (pier.hosting.docker_engine.connect raises
DockerUnavailable with how to start one): they are never skipped. Images made here are tagged
`pier-test-*` and removed at the end of the session; the base image is reused, never removed.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pier.hosting import docker_engine

ROOT = Path(__file__).resolve().parents[2]
BYOC_R = ROOT / "examples" / "byoc-r"
BYOC_R_IMAGE = "pier-test-byoc-r"
BASE_IMAGE = os.environ.get("PIER_BASE_IMAGE", "pier-base:bookworm")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the engine; the session fails (no skip) when there is none."""
    client = docker_engine.connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def byoc_r_image(docker_client: Any) -> Iterator[str]:
    """examples/byoc-r built once per session on the base image; removed afterwards."""
    docker_client.images.build(
        path=str(BYOC_R), tag=BYOC_R_IMAGE, buildargs={"BASE_IMAGE": BASE_IMAGE}, rm=True
    )
    yield BYOC_R_IMAGE
    with contextlib.suppress(Exception):  # a test's container may still hold it: not fatal
        docker_client.images.remove(BYOC_R_IMAGE, force=True)


@dataclass(frozen=True)
class TrainedR:
    """The R example trained on `data` (target first): its /opt/ml tree and the tarball."""

    ml_root: Path
    data: np.ndarray[Any, Any]
    train_log: str

    @property
    def model_dir(self) -> Path:
        return self.ml_root / "model"

    def least_squares(self) -> np.ndarray[Any, Any]:
        """The regression lm() fits, by numpy: [intercept, coefficients...]."""
        y, x = self.data[:, 0], self.data[:, 1:]
        design = np.column_stack([np.ones(len(x)), x])
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        return beta

    def expected(self, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        beta = self.least_squares()
        return beta[0] + rows @ beta[1:]

    def tarball(self, path: Path) -> Path:
        """SageMaker's model.tar.gz: the model directory's files at the archive's top."""
        with tarfile.open(path, "w:gz") as tar:
            for item in sorted(self.model_dir.iterdir()):
                tar.add(item, arcname=item.name)
        return path


def training_data(rows: int = 120, seed: int = 7) -> np.ndarray[Any, Any]:
    """Noisy y = 3 + 2 x1 - x2 + 0.5 x3: columns (y, x1, x2, x3), spread over two files."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10, 10, size=(rows, 3))
    y = 3 + x @ np.array([2.0, -1.0, 0.5]) + rng.normal(0, 0.3, rows)
    return np.column_stack([y, x])


@pytest.fixture(scope="session")
def trained_r(
    docker_client: Any, byoc_r_image: str, tmp_path_factory: pytest.TempPathFactory
) -> TrainedR:
    """`docker run IMAGE train` with /opt/ml bind-mounted, as the host's user (the files it
    writes are the host user's), on data in SageMaker's training channel layout."""
    ml_root = tmp_path_factory.mktemp("opt-ml")
    channel = ml_root / "input" / "data" / "training"
    channel.mkdir(parents=True)
    (ml_root / "input" / "config").mkdir()
    (ml_root / "input" / "config" / "hyperparameters.json").write_text('{"intercept": "true"}')
    data = training_data()
    half = len(data) // 2
    for name, part in (("part-1.csv", data[:half]), ("part-2.csv", data[half:])):
        with (channel / name).open("w", newline="") as out:
            csv.writer(out).writerows(part.tolist())  # repr of floats: every digit
    logs = docker_client.containers.run(
        byoc_r_image,
        ["train"],
        user=f"{os.getuid()}:{os.getgid()}",
        volumes={str(ml_root): {"bind": "/opt/ml", "mode": "rw"}},
        remove=True,
        stdout=True,
        stderr=True,
    )
    return TrainedR(ml_root, data, logs.decode(errors="replace"))
