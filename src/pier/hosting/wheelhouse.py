"""A wheelhouse made on the host: every package an image installs, as wheels in one directory.

Policies:
- pip runs on the host (this interpreter's `python -m pip`), never inside a build, so it uses
  the machine's pip configuration (index, find-links, constraints, proxy, CA certificate) and
  a build works behind a proxy and, once the wheelhouse is cached, offline.
- The wheels are chosen for the image, not for the host: `pip download --only-binary=:all:`
  with the image's Python version, ABI and platform tags (its machine and glibc). When a
  package has no wheel for that target and the host can stand in for the image (same Python
  minor, same machine, a glibc no newer than the image's), `pip wheel` builds it from source
  on the host instead.
- One wheelhouse per key (the model's environment, pier's serving requirements, the target),
  cached under `cache_dir/wheelhouses/<key>`: written to a staging directory and renamed into
  place, so a failed or interrupted download leaves nothing that looks complete. The same key
  installs the same files: the image installs every wheel of the directory with `--no-deps`.
- In an image, `mlflow==X` becomes `mlflow-skinny==X` (see `image_requirements`).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pier.errors import PierError
from pier.hosting.model_env import ModelEnvironment
from pier.hosting.serving_install import SERVING_REQUIREMENTS

PIP_DIR = "_pip"  # pip's own wheel, used to install the others, not installed itself
REQUIREMENTS = "requirements.txt"
MANIFEST = "manifest.txt"  # the wheels, one file name a line, sorted: what the key installs
# What pier.serving imports that full MLflow brings along and mlflow-skinny does not.
SKINNY_EXTRAS = ("numpy", "pandas")
_OLDEST_MANYLINUX_MINOR = 17


class WheelhouseError(PierError):
    """pip could not gather the packages: the message carries pip's own last lines."""

    status = 400
    code = "ValidationException"


@dataclass(frozen=True)
class Target:
    """The interpreter an image runs: what wheels must be built for."""

    python: str  # "3.11.2"
    machine: str  # "x86_64", "aarch64"
    glibc: str | None  # "2.36"; None for a musl or unknown libc

    @property
    def minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def platform_tags(self) -> list[str]:
        """pip `--platform` values the target accepts, newest first (manylinux up to its
        glibc, then the generic linux tag)."""
        tags: list[str] = []
        if self.glibc:
            major, minor = (int(p) for p in self.glibc.split(".")[:2])
            if major == 2:
                for m in range(minor, _OLDEST_MANYLINUX_MINOR - 1, -1):
                    tags.append(f"manylinux_2_{m}_{self.machine}")
            tags.append(f"manylinux2014_{self.machine}")
        tags.append(f"linux_{self.machine}")
        return tags


def image_requirements(env: ModelEnvironment) -> tuple[str, ...]:
    """What an image for `env` installs: the model's requirements with `mlflow` replaced by
    `mlflow-skinny` at the same version (MLflow's scoring code without its tracking server,
    UI, and the heavy packages those pull in; pier.serving loads pyfunc and flavor models
    with it), plus numpy and pandas when so replaced (full MLflow brings them; the model's
    own pins still win), plus what pier.serving imports. A requirement with extras keeps full
    MLflow: the extras name parts that skinny may lack."""
    out: list[str] = []
    replaced = False
    for line in env.requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            out.append(line)
            continue
        if canonicalize_name(req.name) == "mlflow" and not req.extras and not req.url:
            marker = f"; {req.marker}" if req.marker else ""
            out.append(f"mlflow-skinny{req.specifier}{marker}")
            replaced = True
        else:
            out.append(line)
    named = {_name(r) for r in out}
    if replaced:
        out.extend(extra for extra in SKINNY_EXTRAS if extra not in named)
    out.extend(r for r in SERVING_REQUIREMENTS if _name(r) not in named)
    return tuple(out)


def _name(line: str) -> str:
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return line


def host_target() -> Target:
    """This interpreter as a Target: whether `pip wheel` here builds for the image."""
    libc, version = platform.libc_ver()
    return Target(
        platform.python_version(), platform.machine(), version if libc == "glibc" else None
    )


