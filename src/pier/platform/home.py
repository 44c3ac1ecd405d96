"""The platform's home directory: credentials, pid file, logs, instance state, model cache."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from pier.contract.sigv4 import Credentials
from pier.errors import PierError
from pier.hosting.pids import running_from_pid_file

OWNER_ONLY_DIR = 0o700
# The platform process's umask (pier.platform.server.run): what it creates in the home is
# 0600/0700, whatever the user's umask. Only the platform sets it: files the CLI writes for the
# user (`pier build`, `pier export`) keep the user's umask.
OWNER_ONLY_UMASK = 0o077


class HomeError(PierError):
    code = "HomeUnusable"


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "pier.pid"

    @property
    def url_file(self) -> Path:
        return self.root / "pier.url"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "platform.log"

    @property
    def mlflow_log_file(self) -> Path:
        return self.root / "logs" / "mlflow.log"

    @property
    def mlflow_pid_file(self) -> Path:
        return self.root / "mlflow.pid"

    @property
    def mlflow_url_file(self) -> Path:
        """The tracking URI the platform uses: its own MLflow server's, or the one it was given."""
        return self.root / "mlflow.url"

    @property
    def instances_dir(self) -> Path:
        return self.root / "instances"

    @property
    def model_cache(self) -> Path:
        return self.root / "models"

    def prepare(self) -> None:
        """Create the directories, owner-only (0700): the home holds the state database (with
        containers' Environment values), captured payloads and logs. A home made wider by an
        older pier is narrowed; a clear error if the home is not writable."""
        try:
            for d in (self.root, self.log_file.parent, self.instances_dir, self.model_cache):
                d.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
            if self.root.stat().st_mode & 0o077:
                self.root.chmod(OWNER_ONLY_DIR)
            probe = self.root / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise HomeError(
                f"the pier home {self.root} is not writable ({exc.strerror}); "
                "choose another with --home or PIER_HOME"
            ) from None

    def credentials(self, create: bool = True) -> Credentials | None:
        """The platform's access key; generated (0600) on first use."""
        path = self.credentials_file
        if path.exists():
            data = json.loads(path.read_text())
            return Credentials(data["access_key_id"], data["secret_access_key"])
        if not create:
            return None
        alphabet = string.ascii_uppercase + string.digits
        key_id = "AKPR" + "".join(secrets.choice(alphabet) for _ in range(16))
        secret = secrets.token_urlsafe(30)[:40]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"access_key_id": key_id, "secret_access_key": secret}, f)
        return Credentials(key_id, secret)

    def running_pid(self) -> int | None:
        """The pid of a live platform process of this home, else None (a zombie or a reused
        pid is not one: pier.hosting.pids)."""
        return running_from_pid_file(self.pid_file)

    def url(self) -> str | None:
        return _read(self.url_file)

    def mlflow_url(self) -> str | None:
        return _read(self.mlflow_url_file)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
