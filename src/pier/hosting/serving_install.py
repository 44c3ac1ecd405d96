"""What pier puts into a model's own environment so that `serve` runs there.

A model's environment (a virtualenv from pier.hosting.environments, an image from
pier.hosting.images) holds what the model declares. pier adds its model server: the packages
`pier.serving` imports (SERVING_REQUIREMENTS, resolved together with the model's, so the
model's pins win) and the part of pier's own source that the server needs (SERVING_MODULES,
copied as files: pier.serving imports nothing else of pier, which import-linter enforces).
Copying source rather than installing pier keeps pier's control-plane dependencies (MLflow's
pinned version, SQLAlchemy, boto3) out of the model's environment.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pier

# What pier.serving imports, as requirement specifiers (the ranges of pyproject.toml). MLflow,
# numpy and pandas are the model's own business: an MLflow model declares them.
SERVING_REQUIREMENTS: tuple[str, ...] = (
    "orjson>=3.10",
    "pydantic>=2.7",
    "pydantic-settings>=2.3",
    "prometheus-client>=0.20",
    "uvicorn>=0.30",
    "uvloop>=0.19; sys_platform != 'win32'",
    "httptools>=0.6",
    "pyyaml>=6",
    "cloudpickle>=3",
)
# The modules and packages of pier that `python -m pier.serving` loads.
SERVING_MODULES: tuple[str, ...] = (
    "__init__.py",
    "py.typed",
    "errors.py",
    "settings.py",
    "contract",
    "serving",
)
# `serve` in an environment: the SageMaker container entry point (pier.serving.__main__).
SERVE_SCRIPT = """#!/bin/sh
exec "$(dirname "$0")/python" -m pier.serving "$@"
"""


def package_dir() -> Path:
    """Where this pier's source is (a checkout's src/pier, or site-packages/pier)."""
    return Path(pier.__file__).resolve().parent


def _files() -> list[Path]:
    root = package_dir()
    found: list[Path] = []
    for name in SERVING_MODULES:
        path = root / name
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.py")) if "__pycache__" not in p.parts)
        elif path.exists():
            found.append(path)
    return found


def source_digest() -> str:
    """A short hash of the server's source: part of every environment's and image's key, so a
    new pier puts its new server into them."""
    digest = hashlib.sha256()
    root = package_dir()
    for path in _files():
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def copy_package(destination: Path) -> Path:
    """Copy pier's serving source to `destination`/pier (a site-packages directory, or a build
    context) and return that directory. An existing copy is replaced."""
    root = package_dir()
    target = Path(destination) / "pier"
    if target.exists():
        shutil.rmtree(target)
    for path in _files():
        out = target / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    return target
