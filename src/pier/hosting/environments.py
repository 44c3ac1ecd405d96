"""Model environments: a cache of virtualenvs, one per environment a model declares.

Which environment serves a model (the env manager, `decide`):
- `auto` (the default): pier's own environment when it satisfies everything the model declares
  (`model_env.differences` is empty: same Python minor version, every pinned requirement
  installed at a matching version), else the model's own virtualenv. Correct, not convenient.
- `local`: pier's own environment whatever the model declares; the differences are logged as a
  warning.
- `virtualenv`: always the model's own virtualenv.

How an environment is built (`ensure`):
- with uv (`uv venv`, `uv pip install`), for the model's Python minor version, with an
  interpreter already on this machine (UV_PYTHON_DOWNLOADS=never; `find_python` looks at this
  interpreter, pyenv's versions, then PATH); none: ModelEnvironmentError saying which to install;
- the model's requirements and pier's serving requirements (SERVING_REQUIREMENTS) are resolved
  together in one `uv pip install`; a serving requirement naming a distribution the model also
  names is dropped, so the model's pins win;
- pier's serving source is copied into its site-packages and `bin/serve` (the SageMaker
  container entry point: `python -m pier.serving`, configured by PIER_* variables) is written.

The cache. `<root>/<key>`, the key a hash of what is installed (`ModelEnvironment.key` with
the serving source's digest and SERVING_REQUIREMENTS), so models that declare the same
environment share one and a new pier server gets new environments. An environment is built in
`<root>/.build-<key>-*` and renamed into place (`uv venv --relocatable`, so the rename keeps it
working): a directory named by its key is complete. Builders of one key, in any process, are
serialised by an flock on `<root>/.locks/<key>.lock`; whoever waited finds it built. A builder
that died leaves only its `.build-*` directory, removed by the next builder of that key.
Clearing the cache is `rm -rf <root>` while no instance runs from it.

A failure raises ModelEnvironmentError whose message is uv's own (its stderr, trimmed), never a
traceback. Blocking: call `ensure` from a thread on an event loop (asyncio.to_thread).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pier.errors import ModelEnvironmentError, ValidationException
from pier.hosting import model_env, serving_install
from pier.hosting.model_env import ModelEnvironment

log = logging.getLogger("pier.hosting.environments")

ENV_MANAGER_VARIABLE = "PIER_ENV_MANAGER"  # the key in a container's Environment
INFO_FILE = "pier-env.json"  # what an environment holds and how long it took to build
MAX_MESSAGE_CHARS = 2000  # uv's message, trimmed to its last lines (FailureReason is short)
PYENV_ROOTS = ("PYENV_ROOT",)


class EnvManager(StrEnum):
    AUTO = "auto"  # pier's environment when it satisfies the model, else the model's own
    LOCAL = "local"  # pier's environment, whatever the model declares
    VIRTUALENV = "virtualenv"  # the model's own environment, always


def env_manager(value: str, where: str = ENV_MANAGER_VARIABLE) -> EnvManager:
    """Parse an env manager name; ValidationException naming `where` and the choices."""
    try:
        return EnvManager(value.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in EnvManager)
        raise ValidationException(f"{where} must be one of {choices}, not {value!r}.") from None


@dataclass(frozen=True)
class Decision:
    """Which environment serves a model, and what pier's own lacks for it."""

    virtualenv: bool
    differences: tuple[str, ...]


def decide(env: ModelEnvironment, manager: EnvManager, model: str = "the model") -> Decision:
    """Apply the env manager (see the module docstring) to `env`. `local` with differences
    logs a warning that lists them; `model` names the model in log lines."""
    found = tuple(model_env.differences(env))
    if manager is EnvManager.VIRTUALENV:
        return Decision(True, found)
    if manager is EnvManager.LOCAL:
        if found:
            log.warning(
                "serving %s in pier's own environment (env manager 'local'), which differs "
                "from what it declares in %s: %s",
                model,
                env.source or "its files",
                "; ".join(found),
            )
        return Decision(False, found)
    if found:
        log.info("%s needs its own environment: %s", model, "; ".join(found))
    return Decision(bool(found), found)


