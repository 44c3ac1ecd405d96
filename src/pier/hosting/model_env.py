"""What environment an MLflow model declares: its Python version and pip requirements.

MLflow logs a model with the environment it was trained in, in three files beside `MLmodel`
(named by the python_function flavour's `env` entry): `python_env.yaml` (Python version, build
dependencies, and `dependencies`, usually `-r requirements.txt`), `requirements.txt`, and
`conda.yaml` (a conda environment whose `pip:` section holds the same requirements). They are
read in MLflow's order of preference: python_env.yaml, then requirements.txt, then conda.yaml.

This module only reads and compares; building an environment (a virtualenv, an image) is the
caller's business (pier.hosting.environments, pier.hosting.images). Everything here is pure
apart from reading the model's files and, in `differences`, this interpreter's installed
distributions.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pier.errors import ValidationException

PYTHON_ENV_FILE = "python_env.yaml"
REQUIREMENTS_FILE = "requirements.txt"
CONDA_FILE = "conda.yaml"
_CONDA_PYTHON = re.compile(r"^python\s*=+\s*([0-9][0-9.]*)")
_OPTION = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(.+)$")
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class ModelEnvironment:
    """The environment one model declares.

    `requirements` are pip requirement lines in the order written (includes expanded, comments
    and blank lines dropped; a relative path requirement made absolute against the model
    directory); `constraints` likewise from `-c` files. `python` is the version the model was
    logged with ("3.11.7"), None when the model does not say.
    """

    python: str | None
    requirements: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    source: str = ""  # the file the requirements came from, for messages

    @property
    def python_minor(self) -> str | None:
        """ "3.11" of "3.11.7": environments are matched on major.minor (patch releases of
        CPython keep the ABI and the stdlib's behaviour that models rely on)."""
        if self.python is None:
            return None
        parts = self.python.split(".")
        return ".".join(parts[:2])

    def key(self, *extra: str) -> str:
        """A short content hash of what an environment built for this model installs: the same
        requirements (in any order) and Python minor version give the same key, so models that
        declare the same environment share one. `extra` adds what else the builder installs
        (pier's own serving requirements, a base image)."""
        digest = hashlib.sha256()
        parts = [
            f"python={self.python_minor or ''}",
            *sorted(f"req={r}" for r in self.requirements),
            *sorted(f"con={c}" for c in self.constraints),
            *(f"extra={e}" for e in extra),
        ]
        digest.update("\n".join(parts).encode())
        return digest.hexdigest()[:16]


def read(model_dir: Path) -> ModelEnvironment:
    """The environment the MLflow model in `model_dir` declares. A model without any of the
    three files declares nothing (no requirements, Python unknown). Raises ValidationException
    naming the file and line for anything unreadable."""
    model_dir = Path(model_dir)
    if not (model_dir / "MLmodel").is_file():
        raise ValidationException(f"{model_dir} is not an MLflow model: it has no MLmodel file.")
    names = _declared_files(model_dir)
    python_env = model_dir / names.get("virtualenv", PYTHON_ENV_FILE)
    if python_env.is_file():
        return _from_python_env(python_env)
    requirements = model_dir / REQUIREMENTS_FILE
    if requirements.is_file():
        reqs, cons = _read_requirements(requirements, 0)
        return ModelEnvironment(_python_from_conda(model_dir, names), reqs, cons, str(requirements))
    conda = model_dir / names.get("conda", CONDA_FILE)
    if conda.is_file():
        return _from_conda(conda)
    return ModelEnvironment(None, (), (), "")


def differences(
    env: ModelEnvironment,
    *,
    python: str | None = None,
    installed: Callable[[str], str | None] | None = None,
    marker_env: dict[str, str] | None = None,
) -> list[str]:
    """What this interpreter's environment lacks to satisfy `env`, one line each ("scikit-learn
    ==1.5.2: 1.7.1 is installed"); empty when it satisfies every requirement. `python` and
    `installed` (distribution name -> version or None) default to this interpreter's, for
    tests. Requirements that cannot be checked here (a URL, a path) count as unsatisfied."""
    python = python or platform.python_version()
    lookup = installed or _installed_version
    markers: Any = marker_env or default_environment()
    found: list[str] = []
    want_minor = env.python_minor
    have_minor = ".".join(python.split(".")[:2])
    if want_minor is not None and want_minor != have_minor:
        found.append(f"python {env.python}: this environment has {python}")
    for line in env.requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            found.append(f"{line}: not a version requirement (a path or URL): cannot be checked")
            continue
        if req.url:
            found.append(f"{line}: a direct reference cannot be checked")
            continue
        if req.marker is not None and not req.marker.evaluate(markers):
            continue
        version = lookup(req.name)
        if version is None:
            found.append(f"{line}: not installed")
            continue
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            found.append(f"{line}: {version} is installed")
    return found


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(canonicalize_name(name))
    except metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------- readers
def _declared_files(model_dir: Path) -> dict[str, str]:
    """The python_function flavour's `env` entry of MLmodel: {"virtualenv": ..., "conda": ...}.
    Older models name only the conda file (`env: conda.yaml`)."""
    mlmodel = _load_yaml(model_dir / "MLmodel")
    flavor = (mlmodel.get("flavors") or {}).get("python_function") or {}
    env = flavor.get("env")
    if isinstance(env, str):
        return {"conda": env}
    if isinstance(env, dict):
        return {k: str(v) for k, v in env.items() if isinstance(v, str)}
    return {}


def _from_python_env(path: Path) -> ModelEnvironment:
    data = _load_yaml(path)
    python = data.get("python")
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise ValidationException(f"{path}: 'dependencies' must be a list.")
    reqs, cons = _parse_lines([str(d) for d in deps], path, 0)
    return ModelEnvironment(_version_or_none(python, path), reqs, cons, str(path))


def _from_conda(path: Path) -> ModelEnvironment:
    data = _load_yaml(path)
    python: str | None = None
    pip: list[str] = []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, str):
            match = _CONDA_PYTHON.match(dep)
            if match:
                python = match.group(1)
        elif isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            pip.extend(str(p) for p in dep["pip"])
    reqs, cons = _parse_lines(pip, path, 0)
    return ModelEnvironment(python, reqs, cons, str(path))


