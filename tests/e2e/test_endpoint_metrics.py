"""SageMaker's endpoint metrics at the platform's GET /metrics, counted exactly.

A real `pier up`, one endpoint with two variants; requests sent with boto3 to each variant
(TargetVariant), some of which the model refuses (4xx) — then the Prometheus text is parsed
and every counter must equal what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    Platform,
    running_platform,
    save_linear_model,
    split_json,
)

pytestmark = pytest.mark.slow
GOOD = split_json([[1.0, 2.0]])
BAD = json.dumps({"dataframe_split": {"columns": ["a"], "data": [["not a number"]]}})


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("metrics")
    with running_platform(root / "home") as p:
        save_linear_model(root / "a", 1.0, 2.0, 10.0)
        save_linear_model(root / "b", -3.0, 0.5, 100.0)
        sm = p.client("sagemaker")
        for name in ("a", "b"):
            sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(root / name)})
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[variant("va", "a", weight=0.5), variant("vb", "b", weight=0.5)],
        )
        sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="e", WaiterConfig=SHORT)
        yield p


def scrape(p: Platform) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(p.url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(values: dict[Any, float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counts_latencies_and_instances(platform: Platform) -> None:
    runtime = platform.client("sagemaker-runtime")
    before = scrape(platform)
    sent = {"va": (5, 2), "vb": (3, 0)}  # variant: (good requests, refused requests)
    for name, (good, bad) in sent.items():
        for _ in range(good):
            runtime.invoke_endpoint(EndpointName="e", TargetVariant=name, Body=GOOD,
                                    ContentType="application/json")  # fmt: skip
        for _ in range(bad):
            with pytest.raises(ClientError) as caught:
                runtime.invoke_endpoint(EndpointName="e", TargetVariant=name, Body=BAD,
                                        ContentType="application/json")  # fmt: skip
            assert caught.value.response["Error"]["Code"] == "ModelError"
    # Refused before a variant is chosen: counted against no variant.
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName="e", TargetVariant="nope", Body=GOOD,
                                ContentType="application/json")  # fmt: skip
    after = scrape(platform)

    def delta(name: str, v: str) -> float:
        labels = {"endpoint": "e", "variant": v}
        return sample(after, name, **labels) - sample(before, name, **labels)

    for v, (good, bad) in sent.items():
        assert delta("pier_endpoint_invocations_total", v) == good + bad
        assert delta("pier_endpoint_invocation_4xx_errors_total", v) == bad
        assert delta("pier_endpoint_invocation_5xx_errors_total", v) == 0
        assert delta("pier_endpoint_invocation_model_errors_total", v) == bad
        assert delta("pier_endpoint_model_latency_seconds_count", v) == good + bad
        assert delta("pier_endpoint_model_latency_seconds_sum", v) > 0
        assert delta("pier_endpoint_overhead_latency_seconds_count", v) == good
        assert sample(after, "pier_endpoint_variant_instances", endpoint="e", variant=v) == 1
    assert not any(labels and dict(labels).get("variant") == "nope" for _, labels in after)

    cpu = [k for k in after if k[0] == "pier_instance_cpu_seconds_total"]
    memory = [k for k in after if k[0] == "pier_instance_memory_bytes"]
    assert {dict(k[1])["variant"] for k in cpu} == {"va", "vb"}
    assert all(after[k] > 0 for k in cpu)
    assert all(after[k] > 10 * 1024 * 1024 for k in memory)  # a Python process with a model
