"""The pier home is the owner's alone: a real `pier up` (process backend) with an endpoint
that captures data leaves nothing under its home that group or others can read, write or
enter: the state database (containers' Environment values), captured payloads, logs, instance
records. A home made wider before is narrowed at start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import running_platform, save_linear_model, split_json, wait_for

pytestmark = pytest.mark.slow


def wider_than_owner(home: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files, ""]:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{oct(mode & 0o777)} {path.relative_to(home)}")
    return found


def test_everything_in_the_home_is_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # an existing home, made by an older pier or by hand
    save_linear_model(tmp_path / "model", 1.0, 2.0, 3.0)
    with running_platform(home) as p:
        sm, rt = p.client("sagemaker"), p.client("sagemaker-runtime")
        sm.create_model(
            ModelName="m",
            PrimaryContainer={
                "ModelDataUrl": str(tmp_path / "model"),
                "Environment": {"API_TOKEN": "secret"},
            },
        )
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[variant("primary", "m")],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": "file:captured",  # relative: under the home's capture/
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )
        sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="e", WaiterConfig=SHORT)
        for _ in range(3):
            rt.invoke_endpoint(
                EndpointName="e", Body=split_json([[1.0, 2.0]]), ContentType="application/json"
            )
        wait_for(lambda: any((home / "capture").rglob("*.jsonl")), 30, what="a captured file")
        assert wider_than_owner(home) == []
    assert list((home / "capture").rglob("*.jsonl"))
    assert (home / "logs" / "platform.log").exists()
    assert wider_than_owner(home) == []
