"""What a new user reads in the first hour (issue 14): output that never hides what matters,
and messages for the states users hit. A real `pier up`, the CLI run as a subprocess: in a
terminal of 80 columns (a pty), and into a pipe.

Two endpoints with long names: GOOD (two variants) and FAILED (its model directory is missing,
so it fails with a FailureReason naming the path).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    platform_env,
    running_platform,
    save_linear_model,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow
PIER = str(BIN / "pier")
# Longer than the names the columns of 80 cut before (`diabete…`), short enough to fit whole.
GOOD, FAILED = "diabetes-regression", "diabetes-no-model"
CHAMPION, CHALLENGER = "champion-gbr", "challenger-rf"
ALARM = "diabetes-latency-above-250ms"
BODY = split_json([[1.0, 2.0]]).decode()
COLUMNS = 80


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("first-hour") / "home") as p:
        yield p


@pytest.fixture(scope="module")
def deployed(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """GOOD in service, FAILED failed; the FailureReason."""
    root = tmp_path_factory.mktemp("models")
    save_linear_model(root / "a", 1.0, 2.0, 10.0)
    missing = root / "a-model-directory-that-was-never-written" / "model"
    sm = platform.client("sagemaker")
    sm.create_model(ModelName="diabetes-a", PrimaryContainer={"ModelDataUrl": str(root / "a")})
    sm.create_model(ModelName="diabetes-gone", PrimaryContainer={"ModelDataUrl": str(missing)})
    sm.create_endpoint_config(
        EndpointConfigName="diabetes-two-variants",
        ProductionVariants=[
            variant(CHAMPION, "diabetes-a", weight=0.9),
            variant(CHALLENGER, "diabetes-a", weight=0.1),
        ],
    )
    sm.create_endpoint_config(
        EndpointConfigName="diabetes-gone", ProductionVariants=[variant("main", "diabetes-gone")]
    )
    sm.create_endpoint(EndpointName=GOOD, EndpointConfigName="diabetes-two-variants")
    sm.create_endpoint(EndpointName=FAILED, EndpointConfigName="diabetes-gone")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=GOOD, WaiterConfig=SHORT)
    with pytest.raises(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=FAILED, WaiterConfig=SHORT)
    reason: str = sm.describe_endpoint(EndpointName=FAILED)["FailureReason"]
    assert str(missing) in reason
    return reason


def pier(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI into a pipe, with no COLUMNS set: what scripts and CI see."""
    env = {k: v for k, v in platform_env().items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [PIER, *args, "--home", str(home)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def in_terminal(home: Path, *args: str) -> str:
    """The CLI's standard output in a terminal (a pty) of 80 columns; it must exit 0."""
    import fcntl
    import struct
    import termios

    env = {k: v for k, v in platform_env().items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm", NO_COLOR="1")
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        [PIER, *args, "--home", str(home)],
        stdin=child, stdout=child, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    os.close(child)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([main], [], [], 60)
            assert ready, "no output in 60 s"
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        stderr = proc.communicate(timeout=30)[1].decode()
    assert proc.returncode == 0, stderr
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode()).replace("\r\n", "\n")


def nothing_cut(text: str) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= COLUMNS, text


def squeezed(text: str) -> str:
    """The text without its whitespace and box lines: a wrapped value reads whole again."""
    return "".join(c for c in text if not c.isspace() and c not in "│─╭╮╰╯┃━┏┓┗┛┡┩┣┫╇╈┼┬┴")


# ---------------------------------------------------------------------- output at 80 columns


def test_endpoints_at_80_columns(platform: Platform, deployed: str) -> None:
    text = in_terminal(platform.home, "endpoints")
    nothing_cut(text)
    for name in (GOOD, FAILED, CHAMPION, CHALLENGER):
        assert name in text  # whole, on one line


def test_describe_failed_at_80_columns_shows_the_whole_reason(
    platform: Platform, deployed: str
) -> None:
    text = in_terminal(platform.home, "describe", FAILED)
    nothing_cut(text)
    assert FAILED in text
    assert squeezed(deployed) in squeezed(text)


def test_describe_at_80_columns_shows_names_and_images(platform: Platform, deployed: str) -> None:
    text = in_terminal(platform.home, "describe", GOOD)
    nothing_cut(text)
    for name in (GOOD, CHAMPION, CHALLENGER, "diabetes-a", "diabetes-two-variants"):
        assert name in text
    assert "pier/mlflow-pyfunc" in squeezed(text)


def test_piped_output_is_printed_whole(platform: Platform, deployed: str) -> None:
    r = pier(platform.home, "describe", FAILED)
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    for line in deployed.splitlines():
        assert line.strip() in r.stdout  # each line of the reason on one line
    r = pier(platform.home, "endpoints")
    lines = [line for line in r.stdout.splitlines() if CHAMPION in line]
    assert len(lines) == 1
    assert GOOD in lines[0]
    assert "InService" in lines[0]


def test_metrics_at_80_columns(platform: Platform, deployed: str) -> None:
    rt = platform.client("sagemaker-runtime")
    for _ in range(3):
        rt.invoke_endpoint(EndpointName=GOOD, Body=BODY, ContentType="application/json")

    def recorded() -> bool:
        r = pier(platform.home, "metrics", GOOD, "--json")
        return r.returncode == 0 and any(json.loads(r.stdout)["Variants"].values())

    wait_for(recorded, 120, interval=1, what="the endpoint's metrics")
    text = in_terminal(platform.home, "metrics", GOOD)
    nothing_cut(text)
    words = text.split()
    for word in ("invocations", "4xx", "5xx", "model", "errors", "overhead", "CPU", "memory"):
        assert word in words  # every header word whole (a header may wrap between words)
    assert f"{GOOD} / " in text


def test_alarm_panel_at_80_columns(platform: Platform, deployed: str) -> None:
    cw = platform.client("cloudwatch")
    about = "Pages the on-call engineer when the champion's model latency stays above 250 ms"
    cw.put_metric_alarm(
        AlarmName=ALARM, AlarmDescription=about, Namespace="AWS/SageMaker",
        MetricName="ModelLatency", Statistic="Average", Period=60, EvaluationPeriods=3,
        DatapointsToAlarm=2, Threshold=250_000, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "EndpointName", "Value": GOOD},
                    {"Name": "VariantName", "Value": CHAMPION}],
    )  # fmt: skip
    text = in_terminal(platform.home, "alarms", ALARM)
    nothing_cut(text)
    assert ALARM in squeezed(text)
    for whole in (about, f"EndpointName={GOOD}", f"VariantName={CHAMPION}"):
        assert squeezed(whole) in squeezed(text)
    listing = in_terminal(platform.home, "alarms")
    nothing_cut(listing)
    assert ALARM in listing


