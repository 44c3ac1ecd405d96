"""Suite-wide fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def migrated_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A state store at the latest migration: SQLite in a temporary directory, and a fresh
    database on the local PostgreSQL (dropped afterwards). Tests using it run on both."""
    from pier.store import db
    from tests.boto3.platform_fixtures import postgres_database

    if request.param == "sqlite":
        engine = db.create(f"sqlite:///{tmp_path_factory.mktemp('store')}/pier.db")
        db.migrate(engine)
        yield engine
        engine.dispose()
        return
    with postgres_database() as url:
        engine = db.create(url)
        db.migrate(engine)
        yield engine
        engine.dispose()
