"""Housekeeping of the platform's home: what stopped instances and deleted endpoints leave.

Every instance gets a directory `instances/<id>/` (its log, owner and record) that outlives it,
so that `pier logs` can say why it stopped; models are unpacked or downloaded into caches
(pier.hosting.model_data: archives and S3 prefixes under `models/<key>`; model_local: registry
and run URIs under `models/mlflow/<key>`; the Docker backend's under `cache/images/models/`).
Left alone, both grow with every instance ever started. `sweep` removes the directories of
instances that no longer run, and the cached models no running instance uses, once they have
not changed for `grace_s` seconds: a stopped instance's log stays readable that long.

The reconciler calls it (it alone acts on the outside world) when no operation is in flight,
so no launch is between resolving a model and starting the instance that uses it. Blocking:
call from a worker thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pier.hosting import model_local

log = logging.getLogger("pier.housekeeping")


@dataclass(frozen=True)
class Swept:
    instance_dirs: int
    models: int


def _last_change(path: Path) -> float:
    """The newest mtime of `path` and of what it holds directly (a log written to, a file
    unpacked into a model directory)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    continue
    return newest


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)
        return False
    return True


def models_in_use(model_paths: Iterable[str], roots: Iterable[Path]) -> set[Path]:
    """The cache entries (directories right under a root) that running instances' models
    (InstanceSpec.model_path: a local directory, or an MLflow URI the backend downloads)
    live in."""
    roots = [r.absolute() for r in roots]
    keep: set[Path] = set()
    for model_path in model_paths:
        if not model_path:
            continue
        if model_local.is_local(model_path):
            path = Path(model_path).absolute()
            for root in roots:
                if path.is_relative_to(root) and path != root:
                    keep.add(root / path.relative_to(root).parts[0])
        else:
            keep.update(root / model_local.cache_key(model_path) for root in roots)
    return keep


def sweep(
    instances_dir: Path,
    model_roots: Iterable[Path],
    *,
    running: Iterable[str],
    model_paths: Iterable[str],
    grace_s: float,
    now: float | None = None,
) -> Swept:
    """Remove what no running instance uses and nothing changed for `grace_s` seconds:
    instance directories other than `running` (instance ids), and entries of the model caches
    `model_roots` other than those of `model_paths` (the running instances' models). A root
    inside another root (models/mlflow) is never an entry itself."""
    now = time.time() if now is None else now
    roots = [r.absolute() for r in model_roots]
    alive = set(running)
    instance_dirs = 0
    if instances_dir.is_dir():
        for path in instances_dir.iterdir():
            if path.name in alive:
                continue
            if now - _last_change(path) >= grace_s and _remove(path):
                instance_dirs += 1
    keep = models_in_use(model_paths, roots) | set(roots)
    models = 0
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.iterdir():
            if path in keep:
                continue
            if now - _last_change(path) >= grace_s and _remove(path):
                models += 1
    if instance_dirs or models:
        log.info("housekeeping: removed %d instance directories and %d cached models",
                 instance_dirs, models)  # fmt: skip
    return Swept(instance_dirs, models)
