"""The spec's `deployment:` section: SageMaker's DeploymentConfig on the Endpoint, and each
mistake named by file:line: field."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from pier.iac.deployment import DeploymentSettings
from pier.iac.source import SourceError, load
from pier.iac.spec import load_spec, to_local_template

BASE = """\
endpoint: shop
variants:
  - {name: champion, model: "models:/shop@champion"}
"""


def doc(text: str) -> Any:
    return load(BASE + textwrap.dedent(text), "spec.yaml")


def test_a_canary_with_alarms_becomes_the_endpoints_deployment_config() -> None:
    template = to_local_template(
        doc("""\
        deployment:
          canary: 10%
          bake: 5m
          alarms: [shop-5xx, shop-latency]
          termination_wait: 30s
          timeout: 1h
        """)
    )
    endpoint = template["Resources"]["Endpoint"]["Properties"]
    assert endpoint["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            "TerminationWaitInSeconds": 30,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "shop-5xx"}, {"AlarmName": "shop-latency"}]
        },
    }
    # the engine's errors about it name the spec's line of `deployment:`
    assert endpoint.key_lines["DeploymentConfig"] == 4


def test_linear_by_instances_and_all_at_once() -> None:
    linear = load_spec(doc("deployment: {linear: 2, bake: 90}\n")).deployment
    assert linear is not None
    routing = linear.deployment_config()["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "LINEAR",
        "WaitIntervalInSeconds": 90,
        "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 2},
    }
    assert DeploymentSettings().deployment_config() == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
            "TerminationWaitInSeconds": 0,
        }
    }
    assert (
        "DeploymentConfig" not in to_local_template(doc(""))["Resources"]["Endpoint"]["Properties"]
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("deployment:\n  canary: 10%\n  linear: 20%\n", "spec.yaml:4: deployment: "),
        ("deployment:\n  canary: ten\n", "spec.yaml:5: deployment.canary: "),
        ("deployment:\n  canary: 150%\n", "at most 100%"),
        ("deployment:\n  bake: 2h\n", "spec.yaml:5: deployment.bake: "),
        ("deployment:\n  bake: soon\n", "'soon' is not a duration such as 30s, 5m or 1h"),
        ("deployment:\n  timeout: 1m\n", "spec.yaml:5: deployment.timeout: "),
        ("deployment:\n  alarms: [" + ", ".join(f"a{i}" for i in range(11)) + "]\n",
         "spec.yaml:5: deployment.alarms: "),
        ("deployment:\n  canery: 10%\n", "spec.yaml:5: deployment.canery: "),
    ],
)  # fmt: skip
def test_mistakes_are_named_by_file_line_and_field(section: str, expected: str) -> None:
    with pytest.raises(SourceError) as excinfo:
        load_spec(doc(section))
    assert expected in excinfo.value.message
    if "canary: 10%\n  linear" in section:
        assert "canary or linear, not both" in excinfo.value.message
