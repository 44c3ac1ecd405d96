"""`pier logs`: the log lines of an endpoint's instances, read from the home.

The process backend keeps one directory per instance, `<home>/instances/<instance id>/`, with
`serve.log` and, while the instance runs, `instance.json` (its spec: endpoint, variant, id).
These are local files, as CloudWatch Logs would be for SageMaker: reading them needs no running
platform, so the logs of a crashed endpoint or a stopped platform can still be read.

An instance that stopped or failed has no record any more; it is known by the owner file the
backend wrote beside its log (pier.hosting.base.write_owner), never by its directory's name:
`<endpoint>-<variant>-<8 hex>` cannot tell endpoint `lg`'s variant `x-a` from endpoint `lg-x`'s
variant `a`. Its log is shown when the endpoint has no running instance (a Failed endpoint, a
platform that is down): the newest one per variant, which says why it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from pier.cli.common import HomeOption, err, fail, out, platform_settings
from pier.hosting.base import read_owner
from pier.platform.home import Home

RECORD_FILE = "instance.json"  # as pier.hosting.process writes them
LOG_FILE = "serve.log"
FOLLOW_POLL_S = 0.25
RESCAN_EVERY = 8  # polls between looks for new instances while following
BLOCK = 64 * 1024


@dataclass(frozen=True)
class InstanceLog:
    variant: str
    instance_id: str
    path: Path
    running: bool  # it has a record: the backend runs it (or ran it until a platform crash)

    @property
    def prefix(self) -> str:
        return f"[{self.variant}/{self.instance_id}]"


def find_logs(h: Home, endpoint: str, variant: str | None) -> list[InstanceLog]:
    """The endpoint's running instances' logs; if none runs, its newest stopped one per variant."""
    running: list[InstanceLog] = []
    stopped: dict[str, InstanceLog] = {}
    try:
        directories = sorted(h.instances_dir.iterdir())
    except OSError:
        directories = []
    for d in directories:
        path = d / LOG_FILE
        if not path.is_file():
            continue
        try:
            spec = json.loads((d / RECORD_FILE).read_text())["spec"]
            if spec["endpoint"] == endpoint and variant in (None, spec["variant"]):
                running.append(InstanceLog(spec["variant"], spec["instance_id"], path, True))
            continue
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no record (stopped) or a half-written one: known by its owner file
        owner = read_owner(d)
        if owner is not None and owner[0] == endpoint and variant in (None, owner[1]):
            found = InstanceLog(owner[1], d.name, path, False)
            newest = stopped.get(found.variant)
            if newest is None or path.stat().st_mtime > newest.path.stat().st_mtime:
                stopped[found.variant] = found
    if running:
        return sorted(running, key=lambda i: (i.variant, i.instance_id))
    return sorted(stopped.values(), key=lambda i: i.variant)


def tail_lines(path: Path, n: int) -> tuple[list[str], int]:
    """The last `n` lines of a file and the offset of its end (where following starts)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        start, data = end, b""
        while start > 0 and data.count(b"\n") <= n:
            start = max(0, start - BLOCK)
            f.seek(start)
            data = f.read(end - start)
    lines = data.decode("utf-8", "replace").splitlines()
    return (lines[-n:] if n else []), end


def _print(instance: InstanceLog, line: str) -> None:
    out.print(Text.assemble((instance.prefix, "cyan"), " ", line), highlight=False)


def _follow(h: Home, endpoint: str, variant: str | None, offsets: dict[Path, int]) -> None:
    """Print what the instances write, as they write it; new instances join (from their start)."""
    polls = 0
    instances = {i.path: i for i in find_logs(h, endpoint, variant)}
    while True:
        polls += 1
        if polls % RESCAN_EVERY == 0:  # keep the stopped ones too: their last lines count
            instances.update({i.path: i for i in find_logs(h, endpoint, variant)})
        for path, instance in instances.items():
            offset = offsets.get(path, 0)
            try:
                size = path.stat().st_size
                if size < offset:  # truncated or replaced: start over
                    offset = 0
                if size == offset:
                    continue
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read(size - offset)
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1  # a line still being written waits for its end
            offsets[path] = offset + complete
            for line in data[:complete].decode("utf-8", "replace").splitlines():
                _print(instance, line)
        time.sleep(FOLLOW_POLL_S)


def logs(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    variant: Annotated[str | None, typer.Option(help="Only this production variant.")] = None,
    tail: Annotated[
        int, typer.Option(min=0, help="Lines to print from the end of each instance's log.")
    ] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Print the last lines of an endpoint's instance logs, each prefixed by variant/instance."""
    h = Home(platform_settings(home=home).home)
    found = find_logs(h, name, variant)
    if not found and not follow:
        which = f"variant {variant} of endpoint {name}" if variant else f"endpoint {name}"
        raise fail(f"no instance logs for {which} in {h.instances_dir}")
    if found and not found[0].running:
        err.print("[dim]no running instance: the last log of each variant's stopped instance[/dim]")
    offsets: dict[Path, int] = {}
    for instance in found:
        try:
            lines, offsets[instance.path] = tail_lines(instance.path, tail)
        except OSError as exc:
            err.print(f"[yellow]warning:[/yellow] {escape(str(instance.path))}: {exc.strerror}")
            continue
        for line in lines:
            _print(instance, line)
    if follow:
        try:
            _follow(h, name, variant, offsets)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
