"""Ground truth and model quality through a real `pier up`: an endpoint with two variants and
data capture, invocations with InferenceId (single rows, a batch, CSV, none), labels uploaded
with the commands docs/monitoring.md shows (run here as written), and `pier quality`'s numbers
checked against values computed from the answers the test received.

Capture files are pier's own (the platform writes them); the platform is a subprocess spoken to
with boto3, the CLI and curl, as users do.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    BIN,
    REGION,
    Platform,
    platform_env,
    predictions,
    running_platform,
    save_linear_model,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "monitoring.md"
ENDPOINT = "diabetes"  # the name the documented commands use


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", section("Ground truth and model quality"), re.S)


@dataclass
class Sent:
    variant: str
    inference_id: str | None
    answers: list[float]
    labels: list[float] = field(default_factory=list)


@dataclass
class Scene:
    platform: Platform
    work: Path  # where the documented commands run: labels.jsonl is there
    capture: Path
    sent: list[Sent]

    def pier(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([str(BIN / "pier"), *args], self)


def run(argv: list[str], scene: Scene) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "PIER_HOME": str(scene.platform.home), "COLUMNS": "200"}
    return subprocess.run(
        argv, cwd=scene.work, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def capture_lines(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(x) for p in sorted(root.rglob("*.jsonl")) for x in p.read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("ground-truth")
    with running_platform(root / "home") as p:
        champion = save_linear_model(root / "champion", 1.0, 2.0, 10.0)
        challenger = save_linear_model(root / "challenger", 1.5, 1.0, 8.0)
        sm = p.client("sagemaker")
        for m in (champion, challenger):
            sm.create_model(ModelName=m.path.name, PrimaryContainer={"ModelDataUrl": str(m.path)})
        capture = root / "captured"
        sm.create_endpoint_config(
            EndpointConfigName="with-capture",
            ProductionVariants=[variant("champion", "champion"),
                                variant("challenger", "challenger")],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": capture.as_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                             "JsonContentTypes": ["application/json"]},
            },
        )  # fmt: skip
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="with-capture")
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig=SHORT)
        sent = invoke_all(p)
        work = root / "work"
        work.mkdir()
        scene = Scene(p, work, capture, sent)
        total = len(sent)
        wait_for(lambda: len(capture_lines(capture)) == total, 30, what=f"{total} captures")
        write_labels(scene)
        yield scene


def invoke_all(p: Platform) -> list[Sent]:
    runtime = p.client("sagemaker-runtime")
    sent: list[Sent] = []

    def invoke(target: str, rows: list[list[float]], inference_id: str | None) -> None:
        extra = {"InferenceId": inference_id} if inference_id else {}
        answer = runtime.invoke_endpoint(
            EndpointName=ENDPOINT, Body=split_json(rows), ContentType="application/json",
            TargetVariant=target, **extra,
        )  # fmt: skip
        assert answer["InvokedProductionVariant"] == target
        sent.append(Sent(target, inference_id, predictions(answer["Body"].read())))

    for i in range(5):
        invoke("champion", [[float(i), 0.5 * i]], f"c{i}")
    invoke("champion", [[1.0, 1.0], [2.0, 0.0], [3.0, 2.0]], "c-batch")
    invoke("champion", [[7.0, 1.0]], None)  # labelled by its capture's eventId
    for i in range(4):
        invoke("challenger", [[float(i), 1.0]], f"h{i}")
    answer = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, Body=b"4,1\n", ContentType="text/csv", Accept="text/csv",
        TargetVariant="challenger", InferenceId="h-csv",
    )  # fmt: skip
    sent.append(Sent("challenger", "h-csv", [float(answer["Body"].read().decode().strip())]))
    invoke("challenger", [[6.0, 2.0]], None)  # never labelled
    return sent


def record(event_id: str, data: str, encoding: str = "CSV") -> str:
    return json.dumps(
        {
            "groundTruthData": {"data": data, "encoding": encoding},
            "eventMetadata": {"eventId": event_id},
            "eventVersion": "0",
        }
    )


def write_labels(scene: Scene) -> None:
    """labels.jsonl: CSV and JSON labels, a batch's list, one by eventId, one for nothing."""
    by_id = {s.inference_id: s for s in scene.sent}
    lines = []
    for i, offset in enumerate([1.0, -2.0, 0.5, 3.0]):  # c4 stays unlabelled
        s = by_id[f"c{i}"]
        s.labels = [s.answers[0] + offset]
        lines.append(record(f"c{i}", repr(s.labels[0])))
    batch = by_id["c-batch"]
    batch.labels = [a + o for a, o in zip(batch.answers, [0.25, -0.5, 1.0], strict=True)]
    lines.append(record("c-batch", json.dumps(batch.labels), "JSON"))
    anonymous = next(s for s in scene.sent if s.inference_id is None and s.variant == "champion")
    captured = capture_lines(scene.capture / ENDPOINT / "champion")
    event_id = next(
        r["eventMetadata"]["eventId"] for r in captured if "inferenceId" not in r["eventMetadata"]
    )
    anonymous.labels = [anonymous.answers[0] - 1.0]
    lines.append(record(event_id, repr(anonymous.labels[0])))
    for i, offset in enumerate([2.0, -1.0, -3.0, 0.5]):
        s = by_id[f"h{i}"]
        s.labels = [s.answers[0] + offset]
        lines.append(record(f"h{i}", repr(s.labels[0])))
    csv_sent = by_id["h-csv"]
    csv_sent.labels = [csv_sent.answers[0] + 1.5]
    lines.append(record("h-csv", json.dumps(csv_sent.labels[0]), "JSON"))
    lines.append(record("ghost", "1.0"))  # matches no capture
    (scene.work / "labels.jsonl").write_text("\n".join(lines) + "\n")


