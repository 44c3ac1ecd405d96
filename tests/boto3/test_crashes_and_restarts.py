"""Crashes and restarts: an instance SIGKILLed under load, the platform SIGKILLed and restarted
on the same home and port (twice), and what must hold across them (instance records,
credentials, logs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.boto3.hosting import (
    PHOENIX,
    PROBE,
    ROLLING,
    ROUTING,
    SHORT,
    Created,
    Load,
    Models,
    describe_variants,
    error_of,
    invoke,
)
from tests.boto3.platform_fixtures import (
    BIN,
    REGION,
    Platform,
    endpoint_processes,
    free_port,
    pid_alive,
    platform_env,
    predictions,
    serve_processes,
    split_json,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_sigkill_of_an_instance_under_load(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    threads = 4
    # Run without test_updates (this file alone), ROLLING is still as created: bring it where
    # test_updates leaves it, on model B (and its old fleet gone) with two instances.
    if sm.describe_endpoint(EndpointName=ROLLING)["EndpointConfigName"] == "cfg-a":
        sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-b")
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
        wait_for(
            lambda: len(endpoint_processes(platform.home, ROLLING)) == 1, 40, what="old fleet gone"
        )
    if describe_variants(sm, ROLLING)["main"]["DesiredInstanceCount"] < 2:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=ROLLING,
            DesiredWeightsAndCapacities=[{"VariantName": "main", "DesiredInstanceCount": 2}],
        )
        sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    procs = wait_for(
        lambda: [p] if len(p := endpoint_processes(platform.home, ROLLING)) == 2 else None,
        20,
        what="two instances",
    )
    victim = procs[0][0].pid

    def recovered() -> bool:
        v = describe_variants(sm, ROLLING)["main"]
        pids = {p.pid for p in endpoint_processes(platform.home, ROLLING)}
        return (
            sm.describe_endpoint(EndpointName=ROLLING)["EndpointStatus"] == "InService"
            and v["CurrentInstanceCount"] == v["DesiredInstanceCount"] == 2
            and len(pids) == 2
            and victim not in pids
        )

    with Load(platform, models, ROLLING, threads=threads) as load:
        load.wait_answers(40)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(recovered, 30, 0.25, "the killed instance to be replaced")
        replaced_in = time.monotonic() - killed_at
        load.wait_answers(40)
    assert not pid_alive(victim)
    # only requests in flight on the killed instance may fail: at most one per thread
    assert len(load.errors) <= threads, load.errors
    assert all(set(a) == {"B"} for a in load.answers)
    print(f"\ninstance replaced in {replaced_in:.1f} s; failures {len(load.errors)}")
    assert invoke(rt, ROLLING) == ("main", models.b.predict(PROBE))


def test_update_endpoint_retaining_variant_properties(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    """RetainAllVariantProperties keeps the running weights and counts, except the excluded."""
    sm.update_endpoint_weights_and_capacities(
        EndpointName=ROLLING,
        DesiredWeightsAndCapacities=[
            {"VariantName": "main", "DesiredWeight": 2.5, "DesiredInstanceCount": 2}
        ],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    sm.update_endpoint(
        EndpointName=ROLLING,
        EndpointConfigName="cfg-a",  # weight 1.0, one instance
        RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ROLLING, WaiterConfig=SHORT)
    d = sm.describe_endpoint(EndpointName=ROLLING)
    assert d["EndpointConfigName"] == "cfg-a"
    assert "FailureReason" not in d
    v = d["ProductionVariants"][0]
    assert (v["DesiredWeight"], v["CurrentWeight"]) == (1.0, 1.0)
    assert (v["DesiredInstanceCount"], v["CurrentInstanceCount"]) == (2, 2)
    wait_for(lambda: len(endpoint_processes(platform.home, ROLLING)) == 2, 40, what="2 instances")
    assert invoke(rt, ROLLING) == ("main", models.a.predict(PROBE))


def test_model_not_ready_while_the_only_instance_is_down(
    platform: Platform, sm: Any, rt: Any, models: Models, routing: Created
) -> None:
    """The only instance of variant-b dies: a call made after its death cannot reach a model,
    so it is ModelNotReadyException (429), not a ModelError; variant-a keeps serving; the
    instance is replaced."""
    [victim] = [
        p
        for p in endpoint_processes(platform.home, ROUTING)
        if p.instance_dir.name.startswith(f"{ROUTING}-variant-b-")
    ]

    def replaced() -> bool:
        v = describe_variants(sm, ROUTING)["variant-b"]
        procs = endpoint_processes(platform.home, ROUTING)
        return v["CurrentInstanceCount"] == 1 and len(procs) == 2 and victim not in procs

    os.kill(victim.pid, signal.SIGKILL)
    try:
        wait_for(lambda: not pid_alive(victim.pid), 5, 0.01, "the instance to die")
        with pytest.raises(ClientError) as excinfo:
            invoke(rt, ROUTING, TargetVariant="variant-b")
        code, message, status = error_of(excinfo)
        if platform.backend.endswith("-docker") and code == "ModelError":
            # Docker's port proxy still holds the router's keep-alive connection to a container
            # that has just died, and closes it once the request is on it: from the outside
            # that is a model that dropped the connection (docs/containers.md, Stop, crashes).
            assert "connection to the model container was lost" in message, message
        else:
            assert (code, status) == ("ModelNotReadyException", 429), message
        assert invoke(rt, ROUTING, TargetVariant="variant-a") == (
            "variant-a",
            models.a.predict(PROBE),
        )
    finally:  # the later tests need variant-b back
        wait_for(replaced, 30, 0.25, "variant-b's instance to be replaced")
    assert invoke(rt, ROUTING, TargetVariant="variant-b") == ("variant-b", models.b.predict(PROBE))


def test_instance_records_match_running_processes(
    platform: Platform, routing: Created, rolling: Created
) -> None:
    """Each running instance has its record (instance.json, with its pid) in its directory."""
    procs = serve_processes(platform.home)
    assert len(procs) >= 4
    for proc in procs:
        record = json.loads((proc.instance_dir / "instance.json").read_text())
        assert record["pid"] == proc.pid


def test_credentials_file_is_private(platform: Platform) -> None:
    path = platform.home / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    creds = platform.credentials()
    assert creds["access_key_id"]
    assert len(creds["secret_access_key"]) >= 20


def test_second_platform_refuses_clearly(platform: Platform, tmp_path: Path) -> None:
    def up(home: Path, port: int) -> tuple[int, str]:
        args = [str(BIN / "pier"), "up", "--home", str(home), "--port", str(port), "--no-mlflow"]
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=90, env=platform_env(), check=False
        )
        return done.returncode, done.stdout + done.stderr

    code, output = up(tmp_path / "other-home", platform.port)  # the port is taken
    assert code != 0
    assert f":{platform.port}" in output
    code, output = up(platform.home, free_port())  # the home is in use
    assert code != 0
    assert "already running" in output
    assert httpx.get(platform.url + "/ping", timeout=5).status_code == 200  # still up


def test_unmodified_boto3_configured_by_pier_env(
    platform: Platform, models: Models, routing: Created, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval $(pier env)`, then boto3 code that names no endpoint, key or region."""
    import boto3

    done = subprocess.run(
        [str(BIN / "pier"), "env", "--home", str(platform.home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=platform_env(),
        check=True,
    )
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in done.stdout.splitlines()
        if line.startswith("export ")
    )
    assert exported["AWS_ENDPOINT_URL_SAGEMAKER"] == platform.url
    assert exported["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == platform.url
    assert exported["AWS_DEFAULT_REGION"] == REGION
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    session = boto3.Session()
    names = [e["EndpointName"] for e in session.client("sagemaker").list_endpoints()["Endpoints"]]
    assert ROUTING in names
    response = session.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=ROUTING,
        Body=split_json(PROBE),
        ContentType="application/json",
        TargetVariant="variant-a",
    )
    assert predictions(response["Body"].read()) == models.a.predict(PROBE)


def _back_in_service(sm: Any, name: str) -> bool:
    d = sm.describe_endpoint(EndpointName=name)
    counts = [
        (v["CurrentInstanceCount"], v["DesiredInstanceCount"]) for v in d["ProductionVariants"]
    ]
    return d["EndpointStatus"] == "InService" and all(c == w for c, w in counts)


def _desired_instances(sm: Any, name: str) -> int:
    return sum(v["DesiredInstanceCount"] for v in describe_variants(sm, name).values())


def test_platform_restart_adopts_instances_and_replaces_a_dead_one(
    platform: Platform, sm: Any, rt: Any, models: Models, routing: Created, rolling: Created
) -> None:
    """SIGKILL the platform (its instances live on), SIGKILL one of ROLLING's instances while
    no platform runs, start a new `pier up` on the same home and port: both endpoints come
    back InService with exactly the desired instances; nothing is duplicated or leaked."""
    desired = {name: _desired_instances(sm, name) for name in (ROUTING, ROLLING)}
    assert desired == {ROUTING: 2, ROLLING: 2}
    before = {name: {p.pid for p in endpoint_processes(platform.home, name)} for name in desired}
    assert {name: len(pids) for name, pids in before.items()} == desired
    answer = invoke(rt, ROLLING)
    platform.kill()
    assert all(pid_alive(pid) for pids in before.values() for pid in pids)
    victim = min(before[ROLLING])
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), 5, 0.01, "the instance to die")
    platform.start()

    def back(name: str) -> bool:
        pids = {p.pid for p in endpoint_processes(platform.home, name)}
        return _back_in_service(sm, name) and len(pids) == desired[name] and victim not in pids

    for name in desired:
        wait_for(lambda name=name: back(name), 60, 0.25, f"{name} back in service")
    assert invoke(rt, ROUTING, TargetVariant="variant-a") == ("variant-a", models.a.predict(PROBE))
    assert invoke(rt, ROUTING, TargetVariant="variant-b") == ("variant-b", models.b.predict(PROBE))
    for _ in range(10):
        assert invoke(rt, ROLLING) == answer
    time.sleep(2)  # a few reconcile passes (one a second): nothing is launched twice
    for name, want in desired.items():
        now = {p.pid for p in endpoint_processes(platform.home, name)}
        assert len(now) == want, (name, before[name], now)
        leaked = {pid for pid in before[name] - now if pid_alive(pid)}
        assert leaked == set()
        assert _back_in_service(sm, name)