def environment_key(env: ModelEnvironment) -> str:
    """The cache key of the environment built for `env` (what it installs, pier's server)."""
    return env.key(serving_install.source_digest(), *serving_install.SERVING_REQUIREMENTS)


def describe(env: ModelEnvironment) -> str:
    """ "python 3.11, 9 requirements from .../requirements.txt" for progress lines."""
    python = f"python {env.python_minor}" if env.python_minor else "python (not declared)"
    source = f" from {env.source}" if env.source else ""
    return f"{python}, {len(env.requirements)} requirements{source}"


def prepare(
    model_dir: Path,
    manager: EnvManager,
    root: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path | None:
    """Read the environment the model in `model_dir` declares, decide, and build it when the
    decision is the model's own virtualenv: its directory, or None for pier's own environment.
    Raises ValidationException (unreadable model files) or ModelEnvironmentError."""
    env = model_env.read(model_dir)
    decision = decide(env, manager, str(model_dir))
    return ensure(env, root, progress=progress) if decision.virtualenv else None


# ---------------------------------------------------------------------------- building
def ensure(
    env: ModelEnvironment,
    root: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The directory of the virtualenv for `env` under `root`, built first if the cache lacks
    it (see the module docstring). `progress` receives one line when a build starts and one
    when it ends. Raises ModelEnvironmentError with uv's message when it cannot be built."""
    root = Path(root).absolute()
    key = environment_key(env)
    final = root / key
    if _complete(final):
        return final
    say = progress or (lambda line: None)
    with _locked(root, key, say):
        if _complete(final):  # another builder finished while we waited
            return final
        for stale in root.glob(f".build-{key}-*"):  # a builder died: we hold its key's lock
            shutil.rmtree(stale, ignore_errors=True)
        what = describe(env)
        line = f"building the model's environment {key} ({what})"
        log.info("%s in %s", line, final)
        say(line)
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=root))
        try:
            try:
                python = _build(env, tmp)
            except _UvFailed as exc:
                raise ModelEnvironmentError(
                    f"Cannot build the model's environment ({what}): {exc}"
                ) from None
            seconds = time.monotonic() - started
            _write_info(tmp, env, key, python, seconds)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    line = f"built the model's environment {key} in {seconds:.1f} s"
    log.info("%s (%s)", line, final)
    say(line)
    return final


def _complete(directory: Path) -> bool:
    return (directory / INFO_FILE).is_file()