def expected(scene: Scene, target: str) -> dict[str, float]:
    """rmse, mae, r2 by their definitions, from what the test was answered and labelled."""
    labelled = [s for s in scene.sent if s.variant == target and s.labels]
    pairs = [(y, p) for s in labelled for y, p in zip(s.labels, s.answers, strict=True)]
    n = len(pairs)
    mean = sum(y for y, _ in pairs) / n
    squared = sum((p - y) ** 2 for y, p in pairs)
    return {
        "count": n,
        "rmse": math.sqrt(squared / n),
        "mae": sum(abs(p - y) for y, p in pairs) / n,
        "r2": 1 - squared / sum((y - mean) ** 2 for y, _ in pairs),
    }


def quality_json(scene: Scene) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(scene.pier("quality", ENDPOINT, "--json")))
    return data


def check_numbers(scene: Scene, data: dict[str, Any]) -> None:
    assert set(data["variants"]) == {"champion", "challenger"}
    for target in ("champion", "challenger"):
        total = data["variants"][target]["total"]
        want = expected(scene, target)
        assert total["count"] == want["count"]
        for name in ("rmse", "mae", "r2"):
            assert total[name] == pytest.approx(want[name], rel=1e-12, abs=1e-12), name
        buckets = data["variants"][target]["buckets"]
        assert sum(b["count"] for b in buckets) == total["count"]
        assert sum(b["captures_without_label"] for b in buckets) == 1
    champion = data["variants"]["champion"]["total"]
    challenger = data["variants"]["challenger"]["total"]
    assert (champion["count"], champion["inferences"], champion["captures_without_label"]) == (
        8, 6, 1,
    )  # fmt: skip
    assert (challenger["count"], challenger["inferences"]) == (5, 5)
    assert data["captures"] == 13
    assert data["labels_without_capture"] == 1  # "ghost"
    assert data["problems"] == {}
    assert data["unreadable_capture_lines"] == 0


