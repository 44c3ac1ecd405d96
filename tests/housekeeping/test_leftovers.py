"""Housekeeping: a platform that creates and deletes endpoints keeps no instance directories
and no cached models of them once the grace period is over (here 0 s, swept every second)."""

from __future__ import annotations

import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.boto3.hosting import SHORT, invoke, variant
from tests.boto3.platform_fixtures import running_platform, save_linear_model, wait_for

ENDPOINTS = 20
AT_ONCE = 4  # the machine is shared: a few instances start at a time


def _archive(model_dir: Path, target: Path) -> Path:
    """A SageMaker-style model.tar.gz of the MLflow model (unpacked into the model cache)."""
    with tarfile.open(target, "w:gz") as tar:
        for item in model_dir.iterdir():
            tar.add(item, arcname=item.name)
    return target


def _leftovers(home: Path) -> list[str]:
    """Everything under the home's instance directories and model caches (the caches' own
    folders aside)."""
    roots = [home / "instances", home / "models", home / "models" / "mlflow"]
    found = []
    for root in roots:
        if root.is_dir():
            found += [str(p) for p in root.iterdir() if p not in roots]
    return sorted(found)


def test_deleted_endpoints_leave_nothing_behind(tmp_path: Path) -> None:
    model = save_linear_model(tmp_path / "model", 1.0, 2.0, 3.0)
    env = {"PIER_HOUSEKEEPING_GRACE_SECONDS": "0", "PIER_HOUSEKEEPING_INTERVAL_SECONDS": "1"}
    with running_platform(tmp_path / "home", env=env) as platform:
        sm = platform.client("sagemaker")
        rt = platform.client("sagemaker-runtime")
        home = platform.home

        def cycle(i: int) -> tuple[str, Any]:
            # Each endpoint its own archive: its own entry in the model cache.
            archive = _archive(model.path, tmp_path / f"model-{i}.tar.gz")
            sm.create_model(ModelName=f"m{i}", PrimaryContainer={"ModelDataUrl": str(archive)})
            sm.create_endpoint_config(
                EndpointConfigName=f"c{i}", ProductionVariants=[variant("main", f"m{i}")]
            )
            sm.create_endpoint(EndpointName=f"e{i}", EndpointConfigName=f"c{i}")
            sm.get_waiter("endpoint_in_service").wait(EndpointName=f"e{i}", WaiterConfig=SHORT)
            answer = invoke(rt, f"e{i}", [[1.0, 1.0]])
            sm.delete_endpoint(EndpointName=f"e{i}")
            sm.get_waiter("endpoint_deleted").wait(EndpointName=f"e{i}", WaiterConfig=SHORT)
            sm.delete_endpoint_config(EndpointConfigName=f"c{i}")
            sm.delete_model(ModelName=f"m{i}")
            return f"e{i}", answer

        with ThreadPoolExecutor(AT_ONCE) as pool:
            answers = dict(pool.map(cycle, range(ENDPOINTS)))
        assert answers == {f"e{i}": ("main", [6.0]) for i in range(ENDPOINTS)}
        # They were there: 20 instance directories and 20 unpacked models at least once.
        wait_for(lambda: _leftovers(home) == [], timeout=60, what="housekeeping")

        # An endpoint that runs keeps its instance's directory and its model: another
        # endpoint created and deleted after it is swept, it is not.
        archive = _archive(model.path, tmp_path / "kept.tar.gz")
        sm.create_model(ModelName="kept", PrimaryContainer={"ModelDataUrl": str(archive)})
        sm.create_endpoint_config(
            EndpointConfigName="kept", ProductionVariants=[variant("main", "kept")]
        )
        sm.create_endpoint(EndpointName="kept", EndpointConfigName="kept")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="kept", WaiterConfig=SHORT)
        kept = _leftovers(home)
        assert [Path(p).parent.name for p in kept] == ["instances", "models"], kept
        cycle(ENDPOINTS)
        wait_for(lambda: _leftovers(home) == kept, timeout=60, what="the second sweep")
        assert invoke(rt, "kept", [[1.0, 1.0]]) == ("main", [6.0])
