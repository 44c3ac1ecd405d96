"""`pier endpoints`, `describe`, `invoke`, `logs`, `delete-endpoint` against a real `pier up`.

One platform for the module, two endpoints created with boto3 (AB: model A at weight 0.8 and
model B at 0.2; SOLO: model A alone) and the CLI run as a subprocess, as users run it. The tests
run in file order: the read-only ones first, then SOLO is deleted keeping its config, then AB
with everything only it used (model A stays: SOLO's kept config still uses it).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import SHORT, variant
from tests.boto3.platform_fixtures import (
    BIN,
    Platform,
    platform_env,
    predictions,
    running_platform,
    save_linear_model,
    serve_processes,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow
PIER = str(BIN / "pier")
AB, SOLO = "ab", "solo"
PROBE = [[1.0, 2.0]]
BODY = split_json(PROBE).decode()
ANSWERS = {"variant-a": 15.0, "variant-b": 98.0}  # model A's and model B's answer to PROBE
GREETING = "hello from the container definition"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("pier-cli") / "home") as p:
        yield p


@pytest.fixture(scope="module")
def sm(platform: Platform) -> Any:
    return platform.client("sagemaker")


@pytest.fixture(scope="module")
def deployed(sm: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    paths = {"model-a": root / "a", "model-b": root / "b"}
    save_linear_model(paths["model-a"], 1.0, 2.0, 10.0)
    save_linear_model(paths["model-b"], -3.0, 0.5, 100.0)
    sm.create_model(
        ModelName="model-a",
        PrimaryContainer={
            "ModelDataUrl": str(paths["model-a"]),
            "Environment": {"GREETING": GREETING},
        },
    )
    sm.create_model(ModelName="model-b", PrimaryContainer={"ModelDataUrl": str(paths["model-b"])})
    sm.create_endpoint_config(
        EndpointConfigName="cfg-ab",
        ProductionVariants=[
            variant("variant-a", "model-a", weight=0.8),
            variant("variant-b", "model-b", weight=0.2),
        ],
    )
    sm.create_endpoint_config(
        EndpointConfigName="cfg-solo", ProductionVariants=[variant("main", "model-a")]
    )
    for name, config in ((AB, "cfg-ab"), (SOLO, "cfg-solo")):  # both start at once
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    for name in (AB, SOLO):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=SHORT)
    return paths


def pier(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**platform_env(), "COLUMNS": "200"}  # rich tables: no wrapped cells
    return subprocess.run(
        [PIER, *args, "--home", str(home)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def not_found(sm: Any, call: str, **kw: Any) -> bool:
    try:
        getattr(sm, call)(**kw)
    except ClientError as exc:
        return "Could not find" in exc.response["Error"]["Message"]
    return False


# ------------------------------------------------------------------------ endpoints, describe


def test_endpoints_table(platform: Platform, deployed: Any) -> None:
    header, _, *rows = ok(pier(platform.home, "endpoints")).splitlines()
    starts = [header.index(h) for h in ("endpoint", "status", "variant", "weight", "instances")]
    ends = [*starts[1:], header.index("last modified")]
    cells: dict[str, list[str]] = {}
    for line in rows:
        parts = [line[a:b].strip() for a, b in zip(starts, ends, strict=True)]
        cells[parts[2]] = parts
    assert cells["variant-a"][:5] == [AB, "InService", "variant-a", "0.8 (80%)", "1/1"]
    assert cells["variant-b"][:5] == ["", "", "variant-b", "0.2 (20%)", "1/1"]
    assert cells["main"][:5] == [SOLO, "InService", "main", "1 (100%)", "1/1"]


def test_endpoints_json(platform: Platform, deployed: Any) -> None:
    listed = json.loads(ok(pier(platform.home, "endpoints", "--json")))
    assert [e["EndpointName"] for e in listed] == [AB, SOLO]
    ab = listed[0]
    assert ab["EndpointStatus"] == "InService"
    variants = {v["VariantName"]: v for v in ab["ProductionVariants"]}
    assert {n: v["CurrentWeight"] for n, v in variants.items()} == {
        "variant-a": 0.8,
        "variant-b": 0.2,
    }
    assert {v["CurrentInstanceCount"] for v in variants.values()} == {1}
    assert {v["DesiredInstanceCount"] for v in variants.values()} == {1}


def test_describe_json(platform: Platform, deployed: dict[str, Path]) -> None:
    d = json.loads(ok(pier(platform.home, "describe", AB, "--json")))
    assert d["EndpointName"] == AB
    assert d["EndpointStatus"] == "InService"
    assert d["EndpointConfigName"] == "cfg-ab"
    assert "FailureReason" not in d
    assert datetime.fromisoformat(d["CreationTime"]) <= datetime.fromisoformat(
        d["LastModifiedTime"]
    )
    variants = {v["VariantName"]: v for v in d["ProductionVariants"]}
    assert variants["variant-a"]["CurrentWeight"] == variants["variant-a"]["DesiredWeight"] == 0.8
    assert variants["variant-b"]["CurrentInstanceCount"] == 1
    assert variants["variant-b"]["DeployedImages"][0]["ResolvedImage"] == "pier/mlflow-pyfunc"
    config = {v["VariantName"]: v for v in d["EndpointConfig"]["ProductionVariants"]}
    assert config["variant-a"]["ModelName"] == "model-a"
    assert config["variant-b"]["InstanceType"] == "ml.m5.large"
    assert config["variant-b"]["InitialVariantWeight"] == 0.2
    a = d["Models"]["model-a"]["PrimaryContainer"]
    assert a["ModelDataUrl"] == str(deployed["model-a"])
    assert a["Environment"] == {"GREETING": GREETING}
    assert d["Models"]["model-b"]["PrimaryContainer"]["ModelDataUrl"] == str(deployed["model-b"])


def test_describe_human(platform: Platform, deployed: dict[str, Path]) -> None:
    text = ok(pier(platform.home, "describe", AB))
    expected = ["endpoint ab", "InService", "endpoint config cfg-ab", "ml.m5.large"]
    expected += ["model model-a", f"GREETING={GREETING}", str(deployed["model-b"])]
    assert [e for e in expected if e not in text] == []


# ---------------------------------------------------------------------------------- invoke


def test_invoke_body_from_file(platform: Platform, deployed: Any, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(split_json(PROBE))
    r = pier(platform.home, "invoke", AB, "--body", f"@{body}")
    answer = predictions(ok(r).encode())
    used = r.stderr.split("variant:")[1].strip()
    assert answer == [ANSWERS[used]]


def test_invoke_literal_body_json_output(platform: Platform, deployed: Any) -> None:
    r = pier(platform.home, "invoke", AB, "--body", BODY, "--json")
    got = json.loads(ok(r))
    assert got["content_type"] == "application/json"
    assert got["body"]["predictions"] == [ANSWERS[got["variant"]]]


def test_invoke_body_from_stdin(platform: Platform, deployed: Any) -> None:
    r = pier(platform.home, "invoke", SOLO, "--body", "@-", stdin=BODY)
    assert predictions(ok(r).encode()) == [ANSWERS["variant-a"]]
    assert "variant: main" in r.stderr


@pytest.mark.parametrize("target", sorted(ANSWERS))
def test_invoke_target_variant(platform: Platform, deployed: Any, target: str) -> None:
    for _ in range(3):  # without --variant, B would answer one time in five
        r = pier(platform.home, "invoke", AB, "--body", BODY, "--variant", target, "--json")
        got = json.loads(ok(r))
        assert got["variant"] == target
        assert got["body"]["predictions"] == [ANSWERS[target]]


def test_invoke_csv(platform: Platform, deployed: Any) -> None:
    csv_to_b = ("--body", "1.0,2.0", "--content-type", "text/csv", "--variant", "variant-b")
    r = pier(platform.home, "invoke", AB, *csv_to_b)
    assert predictions(ok(r).encode()) == [ANSWERS["variant-b"]]
    r = pier(platform.home, "invoke", AB, *csv_to_b, "--accept", "text/csv", "--json")
    got = json.loads(ok(r))
    assert got["content_type"].startswith("text/csv")
    assert float(got["body"].strip()) == ANSWERS["variant-b"]


# ------------------------------------------------------------------------------------ logs


def instance_log(home: Path, endpoint: str, variant_name: str) -> tuple[str, list[str]]:
    """(instance id, lines) of the one instance of a variant, read from its serve.log."""
    (directory,) = (home / "instances").glob(f"{endpoint}-{variant_name}-*")
    return directory.name, (directory / "serve.log").read_text().splitlines()


def test_logs_prefix_tail_and_variant(platform: Platform, deployed: Any) -> None:
    ids = {}
    for name in ANSWERS:
        ids[name], lines = instance_log(platform.home, AB, name)
        assert len(lines) > 3
    text = ok(pier(platform.home, "logs", AB, "--tail", "3"))
    for name in ANSWERS:
        prefix = f"[{name}/{ids[name]}] "
        mine = [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]
        assert mine == instance_log(platform.home, AB, name)[1][-3:]
    assert len(text.splitlines()) == 6  # nothing of SOLO's instance
    only_b = ok(pier(platform.home, "logs", AB, "--variant", "variant-b")).splitlines()
    assert only_b
    assert all(line.startswith(f"[variant-b/{ids['variant-b']}] ") for line in only_b)
    assert any("pier serve" in line for line in only_b)  # the whole log: under 100 lines


def _ctrl_c_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_logs_follow(platform: Platform, deployed: Any) -> None:
    instance_id, _ = instance_log(platform.home, SOLO, "main")
    log = platform.home / "instances" / instance_id / "serve.log"
    env = {**platform_env(), "COLUMNS": "200"}
    follower = subprocess.Popen(
        [PIER, "logs", SOLO, "--follow", "--tail", "0", "--home", str(platform.home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C as at a terminal, even when the suite itself ignores SIGINT (`make test &`
        # in a script: background jobs start with SIGINT ignored, and so would the follower)
        preexec_fn=_ctrl_c_default,
    )
    try:
        time.sleep(1.5)  # it has printed the (empty) tail and follows
        with log.open("a") as f:
            f.write("a line written while following\n")
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 10)
        assert ready, "nothing printed in 10 s"
        line = follower.stdout.readline()
        assert line == f"[main/{instance_id}] a line written while following\n"
    finally:
        follower.send_signal(signal.SIGINT)  # Ctrl-C: a quiet exit
        try:
            _, stderr = follower.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # it ignored Ctrl-C: stop it for certain
            follower.kill()
            follower.communicate()
            raise AssertionError("pier logs --follow ignored SIGINT for 10 s") from None
    assert follower.returncode == 130
    assert "Traceback" not in stderr


def test_logs_bad_tail(platform: Platform) -> None:
    for bad in ("-1", "many"):
        r = pier(platform.home, "logs", AB, "--tail", bad)
        assert r.returncode == 2
        assert "--tail" in r.stderr


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args",
    [
        ("describe", "nope"),
        ("invoke", "nope", "--body", "{}"),
        ("delete-endpoint", "nope"),
        ("logs", "nope"),
    ],
    ids=lambda a: a[0],
)
def test_unknown_endpoint(platform: Platform, deployed: Any, args: tuple[str, ...]) -> None:
    r = pier(platform.home, *args)
    assert r.returncode == 1
    assert "nope" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_invoke_missing_body_file(platform: Platform, tmp_path: Path) -> None:
    r = pier(platform.home, "invoke", AB, "--body", f"@{tmp_path / 'missing.json'}")
    assert r.returncode == 2
    assert f"cannot read {tmp_path / 'missing.json'}" in r.stderr


@pytest.mark.parametrize(
    "args",
    [("endpoints",), ("describe", AB), ("delete-endpoint", AB), ("invoke", AB, "--body", "{}")],
)
def test_platform_not_running(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = pier(tmp_path, *args)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"error: pier is not running (home {tmp_path}); start it with pier up --detach"
    )


# --------------------------------------------------------------------------------- delete


def test_delete_endpoint_keep_config(platform: Platform, sm: Any, deployed: Any) -> None:
    text = ok(pier(platform.home, "delete-endpoint", SOLO, "--keep-config"))
    assert f"deleted endpoint {SOLO}" in text
    assert "kept endpoint config cfg-solo (--keep-config)" in text
    assert "kept model model-a" in text
    assert not_found(sm, "describe_endpoint", EndpointName=SOLO)
    sm.describe_endpoint_config(EndpointConfigName="cfg-solo")
    sm.describe_model(ModelName="model-a")
    wait_for(
        lambda: (
            not [
                p
                for p in serve_processes(platform.home)
                if p.instance_dir.name.startswith(f"{SOLO}-")
            ]
            or None
        ),
        10,
        what="SOLO's instance to stop",
    )


def test_logs_of_a_deleted_endpoint(platform: Platform, deployed: Any) -> None:
    r = pier(platform.home, "logs", SOLO)
    lines = ok(r).splitlines()
    assert lines[-1].startswith(f"[main/{SOLO}-main-")
    assert "stopped" in lines[-1]
    assert "no running instance" in r.stderr


def test_delete_endpoint_and_what_only_it_used(platform: Platform, sm: Any, deployed: Any) -> None:
    text = ok(pier(platform.home, "delete-endpoint", AB))
    assert f"deleted endpoint {AB}" in text
    assert "deleted endpoint config cfg-ab" in text
    assert "deleted model model-b" in text
    assert "kept model model-a (used by endpoint config cfg-solo)" in text
    assert not_found(sm, "describe_endpoint", EndpointName=AB)
    assert not_found(sm, "describe_endpoint_config", EndpointConfigName="cfg-ab")
    assert not_found(sm, "describe_model", ModelName="model-b")
    sm.describe_model(ModelName="model-a")
    assert json.loads(ok(pier(platform.home, "endpoints", "--json"))) == []