# ------------------------------------------------------------------ messages for the states


def test_invoking_a_failed_endpoint_says_failed_and_why(platform: Platform, deployed: str) -> None:
    r = pier(platform.home, "invoke", FAILED, "--body", BODY)
    assert r.returncode == 1
    assert f"Endpoint {FAILED} is Failed" in r.stderr
    assert "not found" not in r.stderr
    assert "a-model-directory-that-was-never-written" in r.stderr
    rt = platform.client("sagemaker-runtime")
    with pytest.raises(ClientError) as caught:
        rt.invoke_endpoint(EndpointName=FAILED, Body=BODY, ContentType="application/json")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "is Failed" in caught.value.response["Error"]["Message"]
    r = pier(platform.home, "invoke", "nope", "--body", BODY)
    assert "Endpoint nope of account" in r.stderr
    assert "not found" in r.stderr


def test_metrics_of_a_missing_endpoint_say_it_does_not_exist(
    platform: Platform, deployed: str
) -> None:
    r = pier(platform.home, "metrics", "nope")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: endpoint nope does not exist (pier endpoints lists them)"
    r = pier(platform.home, "metrics", FAILED)  # exists, never invoked
    assert r.returncode == 1
    assert "no invocations yet?" in r.stderr


def test_json_sent_as_csv_quotes_a_short_prefix(platform: Platform, deployed: str) -> None:
    rows = [[float(i), 2.0] for i in range(300)]
    body = split_json(rows).decode()
    r = pier(platform.home, "invoke", GOOD, "--body", body, "--content-type", "text/csv")
    assert r.returncode == 1
    assert "is a JSON document" in r.stderr
    assert "Content-Type: application/json" in r.stderr
    assert len(r.stderr) < 600
    assert r.stderr.count("dataframe_split") == 1


def test_accept_a_model_server_cannot_produce_is_refused(platform: Platform, deployed: str) -> None:
    r = pier(platform.home, "invoke", GOOD, "--body", BODY, "--accept", "image/png")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "--accept image/png" in r.stderr
    assert "answered application/json" in r.stderr
    for fine in ("text/csv", "application/*", "*/*", "image/png, */*;q=0.1"):
        r = pier(platform.home, "invoke", GOOD, "--body", BODY, "--accept", fine)
        assert r.returncode == 0, (fine, r.stderr)
