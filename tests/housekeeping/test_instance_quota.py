"""The platform's instance quota (`pier up --max-instances`, PIER_MAX_INSTANCES): a create or
update that would pass it answers ResourceLimitExceeded, as SageMaker answers its account-level
service limit; within it, and after a delete frees room, the same calls succeed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import running_platform, save_linear_model


def _refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error: dict[str, Any] = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error


def test_creates_and_updates_past_the_quota_are_refused(tmp_path: Path) -> None:
    model = save_linear_model(tmp_path / "model", 1.0, 2.0, 3.0)
    options = ("--no-mlflow", "--max-instances", "3")
    with running_platform(tmp_path / "home", options=options) as platform:
        sm = platform.client("sagemaker")
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(model.path)})
        for count in (1, 2, 3):
            sm.create_endpoint_config(
                EndpointConfigName=f"cfg-{count}",
                ProductionVariants=[variant("main", "m", count=count)],
            )
        sm.create_endpoint(EndpointName="one", EndpointConfigName="cfg-1")
        waiter = sm.get_waiter("endpoint_in_service")
        waiter.wait(EndpointName="one", WaiterConfig=SHORT)

        error = _refused(sm.create_endpoint, EndpointName="three", EndpointConfigName="cfg-3")
        assert error["Code"] == "ResourceLimitExceeded"
        assert error["Message"].startswith(
            "The account-level service limit 'instances for endpoint usage' is 3 Instances, "
            "with current utilization of 1 Instances and a request delta of 3 Instances."
        )
        assert "--max-instances" in error["Message"]
        # An update's new fleet runs beside the old one until the traffic has moved.
        error = _refused(sm.update_endpoint, EndpointName="one", EndpointConfigName="cfg-3")
        assert error["Code"] == "ResourceLimitExceeded"
        assert "request delta of 3 Instances" in error["Message"]
        error = _refused(
            sm.update_endpoint_weights_and_capacities,
            EndpointName="one",
            DesiredWeightsAndCapacities=[{"VariantName": "main", "DesiredInstanceCount": 4}],
        )
        assert error["Code"] == "ResourceLimitExceeded"
        assert "current utilization of 1 Instances and a request delta of 3" in error["Message"]
        # Nothing was recorded: the endpoint is as it was, the refused one does not exist.
        assert sm.describe_endpoint(EndpointName="one")["EndpointStatus"] == "InService"
        assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["one"]

        # Within the quota: two instances more (1 + 2 = 3).
        sm.create_endpoint(EndpointName="two", EndpointConfigName="cfg-2")
        error = _refused(sm.create_endpoint, EndpointName="more", EndpointConfigName="cfg-1")
        assert "current utilization of 3 Instances and a request delta of 1" in error["Message"]
        # A delete frees its instances at once.
        sm.delete_endpoint(EndpointName="two")
        sm.create_endpoint(EndpointName="more", EndpointConfigName="cfg-1")
        waiter.wait(EndpointName="more", WaiterConfig=SHORT)
        for name in ("one", "more"):
            sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName="more", WaiterConfig=SHORT)
        sm.get_waiter("endpoint_deleted").wait(EndpointName="one", WaiterConfig=SHORT)


def test_a_quota_that_is_not_a_positive_number_is_refused_by_pier_up(tmp_path: Path) -> None:
    import subprocess

    from tests.boto3.platform_fixtures import BIN, platform_env

    done = subprocess.run(
        [str(BIN / "pier"), "up", "--home", str(tmp_path / "home"), "--max-instances", "0"],
        capture_output=True,
        text=True,
        env=platform_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert "--max-instances" in done.stderr