def test_documented_commands_show_exact_quality_per_variant(scene: Scene) -> None:
    commands = [line for line in bash_blocks()[0].splitlines() if line.startswith("pier ")]
    assert [c.split()[:2] for c in commands] == [
        ["pier", "ground-truth"],
        ["pier", "quality"],
        ["pier", "quality"],
    ]
    outputs = [ok(run([str(BIN / "pier"), *shlex.split(c)[1:]], scene)) for c in commands]
    assert outputs[0].strip() == (
        f"Uploaded 12 ground-truth record(s) with 14 label(s) for endpoint {ENDPOINT}."
    )
    stored = list((scene.platform.home / "ground-truth" / ENDPOINT).rglob("*.jsonl"))
    assert len(stored) == 1
    assert len(stored[0].read_text().splitlines()) == 12

    data = json.loads(outputs[2])
    check_numbers(scene, data)
    assert data["labels"] == 12
    assert data["ground_truth"] == (scene.platform.home / "ground-truth").as_uri()

    table = outputs[1]
    for target in ("champion", "challenger"):
        want = expected(scene, target)
        total = next(x for x in table.splitlines() if target in x and " all " in x)
        cells = [c.strip() for c in total.split("│")[1:-1]]
        assert cells[2:6] == [
            str(want["count"]),
            *(f"{want[n]:.4f}" for n in ("rmse", "mae", "r2")),
        ]
    assert "13 captured inference(s), 12 label record(s); 1 label(s) match no capture" in table


def test_the_documented_api_call_stores_the_same_labels_again(scene: Scene) -> None:
    answer = ok(run(["bash", "-euo", "pipefail", "-c", bash_blocks()[1]], scene))
    assert json.loads(answer) == {"accepted": 12, "labels": 14}
    data = quality_json(scene)
    assert data["replaced_labels"] == 12  # the same ids again: the later labels count
    check_numbers(scene, data)


def test_bad_uploads(scene: Scene) -> None:
    store = scene.platform.home / "ground-truth"
    before = sorted(store.rglob("*.jsonl"))
    good = (scene.work / "labels.jsonl").read_text().splitlines()[0]
    bad = scene.work / "bad.jsonl"
    wrong_version = good.replace('"eventVersion": "0"', '"eventVersion": 0')
    bad.write_text(f"{good}\n{wrong_version}\n{{oops\n")
    r = scene.pier("ground-truth", "upload", "bad.jsonl", "--endpoint", ENDPOINT)
    assert r.returncode == 2, r.stdout + r.stderr
    assert 'bad.jsonl:2: eventVersion must be "0", not 0' in r.stderr
    assert "bad.jsonl:3: not valid JSON" in r.stderr
    assert "nothing was uploaded" in r.stderr

    r = scene.pier("ground-truth", "upload", "labels.jsonl", "--endpoint", "nope")
    assert r.returncode == 1
    assert "ResourceNotFound: Endpoint nope of account 000000000000 not found." in r.stderr

    url = f"{scene.platform.url}/endpoints/{ENDPOINT}/ground-truth"
    headers = {"Content-Type": "application/jsonlines"}
    unsigned = httpx.post(url, content=bad.read_bytes(), headers=headers)
    assert unsigned.status_code == 403
    refused = signed_post(scene.platform, url, bad.read_bytes())
    assert refused.status_code == 400
    body = refused.json()
    assert (body["ErrorCode"], body["line"]) == ("ValidationError", 2)
    assert [p["line"] for p in body["problems"]] == [2, 3]
    assert sorted(store.rglob("*.jsonl")) == before  # nothing stored


def signed_post(p: Platform, url: str, body: bytes) -> httpx.Response:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = p.credentials()
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/jsonlines"})
    key = Credentials(creds["access_key_id"], creds["secret_access_key"])
    SigV4Auth(key, "sagemaker", REGION).add_auth(request)
    return httpx.post(url, content=body, headers=dict(request.headers.items()))
