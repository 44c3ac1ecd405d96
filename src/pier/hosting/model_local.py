"""A model URI as a local directory: what reading a model's environment (and building it) needs.

- a local directory, or a `file://` URI of one, is used as it is;
- any other MLflow URI (`models:/`, `runs:/`, `mlflow-artifacts:/`, `s3://...`) is downloaded
  with MLflow's artifact API into `cache_dir/<hash of the URI>`. A URI that always names the
  same files (`runs:/`, `models:/name/3`, `mlflow-artifacts:/`) is downloaded once; one that
  can move (`models:/name@alias`, `models:/name/latest`, a stage) is downloaded again each
  time. A download lands in a temporary directory renamed into place, so a directory in the
  cache is complete.

MLflow is imported only to download (it takes seconds). Blocking: call from a thread on an
event loop.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pier.errors import ValidationException

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: not C:
_PINNED_REGISTRY = re.compile(r"^models:/[^/@]+/[0-9]+(/.*)?$")


def is_local(uri: str) -> bool:
    """Whether `uri` is a path or a file:// URI (no download needed)."""
    return not _SCHEME.match(uri) or uri.startswith("file:")


def local_model_dir(uri: str, cache_dir: Path) -> Path:
    """The directory holding the model `uri` names (see the module docstring). Raises
    ValidationException with MLflow's message when it cannot be found or downloaded."""
    if is_local(uri):
        path = Path(url2pathname(urlsplit(uri).path)) if uri.startswith("file:") else Path(uri)
        path = path.absolute()
        if not path.is_dir():
            raise ValidationException(f"The model directory {path} does not exist.")
        return path
    target = Path(cache_dir).absolute() / cache_key(uri)
    if target.is_dir() and _immutable(uri):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One download of a URI at a time (threads and processes): who waited finds it there.
    with (target.parent / f".{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.is_dir() and _immutable(uri):
                return target
            _replace(uri, target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def cache_key(uri: str) -> str:
    """The name of the cache directory a downloaded URI lives in."""
    return hashlib.sha256(uri.encode()).hexdigest()[:24]


def _replace(uri: str, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        downloaded = _download(uri, tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".old-", dir=target.parent))
            os.rename(target, old / "model")
            shutil.rmtree(old, ignore_errors=True)
        os.rename(downloaded, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _immutable(uri: str) -> bool:
    return uri.startswith(("runs:/", "mlflow-artifacts:")) or bool(_PINNED_REGISTRY.match(uri))


def _download(uri: str, destination: Path) -> Path:
    from mlflow.artifacts import download_artifacts  # only here: importing MLflow is slow
    from mlflow.exceptions import MlflowException

    try:
        path = Path(download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except MlflowException as exc:
        raise ValidationException(f"Cannot download the model {uri}: {exc.message}") from None
    except OSError as exc:
        raise ValidationException(f"Cannot download the model {uri}: {exc}") from None
    if not path.is_dir() or path == destination:  # keep `destination` removable by the caller
        inner = destination / "model"
        inner.mkdir()
        for item in list(destination.iterdir()):
            if item != inner:
                os.rename(item, inner / item.name)
        return inner
    return path
