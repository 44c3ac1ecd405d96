"""`pier logs NAME` reads the logs of endpoint NAME's instances only: never those of another
endpoint whose name starts with NAME, running or stopped."""

from __future__ import annotations

import json
from pathlib import Path

from pier.cli.logs_command import find_logs
from pier.hosting.base import InstanceSpec, write_owner
from pier.platform.home import Home


def _instance(home: Home, endpoint: str, variant: str, hex8: str, *, running: bool) -> Path:
    spec = InstanceSpec(
        instance_id=f"{endpoint}-{variant}-{hex8}",
        endpoint=endpoint,
        variant=variant,
        model_path="/models/m",
    )
    directory = home.instances_dir / spec.instance_id
    directory.mkdir(parents=True)
    write_owner(directory, spec)
    (directory / "serve.log").write_text(f"log of {spec.instance_id}\n")
    if running:
        record = {
            "spec": {"endpoint": endpoint, "variant": variant, "instance_id": spec.instance_id}
        }
        (directory / "instance.json").write_text(json.dumps(record))
    return directory


def test_a_name_that_prefixes_other_endpoints_matches_only_its_own(tmp_path: Path) -> None:
    home = Home(tmp_path)
    _instance(home, "lg-x", "AllTraffic", "0000000a", running=True)
    _instance(home, "lg-x", "AllTraffic", "0000000b", running=False)
    _instance(home, "lg-gone", "AllTraffic", "0000000c", running=False)  # a deleted endpoint
    mine = _instance(home, "lg", "AllTraffic", "0000000d", running=False)
    found = find_logs(home, "lg", None)
    assert [(i.variant, i.path.parent) for i in found] == [("AllTraffic", mine)]
    assert find_logs(home, "lg", "x-AllTraffic") == []


def test_a_variant_with_a_dash_is_its_endpoints(tmp_path: Path) -> None:
    home = Home(tmp_path)
    mine = _instance(home, "lg", "x-a", "0000000e", running=False)
    assert [(i.variant, i.path.parent) for i in find_logs(home, "lg", None)] == [("x-a", mine)]
    assert find_logs(home, "lg-x", None) == []


def test_a_stopped_instance_without_an_owner_is_nobodys(tmp_path: Path) -> None:
    home = Home(tmp_path)
    directory = home.instances_dir / "lg-AllTraffic-0000000f"
    directory.mkdir(parents=True)
    (directory / "serve.log").write_text("who?\n")
    assert find_logs(home, "lg", None) == []