def _python_from_conda(model_dir: Path, names: dict[str, str]) -> str | None:
    conda = model_dir / names.get("conda", CONDA_FILE)
    return _from_conda(conda).python if conda.is_file() else None


def _read_requirements(path: Path, depth: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationException(f"Cannot read {path}: {exc}") from None
    return _parse_lines(lines, path, depth)


def _parse_lines(
    lines: Iterable[str], where: Path, depth: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """pip's requirement-file syntax, the part MLflow writes: requirement specifiers, `-r` and
    `-c` includes (relative to the including file), comments. Other pip options (an index URL,
    `--hash`) would change where packages come from: refused, with the file and line."""
    if depth > MAX_INCLUDE_DEPTH:
        raise ValidationException(f"{where}: requirement files include each other too deeply.")
    reqs: list[str] = []
    cons: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = _OPTION.match(line)
        if option:
            target = (where.parent / option.group(2).strip()).resolve()
            r, c = _read_requirements(target, depth + 1)
            if option.group(1) in ("-r", "--requirement"):
                reqs.extend(r)
                cons.extend(c)
            else:
                cons.extend(r)
            continue
        if line.startswith("-"):
            raise ValidationException(
                f"{where}:{number}: pip option {line.split()[0]!r} is not supported in a "
                "model's requirements (pier installs from its own package index settings)."
            )
        if line.startswith((".", "/")) or line.endswith((".whl", ".tar.gz", ".zip")):
            path = Path(line)
            line = str(path if path.is_absolute() else (where.parent / path).resolve())
        reqs.append(line)
    return tuple(reqs), tuple(cons)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationException(f"Cannot read {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationException(f"{path}: expected a mapping at the top.")
    return data


def _version_or_none(value: Any, path: Path) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+){0,2}", text):
        raise ValidationException(f"{path}: 'python' must be a version like 3.11.7, not {text!r}.")
    return text
