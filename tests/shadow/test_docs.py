"""docs/shadow.md runs as written: its boto3 blocks against the package's `pier up` (the model
paths replaced by the test's two models), its `pier compare` commands on what they captured."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.boto3.hosting import PROBE, Models
from tests.boto3.platform_fixtures import Platform
from tests.shadow.test_compare import pier

DOC = Path(__file__).resolve().parents[2] / "docs" / "shadow.md"


def test_the_documented_commands_run(
    platform: Platform,
    models: Models,
    resources: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    text = DOC.read_text()
    python = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    bash = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    shown = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    assert len(python) == 2
    creds = platform.credentials()
    monkeypatch.setenv("AWS_ENDPOINT_URL", platform.url)  # as `pier env` exports
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    first = python[0].replace("/path/to/model-v1", str(models.a.path))
    first = first.replace("/path/to/model-v2", str(models.b.path))
    namespace: dict[str, Any] = {}
    exec(compile(first, str(DOC), "exec"), namespace)

    commands = [line.split("#")[0].split() for line in bash[0].splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["pier", "compare"], ["pier", "compare"]]
    table = pier(platform, *commands[0][1:]).stdout
    assert "paired requests" in table
    assert "regression" in table
    report = json.loads(pier(platform, *commands[1][1:]).stdout)
    assert 20 <= report["pairs"] <= 80  # about half of the 100 requests
    expected = models.b.predict(PROBE)[0] - models.a.predict(PROBE)[0]
    assert abs(report["predictions"]["difference"]["p50"] - expected) < 1e-6

    capsys.readouterr()
    exec(compile(python[1], str(DOC), "exec"), namespace)
    assert capsys.readouterr().out == shown[0]
    sm = namespace["sm"]
    d = sm.describe_endpoint(EndpointName="prices")
    assert "ShadowProductionVariants" not in d
    answer = namespace["rt"].invoke_endpoint(
        EndpointName="prices", Body=namespace["body"], ContentType="application/json"
    )
    prediction = json.loads(answer["Body"].read())["predictions"][0]
    assert models.which(prediction) == "B"  # the promoted candidate answers now