def can_build_for(host: Target, target: Target) -> bool:
    """Whether a wheel built on `host` runs on `target`."""
    if host.minor != target.minor or host.machine != target.machine:
        return False
    if host.glibc is None or target.glibc is None:
        return False
    return _version_tuple(host.glibc) <= _version_tuple(target.glibc)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def ensure(
    requirements: Iterable[str],
    constraints: Iterable[str],
    target: Target,
    key: str,
    cache_dir: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The wheelhouse for `key`: made with pip on the host when missing, else the cached one.
    Raises WheelhouseError with pip's message when the packages cannot be gathered."""
    say = progress or (lambda _line: None)
    final = Path(cache_dir) / "wheelhouses" / key
    if (final / MANIFEST).is_file():
        say(f"wheelhouse {key}: cached ({final})")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        reqs = list(requirements)
        (staging / REQUIREMENTS).write_text("\n".join(reqs) + "\n")
        constraints_file = staging / "constraints.txt"
        constraints_file.write_text("\n".join(constraints) + "\n")
        wheels = staging / "wheels"
        say(f"wheelhouse {key}: gathering {len(reqs)} requirements for Python {target.minor}")
        _gather(staging / REQUIREMENTS, constraints_file, wheels, target, say)
        _pip(
            ["download", "--no-deps", "--only-binary=:all:", "-d", str(staging / PIP_DIR), "pip"],
            say,
        )
        names = sorted(p.name for p in wheels.glob("*.whl"))
        if len(names) != len(list(wheels.iterdir())):
            others = sorted(p.name for p in wheels.iterdir() if p.suffix != ".whl")
            raise WheelhouseError(f"pip left files that are not wheels: {', '.join(others)}")
        (staging / MANIFEST).write_text("\n".join(names) + "\n")
        if final.exists():  # another build finished first: keep theirs
            shutil.rmtree(staging)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"wheelhouse {key}: {len(names)} wheels")
    return final


def _gather(
    requirements: Path, constraints: Path, wheels: Path, target: Target, say: Callable[[str], None]
) -> None:
    minor = target.minor.replace(".", "")
    download = [
        "download",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target.minor,
        *(a for abi in (f"cp{minor}", "abi3", "none") for a in ("--abi", abi)),
        *(a for tag in target.platform_tags() for a in ("--platform", tag)),
        "-d",
        str(wheels),
        "-r",
        str(requirements),
        "-c",
        str(constraints),
    ]
    try:
        _pip(download, say)
        return
    except WheelhouseError as exc:
        if not can_build_for(host_target(), target):
            raise WheelhouseError(
                f"{exc} Some package has no wheel for Python {target.minor} on "
                f"{target.machine} (glibc {target.glibc}), and this host cannot build one for "
                f"that image (host: Python {platform.python_version()}, glibc "
                f"{host_target().glibc}). Build on a host that matches the base image, or "
                "choose a base image whose Python matches this host's."
            ) from None
        say("some packages have no wheel for the image: building them on this host (pip wheel)")
    shutil.rmtree(wheels, ignore_errors=True)
    _pip(["wheel", "-w", str(wheels), "-r", str(requirements), "-c", str(constraints)], say)


def _pip(args: list[str], say: Callable[[str], None]) -> None:
    """Run this interpreter's pip (with the machine's configuration: PIP_* and pip.conf),
    its output passed to `say` line by line."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    tail: list[str] = []
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as proc:
            for raw in proc.stdout or ():
                line = raw.rstrip()
                if line:
                    say(line)
                    tail = [*tail[-11:], line]
    except OSError as exc:
        raise WheelhouseError(f"cannot run pip ({sys.executable} -m pip): {exc}") from None
    if proc.returncode != 0:
        if any("No module named pip" in line for line in tail):
            raise WheelhouseError(
                f"{sys.executable} has no pip: install it (`{sys.executable} -m ensurepip`) to "
                "let pier gather wheels."
            )
        raise WheelhouseError("pip failed: " + " | ".join(tail[-6:]))
