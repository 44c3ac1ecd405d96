"""What the shadow tests read back from the platform: /metrics samples and capture records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.boto3.platform_fixtures import Platform, wait_for


def metric(platform: Platform, name: str, **labels: str) -> float:
    """The sum of the samples of `name` (e.g. pier_endpoint_invocations_total) whose labels
    include `labels` (0 when there is none)."""
    text = httpx.get(platform.url + "/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def settled(platform: Platform) -> None:
    """Wait until no copy to a shadow is in flight."""
    wait_for(
        lambda: metric(platform, "pier_shadow_requests_in_flight") == 0 or None,
        30, 0.1, "the copies to shadow variants to be answered",
    )  # fmt: skip


def records(capture_dir: Path, endpoint: str, variant: str) -> list[dict[str, Any]]:
    """Every capture record written for the variant so far."""
    out = []
    for path in sorted((capture_dir / endpoint / variant).rglob("*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out