@contextlib.contextmanager
def _locked(root: Path, key: str, say: Callable[[str], None]) -> Iterator[None]:
    # flock rather than a lock-file library: the kernel releases it when a builder dies, and
    # it also serialises threads of one process (each opens its own file description).
    locks = root / ".locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelEnvironmentError(
            f"Cannot create the environment cache {root}: {exc.strerror}."
        ) from None
    with (locks / f"{key}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            line = f"waiting for another build of the model's environment {key}"
            log.info(line)
            say(line)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(env: ModelEnvironment, target: Path) -> Path:
    """Create the virtualenv in `target` (an empty directory); return its interpreter."""
    base = find_python(env.python_minor)
    _uv("venv", "--relocatable", "--allow-existing", "--python", str(base), str(target))
    python = target / "bin" / "python"
    spec = target / "pier-requirements"
    spec.mkdir()
    (spec / "model.txt").write_text("".join(f"{r}\n" for r in env.requirements))
    (spec / "serving.txt").write_text("".join(f"{r}\n" for r in serving_requirements(env)))
    args = ["pip", "install", "--python", str(python)]
    args += ["-r", str(spec / "model.txt"), "-r", str(spec / "serving.txt")]
    if env.constraints:
        (spec / "constraints.txt").write_text("".join(f"{c}\n" for c in env.constraints))
        args += ["-c", str(spec / "constraints.txt")]
    _uv(*args)
    site = _site_packages(target)
    serving_install.copy_package(site)
    serve = target / "bin" / "serve"
    serve.write_text(serving_install.SERVE_SCRIPT)
    serve.chmod(0o755)
    return base


def serving_requirements(env: ModelEnvironment) -> list[str]:
    """SERVING_REQUIREMENTS less those naming a distribution the model names: its pins win."""
    named = set()
    for line in env.requirements:
        with contextlib.suppress(InvalidRequirement):
            named.add(canonicalize_name(Requirement(line).name))
    return [
        r
        for r in serving_install.SERVING_REQUIREMENTS
        if canonicalize_name(Requirement(r).name) not in named
    ]


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise ModelEnvironmentError(f"uv made no site-packages directory in {venv}.")
    return found[0]


def _uv(*args: str) -> str:
    """Run uv; its stdout, or ModelEnvironmentError with its stderr, trimmed."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(UV_PYTHON_DOWNLOADS="never", NO_COLOR="1", UV_NO_PROGRESS="1")
    command = [uv_binary(), *args]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelEnvironmentError(f"Cannot run uv ({command[0]}): {exc.strerror}.") from None
    if done.returncode != 0:
        raise _UvFailed(trim(done.stderr or done.stdout))
    return done.stdout


class _UvFailed(Exception):
    """uv exited non-zero; the message is its own."""


def trim(message: str) -> str:
    """uv's message without blank lines, ANSI codes and its "Using Python ..." preamble, its
    last MAX_MESSAGE_CHARS."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message)
    lines = [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("Using Python", "Using CPython"))
    ]
    out = "\n".join(lines)
    return out if len(out) <= MAX_MESSAGE_CHARS else "..." + out[-MAX_MESSAGE_CHARS:]


def uv_binary() -> str:
    """uv from the `uv` package (a dependency of pier), else the one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise ModelEnvironmentError(
                "uv is not installed: pier builds model environments with it (`pip install uv`)."
            ) from None
        return found


def _write_info(venv: Path, env: ModelEnvironment, key: str, python: Path, seconds: float) -> None:
    info = {
        "key": key,
        "python": str(python),
        "declared_python": env.python,
        "requirements": list(env.requirements),
        "constraints": list(env.constraints),
        "source": env.source,
        "serving_source": serving_install.source_digest(),
        "built_at": datetime.now(UTC).isoformat(),
        "build_seconds": round(seconds, 2),
    }
    (venv / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


# -------------------------------------------------------------------------- interpreters
def find_python(minor: str | None) -> Path:
    """An interpreter of Python `minor` ("3.10") on this machine: this one, then pyenv's
    ($PYENV_ROOT or ~/.pyenv, the highest patch release), then `pythonX.Y` on PATH (pyenv's
    shims skipped). None: this interpreter. Never downloads one; ModelEnvironmentError naming
    the version to install when there is none."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if minor is None or minor == here:
        return Path(getattr(sys, "_base_executable", sys.executable))
    for candidate in _pyenv_pythons(minor):
        return candidate
    on_path = shutil.which(f"python{minor}")
    if on_path is not None and "shims" not in Path(on_path).parts:
        return Path(on_path)
    raise ModelEnvironmentError(
        f"The model needs Python {minor} and this machine has no interpreter of it (pier never "
        f"downloads one). Install Python {minor} (e.g. `pyenv install {minor}`, or your "
        "system's package), or serve it with env manager 'local'."
    )


def _pyenv_pythons(minor: str) -> list[Path]:
    roots = [Path(os.environ[v]) for v in PYENV_ROOTS if os.environ.get(v)]
    roots.append(Path.home() / ".pyenv")
    found: list[tuple[tuple[int, ...], Path]] = []
    for root in roots:
        for directory in root.glob(f"versions/{minor}.*"):
            patch = directory.name[len(minor) + 1 :]
            exe = directory / "bin" / f"python{minor}"
            if patch.isdigit() and exe.is_file():
                found.append(((int(patch),), exe))
    return [path for _, path in sorted(found, reverse=True)]
