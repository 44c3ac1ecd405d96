"""The platform's home directory: credentials, server key, pid file, logs, instances, models."""

from __future__ import annotations

import base64
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
    def server_key_file(self) -> Path:
        """The key that encrypts users' secrets in the state store (pier.store.users)."""
        return self.root / "server.key"

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

    def write_credentials(self, credentials: Credentials) -> None:
        """Replace the home's access key (after `pier users rotate-key` of its user): written
        0600 beside it, then moved over it, so no reader sees half a file."""
        tmp = self.credentials_file.with_name(".credentials.json.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "access_key_id": credentials.access_key_id,
                    "secret_access_key": credentials.secret_access_key,
                },
                f,
            )
        os.replace(tmp, self.credentials_file)

    def server_key(self) -> bytes:
        """The server key (a Fernet key: 32 random bytes, URL-safe base64); generated 0600 on
        first use. Losing it makes the stored secrets unreadable: users must be re-keyed."""
        path = self.server_key_file
        key = base64.urlsafe_b64encode(secrets.token_bytes(32))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()  # made by the platform or another command
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key

    @property
    def gateway_secret_file(self) -> Path:
        return self.root / "gateway.secret"

    def gateway_secret(self) -> bytes:
        """The server secret API key digests are keyed with (pier.control.api_keys): 32
        random bytes, generated (0600) on first use. Losing it invalidates every key."""
        path = self.gateway_secret_file
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        secret = secrets.token_bytes(32)
        # Written whole under a temporary name, then linked into place: a process racing us
        # (the CLI and the platform) either links first or reads the complete file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
        try:
            os.link(tmp, path)
        except FileExistsError:  # made meanwhile by another process: theirs is the one
            return path.read_bytes()
        finally:
            tmp.unlink()
        return secret

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
