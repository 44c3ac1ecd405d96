"""SageMaker's shadow tests (Create/Describe/List/Start/StopInferenceExperiment) through boto3:
starting one makes the endpoint copy requests to the shadow model; stopping applies Promote,
Remove or Retain through UpdateEndpoint; bad input is refused with AWS's errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import SHORT, Created, Models, create_and_wait, error_of, invoke, variant
from tests.boto3.platform_fixtures import Platform, wait_for
from tests.shadow.conftest import EXPERIMENTAL
from tests.shadow.observe import metric, settled

ROLE = "arn:aws:iam::000000000000:role/pier"


def model_variant(name: str, model: str, count: int = 1) -> dict[str, Any]:
    return {
        "ModelName": model,
        "VariantName": name,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count},
        },
    }


def experiment(name: str, production_model: str, shadow_model: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "ShadowMode",
        "RoleArn": ROLE,
        "EndpointName": EXPERIMENTAL,
        "ModelVariants": [
            model_variant("production", production_model),
            model_variant("candidate", shadow_model),
        ],
        "ShadowModeConfig": {
            "SourceModelVariantName": "production",
            "ShadowModelVariants": [
                {"ShadowModelVariantName": "candidate", "SamplingPercentage": 100}
            ],
        },
        **extra,
    }


@pytest.fixture(scope="module")
def experimental(sm: Any, resources: None) -> Created:
    sm.create_endpoint_config(
        EndpointConfigName="cfg-experimental", ProductionVariants=[variant("production", "model-a")]
    )
    return create_and_wait(sm, EXPERIMENTAL, "cfg-experimental")


def in_service(sm: Any) -> dict[str, Any]:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=EXPERIMENTAL, WaiterConfig=SHORT)
    return sm.describe_endpoint(EndpointName=EXPERIMENTAL)


def shadow_names(described: dict[str, Any]) -> list[str]:
    return [v["VariantName"] for v in described.get("ShadowProductionVariants", [])]


def test_a_scheduled_experiment_starts_mirrors_and_promotes_its_shadow(
    platform: Platform, sm: Any, rt: Any, models: Models, experimental: Created, tmp_path: Path
) -> None:
    later = time.time() + 3600
    arn = sm.create_inference_experiment(
        **experiment(
            "promote-b", "model-a", "model-b",
            Schedule={"StartTime": later},
            Description="is B better?",
            DataStorageConfig={"Destination": tmp_path.as_uri()},
        )
    )["InferenceExperimentArn"]  # fmt: skip
    assert arn.endswith(":inference-experiment/promote-b")
    d = sm.describe_inference_experiment(Name="promote-b")
    assert d["Status"] == "Created"
    assert d["Description"] == "is B better?"
    assert {v["Status"] for v in d["ModelVariants"]} == {"Creating"}
    assert shadow_names(sm.describe_endpoint(EndpointName=EXPERIMENTAL)) == []
    listed = sm.list_inference_experiments(StatusEquals="Created")["InferenceExperiments"]
    assert [e["Name"] for e in listed] == ["promote-b"]

    sm.start_inference_experiment(Name="promote-b")
    assert sm.describe_inference_experiment(Name="promote-b")["Status"] == "Running"
    endpoint = in_service(sm)
    assert shadow_names(endpoint) == ["candidate"]
    before = metric(
        platform, "pier_endpoint_invocations_total", endpoint=EXPERIMENTAL, variant="candidate"
    )
    for _ in range(20):
        answered_by, got = invoke(rt, EXPERIMENTAL)
        assert answered_by == "production"
        assert models.which(got[0]) == "A"
    settled(platform)
    copies = metric(
        platform, "pier_endpoint_invocations_total", endpoint=EXPERIMENTAL, variant="candidate"
    )
    assert copies - before == 20  # SamplingPercentage 100
    captured = tmp_path / EXPERIMENTAL  # DataStorageConfig: captured there (flushed each second)
    wait_for(lambda: captured.is_dir() and list(captured.rglob("*.jsonl")), 20, 0.2, "capture")
    d = sm.describe_inference_experiment(Name="promote-b")
    assert {v["Status"] for v in d["ModelVariants"]} == {"InService"}
    assert d["EndpointMetadata"]["EndpointStatus"] == "InService"

    sm.stop_inference_experiment(
        Name="promote-b",
        ModelVariantActions={"production": "Remove", "candidate": "Promote"},
        Reason="B wins",
    )
    d = sm.describe_inference_experiment(Name="promote-b")
    assert d["Status"] == "Completed"
    assert d["StatusReason"] == "B wins"
    assert "CompletionTime" in d
    endpoint = in_service(sm)
    assert shadow_names(endpoint) == []
    assert [v["VariantName"] for v in endpoint["ProductionVariants"]] == ["production"]
    answered_by, got = invoke(rt, EXPERIMENTAL)
    assert answered_by == "production"
    assert models.which(got[0]) == "B"  # the shadow's model is production's now


def test_an_experiment_starts_at_once_and_its_shadow_is_removed_or_retained(
    sm: Any, rt: Any, models: Models, experimental: Created
) -> None:
    in_service(sm)
    sm.create_inference_experiment(**experiment("remove-a", "model-b", "model-a"))
    assert sm.describe_inference_experiment(Name="remove-a")["Status"] == "Running"
    with pytest.raises(ClientError) as excinfo:  # one experiment per endpoint at a time
        sm.create_inference_experiment(**experiment("second", "model-b", "model-a"))
    code, message, _ = error_of(excinfo)
    assert code == "ValidationException"
    assert "remove-a" in message
    assert shadow_names(in_service(sm)) == ["candidate"]
    sm.stop_inference_experiment(
        Name="remove-a", ModelVariantActions={"production": "Retain", "candidate": "Remove"}
    )
    d = sm.describe_inference_experiment(Name="remove-a")
    assert {v["VariantName"]: v["Status"] for v in d["ModelVariants"]} == {
        "production": "InService",
        "candidate": "Deleted",
    }
    assert shadow_names(in_service(sm)) == []
    assert models.which(invoke(rt, EXPERIMENTAL)[1][0]) == "B"

    sm.create_inference_experiment(**experiment("retain-a", "model-b", "model-a"))
    in_service(sm)
    sm.stop_inference_experiment(
        Name="retain-a",
        ModelVariantActions={"production": "Retain", "candidate": "Retain"},
        DesiredState="Cancelled",
    )
    assert sm.describe_inference_experiment(Name="retain-a")["Status"] == "Cancelled"
    assert shadow_names(sm.describe_endpoint(EndpointName=EXPERIMENTAL)) == ["candidate"]
    names = {
        e["Name"]: e["Status"]
        for e in sm.list_inference_experiments(SortBy="Name", SortOrder="Ascending")[
            "InferenceExperiments"
        ]
    }
    assert (names["remove-a"], names["retain-a"]) == ("Completed", "Cancelled")
    matching = sm.list_inference_experiments(NameContains="AIN-a")  # case-insensitive
    assert [e["Name"] for e in matching["InferenceExperiments"]] == ["retain-a"]


@pytest.mark.parametrize(
    ("change", "wanted"),
    [
        ({"EndpointName": "nowhere"}, 'Could not find endpoint'),
        (
            {"ShadowModeConfig": {"SourceModelVariantName": "elsewhere", "ShadowModelVariants": [
                {"ShadowModelVariantName": "candidate", "SamplingPercentage": 50}]}},
            "Source variant elsewhere is not among ModelVariants",
        ),
        (
            {"ModelVariants": [model_variant("production", "model-a"),
                               model_variant("candidate", "no-such-model")]},
            "Could not find model",
        ),
        ({"Type": "Bogus"}, "enum value set: [ShadowMode]"),
    ],
    ids=["unknown-endpoint", "source-not-listed", "unknown-model", "bad-type"],
)  # fmt: skip
def test_bad_experiments_are_refused_and_nothing_is_left(
    sm: Any, experimental: Created, change: dict[str, Any], wanted: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_inference_experiment(**{**experiment("bad", "model-a", "model-b"), **change})
    code, message, status = error_of(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert wanted in message
    with pytest.raises(ClientError) as excinfo:
        sm.describe_inference_experiment(Name="bad")
    assert error_of(excinfo)[0] == "ResourceNotFound"


def test_stopping_with_impossible_actions_is_refused(sm: Any, experimental: Created) -> None:
    in_service(sm)
    later = time.time() + 3600
    sm.create_inference_experiment(
        **experiment("actions", "model-a", "model-b", Schedule={"StartTime": later})
    )
    for actions, wanted in (
        ({"production": "Promote", "candidate": "Remove"}, "production variant already"),
        ({"production": "Retain", "candidate": "Promote"}, "is not possible"),
        ({"production": "Retain"}, "missing candidate"),
        ({"production": "Retain", "candidate": "Retain", "other": "Remove"}, "other"),
    ):
        with pytest.raises(ClientError) as excinfo:
            sm.stop_inference_experiment(Name="actions", ModelVariantActions=actions)
        code, message, status = error_of(excinfo)
        assert (code, status) == ("ValidationException", 400)
        assert wanted in message
    assert sm.describe_inference_experiment(Name="actions")["Status"] == "Created"
    with pytest.raises(ClientError) as excinfo:
        sm.stop_inference_experiment(Name="nothing", ModelVariantActions={"a": "Retain"})
    assert error_of(excinfo)[0] == "ResourceNotFound"
