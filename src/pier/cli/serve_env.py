"""`pier serve --env-manager`: which environment serves the model, and the switch into it.

The model URI is made a local directory (pier.hosting.model_local: a directory as it is, other
MLflow URIs downloaded), its environment read and the env manager applied
(pier.hosting.environments.decide). In pier's own environment the server runs in this process
as before. In the model's own virtualenv (built or taken from the cache, `--env-cache`, default
`<home>/envs`), this process becomes that environment's server: os.execve of
`<env>/bin/python -m pier.serving` with every setting passed as a PIER_* variable, so the pid a
supervisor started stays the server's pid and signals reach it directly.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from pier.settings import ServeSettings

log = logging.getLogger("pier.serve")
NOT_PASSED = ("env_manager", "env_cache")  # pier serve's business, not the server's


def choose(settings: ServeSettings, err: Console) -> tuple[ServeSettings, Path | None]:
    """(settings, None) to serve in this environment, or (settings, env dir) to serve in the
    model's own. `settings.model_uri` becomes the local directory when the model was
    downloaded. Raises PierError (ValidationException, ModelEnvironmentError) with a message
    for the user."""
    from pier.errors import ValidationException
    from pier.hosting import environments, model_env, model_local

    manager = environments.env_manager(settings.env_manager, "--env-manager")
    cache = settings.env_cache or settings.home / "envs"
    uri = settings.model_uri
    if manager is environments.EnvManager.LOCAL and not model_local.is_local(uri):
        log.info("env manager 'local': %s is served in pier's own environment, unchecked", uri)
        return settings, None  # nothing to decide: the server downloads it as it always has
    try:
        with err.status(f"Reading the environment of {uri}..."):
            model_dir = model_local.local_model_dir(uri, settings.home / "models" / "mlflow")
            env = model_env.read(model_dir)
    except ValidationException as exc:
        if manager is environments.EnvManager.VIRTUALENV:
            raise
        # Not a readable model: the server in pier's environment says so as it always has.
        log.warning("%s; serving it in pier's own environment", exc.message)
        return settings, None
    if not model_local.is_local(uri):  # downloaded: the server loads that copy
        settings = settings.model_copy(update={"model_uri": str(model_dir)})

    def progress(line: str) -> None:
        err.print(f"[dim]pier:[/dim] {line}")

    if not environments.decide(env, manager, uri).virtualenv:
        return settings, None
    with err.status("Preparing the model's environment..."):
        env_dir = environments.ensure(env, cache, progress=progress)
    log.info("serving %s in the model's environment %s", settings.model_uri, env_dir)
    return settings, env_dir


def server_environment(settings: ServeSettings) -> dict[str, str]:
    """This process's environment with every server setting as a PIER_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    for name, value in settings.model_dump().items():
        if value is None or name in NOT_PASSED:
            continue
        env[f"PIER_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exec_server(env_dir: Path, settings: ServeSettings) -> NoReturn:
    """Replace this process by the server of the environment in `env_dir`."""
    python = env_dir / "bin" / "python"
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os.execve(python, [str(python), "-m", "pier.serving"], server_environment(settings))  # noqa: S606