def test_restart_during_a_create_and_an_update_neither_duplicates_nor_leaks(
    platform: Platform, sm: Any, rt: Any, models: Models, rolling: Created
) -> None:
    """SIGKILL the platform while PHOENIX is Creating and ROLLING is Updating (their new
    instances already started): the new platform finishes both, with exactly the desired
    instances, and nothing of the interrupted work survives."""
    assert sm.describe_endpoint(EndpointName=ROLLING)["EndpointConfigName"] == "cfg-a"
    old = {p.pid for p in endpoint_processes(platform.home, ROLLING)}
    sm.create_endpoint(EndpointName=PHOENIX, EndpointConfigName="cfg-a")
    sm.update_endpoint(EndpointName=ROLLING, EndpointConfigName="cfg-b")  # one instance

    def both_launching() -> bool:
        return (
            len(endpoint_processes(platform.home, ROLLING)) > len(old)
            and len(endpoint_processes(platform.home, PHOENIX)) >= 1
        )

    wait_for(both_launching, 20, 0.01, "the new instances to start")
    platform.kill()
    platform.start()

    def done() -> bool:
        d = sm.describe_endpoint(EndpointName=ROLLING)
        return (
            d["EndpointConfigName"] == "cfg-b"
            and _back_in_service(sm, ROLLING)
            and _back_in_service(sm, PHOENIX)
        )

    wait_for(done, 60, 0.25, "the create and the update to finish after the restart")
    for name in (ROLLING, PHOENIX):
        wait_for(lambda name=name: len(endpoint_processes(platform.home, name)) == 1, 40)
    assert invoke(rt, ROLLING) == ("main", models.b.predict(PROBE))
    assert invoke(rt, PHOENIX) == ("main", models.a.predict(PROBE))
    time.sleep(2)  # a few reconcile passes
    assert len(endpoint_processes(platform.home, ROLLING)) == 1
    assert len(endpoint_processes(platform.home, PHOENIX)) == 1
    assert [pid for pid in old if pid_alive(pid)] == []


def test_delete_endpoint_while_updating(platform: Platform, sm: Any) -> None:
    """PHOENIX (InService on cfg-a after the previous test) is deleted mid-update: both
    fleets stop."""
    [old] = endpoint_processes(platform.home, PHOENIX)
    sm.update_endpoint(EndpointName=PHOENIX, EndpointConfigName="cfg-b")
    wait_for(
        lambda: len(endpoint_processes(platform.home, PHOENIX)) == 2,
        20,
        0.01,
        "the new fleet's instance to start",
    )
    sm.delete_endpoint(EndpointName=PHOENIX)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=PHOENIX, WaiterConfig=SHORT)
    wait_for(lambda: not endpoint_processes(platform.home, PHOENIX), 15, what="no instance left")
    time.sleep(1)
    assert endpoint_processes(platform.home, PHOENIX) == []
    assert not pid_alive(old.pid)


def test_secret_never_reaches_a_log(platform: Platform) -> None:
    secret = platform.credentials()["secret_access_key"]
    files = [
        *platform.logs,
        *(platform.home / "logs").glob("*"),
        *(platform.home / "instances").rglob("serve.log"),
    ]
    assert len(files) >= 3
    for path in files:
        assert secret not in path.read_text(errors="replace"), path
