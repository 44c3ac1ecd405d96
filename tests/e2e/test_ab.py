"""`pier ab` against a real `pier up`: two variants that answer differently, the challenger
refusing a quarter of the requests (its model's signature wants a column `c` that a quarter of
the requests leave out), and the commands of docs/ab.md's worked example report it worse, with
an always-valid interval that excludes 0; bad options exit 2 naming them."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression

from tests.boto3 import platform_fixtures
from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import BIN, Platform, running_platform, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "ab.md"
SENT = 240  # per variant; every 4th request has no column c
ENDPOINT = "shop"
LABEL = json.dumps(
    {
        "groundTruthData": {"data": "15.0", "encoding": "CSV"},
        "eventMetadata": {"eventId": "ID"},
        "eventVersion": "0",
    }
)


def save_model(path: Path, needs_c: bool) -> None:
    """y = a + 2b + 10 (+ c): with `needs_c` its signature requires a column c, so MLflow
    refuses a request without it (a ModelError), which the other model answers."""
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 2.0]})
    y = X["a"] + 2 * X["b"] + 10
    if needs_c:
        X["c"] = [0.0, 1.0, 0.0, 1.0]
        y = y + X["c"]
    model = LinearRegression().fit(X, y)
    mlflow.sklearn.save_model(
        model, str(path), signature=infer_signature(X, model.predict(X)),
        serialization_format="cloudpickle", pip_requirements=["mlflow", "scikit-learn"],
    )  # fmt: skip


def body(i: int) -> bytes:
    if i % 4 == 0:
        split = {"columns": ["a", "b"], "data": [[1.0, 2.0]]}
    else:
        split = {"columns": ["a", "b", "c"], "data": [[1.0, 2.0, 3.0]]}
    return json.dumps({"dataframe_split": split}).encode()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("ab")
    with running_platform(root / "home", env={"PIER_METRICS_FLUSH_SECONDS": "1"}) as p:
        save_model(root / "champion", needs_c=False)
        save_model(root / "challenger", needs_c=True)
        sm = p.client("sagemaker")
        for name in ("champion", "challenger"):
            sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(root / name)})
        sm.create_endpoint_config(
            EndpointConfigName="shop-ab",
            ProductionVariants=[
                variant("champion", "champion", 0.5),
                variant("challenger", "challenger", 0.5),
            ],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": (root / "captured").as_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="shop-ab")
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=SHORT)
        rt = p.client("sagemaker-runtime")
        refused = {"champion": 0, "challenger": 0}
        labels = []
        for name in refused:
            for i in range(SENT):
                try:
                    rt.invoke_endpoint(EndpointName=ENDPOINT, TargetVariant=name, Body=body(i),
                                       ContentType="application/json",
                                       InferenceId=f"{name}-{i}")  # fmt: skip
                except rt.exceptions.ModelError:
                    refused[name] += 1
                else:  # the truth is the champion's answer, 15; the challenger says 18
                    labels.append(LABEL.replace("ID", f"{name}-{i}"))
        assert refused == {"champion": 0, "challenger": SENT // 4}
        (root / "labels.jsonl").write_text("\n".join(labels) + "\n")
        labelled = str(root / "labels.jsonl")
        done = pier(p, "ground-truth", "upload", labelled, "--endpoint", ENDPOINT)
        assert done.returncode == 0, done.stderr
        cw = p.client("cloudwatch")
        wait_for(lambda: _flushed(cw), timeout=30, interval=0.5, what="the metrics flush")
        yield p


def _flushed(cw: Any) -> bool:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    for name in ("champion", "challenger"):
        points = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocations", Period=3600, Statistics=["Sum"],
            Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT},
                        {"Name": "VariantName", "Value": name}],
            StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=2),
        )["Datapoints"]  # fmt: skip
        if sum(p["Sum"] for p in points) != SENT:
            return False
    return True


def pier(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**platform_fixtures.platform_env(), "COLUMNS": "200"}
    return subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(platform.home)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def documented_commands() -> list[list[str]]:
    section = DOC.read_text().split("## A worked example", 1)[1]
    [block] = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:1]
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def test_the_worse_variant_is_reported_worse(platform: Platform) -> None:
    def labelled() -> dict[str, Any] | None:  # captures reach their files a moment later
        done = pier(platform, "ab", ENDPOINT, "--json")
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        rows = {v["VariantName"]: v["LabelledRows"] for v in report["Variants"]}
        return report if rows == {"champion": SENT, "challenger": SENT - SENT // 4} else None

    report = wait_for(labelled, timeout=60, interval=1, what="every labelled capture")
    assert report["Control"] == "champion"
    variants = {v["VariantName"]: v for v in report["Variants"]}
    assert variants["champion"]["Invocations"] == SENT
    assert variants["champion"]["ErrorRate"] == 0
    assert variants["challenger"]["ErrorRate"] == pytest.approx(0.25)
    [errors] = [c for c in report["Comparisons"] if c["Metric"] == "error_rate"]
    assert errors["VariantName"] == "challenger"
    assert errors["Verdict"] == "worse"
    assert errors["Difference"] == pytest.approx(0.25)
    assert 0 < errors["Lower"] < 0.25 < errors["Upper"]
    assert errors["PValue"] <= 0.05
    [latency] = [c for c in report["Comparisons"] if c["Metric"] == "latency"]
    assert latency["Verdict"] == "no decision yet"  # one or two minutes: too few batches
    # quality: mean absolute error against the uploaded labels, lower is better
    assert report["QualityMetric"] == "mae"
    assert variants["champion"]["Quality"] == pytest.approx(0.0, abs=1e-6)
    assert variants["challenger"]["Quality"] == pytest.approx(3.0)
    assert variants["challenger"]["LabelledRows"] == SENT - SENT // 4
    [quality] = [c for c in report["Comparisons"] if c["Metric"] == "quality"]
    assert quality["LowerIsBetter"] is True
    assert quality["Verdict"] == "no decision yet"  # per-minute MAE: too few minutes yet


def test_the_documented_commands(platform: Platform) -> None:
    lines = documented_commands()
    assert [line[:2] for line in lines] == [["pier", "ab"]] * len(lines)
    outputs = []
    for line in lines:
        done = pier(platform, *line[1:])
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    cells = [re.sub(r"[\s│┃]+", " ", o) for o in outputs]  # rich's table borders as spaces
    assert re.search(
        r"challenger error_rate \+0\.2500 \[0\.\d+, 0\.\d+\] 0\.0\d{3} worse", cells[0]
    ), cells[0]
    as_json = json.loads(outputs[1])
    assert [c["Metric"] for c in as_json["Comparisons"]] == ["error_rate"]
    # the challenger as control: the champion is better on errors
    assert re.search(
        r"champion error_rate -0\.2500 \[-0\.\d+, -0\.\d+\] 0\.0\d{3} better", cells[2]
    ), cells[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--metric", "speed"), "--metric 'speed': choose from error_rate, latency, quality"),
        (("--control", "nobody"), "control 'nobody' is not a production variant of shop"),
        (("--alpha", "1.5"), "--alpha 1.5: a probability between 0 and 1"),
        (("--since", "soon"), "--since 'soon': give a duration"),
    ],
)
def test_bad_options_exit_2_naming_them(platform: Platform, args: tuple[str, ...],
                                        message: str) -> None:  # fmt: skip
    done = pier(platform, "ab", ENDPOINT, *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split()), done.stderr


def test_a_missing_endpoint_exits_1_with_sagemakers_words(platform: Platform) -> None:
    done = pier(platform, "ab", "nowhere")
    assert done.returncode == 1
    assert "ValidationException: Could not find endpoint" in done.stderr
