"""Named users, their roles and their access keys, in the state store.

A user has one role (admin, deployer, invoker; what each may do is pier.platform.access's
table) and one or more access keys: one normally, two during a rotation's grace period, when
the old key carries an `expires_at`. SigV4 needs the secret itself to verify a signature (it
is an HMAC key, not a password), so a hash cannot be stored: secrets are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`) under a server key that lives in the home, 0600,
never in the store. A copy of the database alone reveals no secret.

Every method is one short transaction: call it from a thread on an event loop.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from pier.errors import PierError
from pier.store.tables import AccessKeyRow, UserRow

__all__ = [
    "ROLES",
    "ActiveKey",
    "NewKey",
    "StoredUser",
    "UserError",
    "UserStore",
    "new_access_key",
]

log = logging.getLogger("pier.store")

#: The roles, most powerful first (their rights: pier.platform.access.ROLE_ACTIONS).
ROLES = ("admin", "deployer", "invoker")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=,-]{0,63}")  # IAM's user-name characters


class UserError(PierError):
    """A user command that cannot be done as asked (unknown user, duplicate, bad role...)."""

    status = 400
    code = "UserError"


@dataclass(frozen=True)
class NewKey:
    """A key as created: the only time its secret is shown."""

    user: str
    role: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class ActiveKey:
    """A key that verifies signatures now (the platform's cache of them)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    user: str
    role: str


@dataclass(frozen=True)
class StoredUser:
    name: str
    role: str
    created_at: datetime
    keys: list[tuple[str, datetime, datetime | None]]  # (key id, created, expires or None)


def new_access_key() -> tuple[str, str]:
    """(access key id, secret access key): AWS's shapes (20 upper-case characters; 40)."""
    alphabet = string.ascii_uppercase + string.digits
    key_id = "AKPR" + "".join(secrets.choice(alphabet) for _ in range(16))
    return key_id, secrets.token_urlsafe(30)[:40]


class UserStore:
    """Users and keys; secrets go in and out through `server_key` (a Fernet key)."""

    def __init__(self, sessions: sessionmaker[Session], server_key: bytes) -> None:
        self._sessions = sessions
        self._fernet = Fernet(server_key)

    # ------------------------------------------------------------------------- changes
    def add(self, name: str, role: str, key: tuple[str, str] | None = None) -> NewKey:
        """A new user with a new key (or `key`, (id, secret)); UserError if the name is taken
        or the name or role is invalid."""
        _check_name(name)
        _check_role(role)
        key_id, secret = key or new_access_key()
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            if session.get(UserRow, name) is not None:
                raise UserError(f"user {name} exists; `pier users list` shows the users")
            session.add(UserRow(name=name, role=role, created_at=now))
            session.flush()
            session.add(self._key_row(name, key_id, secret, now))
        return NewKey(name, role, key_id, secret)

    def add_key(self, name: str, key_id: str, secret: str) -> None:
        """Attach an existing key (the home's credential) to user `name`."""
        with self._sessions.begin() as session:
            self._user(session, name)
            session.add(self._key_row(name, key_id, secret, datetime.now(UTC)))

    def rekey(self, key_id: str, secret: str) -> bool:
        """Store `secret` again for `key_id` if this server key cannot read what is stored
        (the home's own key after server.key was lost: credentials.json still has it);
        whether it did."""
        with self._sessions.begin() as session:
            row = session.get(AccessKeyRow, key_id)
            if row is None:
                return False
            try:
                self._fernet.decrypt(row.secret.encode())
            except InvalidToken:
                row.secret = self._fernet.encrypt(secret.encode()).decode()
                return True
            return False

    def rotate(self, name: str, grace: timedelta) -> NewKey:
        """A new key for `name`; its other keys stay valid for `grace` (0: revoked now)."""
        key_id, secret = new_access_key()
        now = datetime.now(UTC)
        until = now + grace
        with self._sessions.begin() as session:
            user = self._user(session, name)
            session.execute(  # keys whose grace is over: gone for good
                delete(AccessKeyRow).where(
                    AccessKeyRow.user_name == name, AccessKeyRow.expires_at <= now
                )
            )
            for row in session.scalars(select(AccessKeyRow).where(AccessKeyRow.user_name == name)):
                if row.expires_at is None or row.expires_at > until:
                    row.expires_at = until
            session.add(self._key_row(name, key_id, secret, now))
            role = user.role
        return NewKey(name, role, key_id, secret)

    def remove(self, name: str) -> None:
        """Delete `name` and its keys; UserError if there is no such user, or if it is the
        last admin (nobody could manage users through the APIs' owner any more)."""
        with self._sessions.begin() as session:
            user = self._user(session, name)
            if user.role == "admin":
                admins = session.scalars(select(UserRow.name).where(UserRow.role == "admin"))
                if list(admins) == [name]:
                    raise UserError(f"{name} is the last admin; add another admin first")
            session.execute(delete(AccessKeyRow).where(AccessKeyRow.user_name == name))
            session.execute(delete(UserRow).where(UserRow.name == name))

    # ------------------------------------------------------------------------- reads
    def owner_of(self, key_id: str) -> str | None:
        """The user holding `key_id`, else None."""
        with self._sessions() as session:
            row = session.get(AccessKeyRow, key_id)
            return None if row is None else row.user_name

    def users(self) -> list[StoredUser]:
        """Every user with its keys, by name (no secrets)."""
        with self._sessions() as session:
            keys: dict[str, list[tuple[str, datetime, datetime | None]]] = {}
            for k in session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.created_at)):
                keys.setdefault(k.user_name, []).append((k.key_id, k.created_at, k.expires_at))
            return [
                StoredUser(u.name, u.role, u.created_at, keys.get(u.name, []))
                for u in session.scalars(select(UserRow).order_by(UserRow.name))
            ]

    def fingerprint(self, now: datetime) -> tuple[tuple[str, str, str], ...]:
        """(key id, user, role) of the keys valid at `now`, sorted: what the platform's cache
        compares to know when to reload (no secret is read or decrypted)."""
        query = (
            select(AccessKeyRow.key_id, UserRow.name, UserRow.role)
            .join(UserRow, UserRow.name == AccessKeyRow.user_name)
            .where(or_(AccessKeyRow.expires_at.is_(None), AccessKeyRow.expires_at > now))
        )
        with self._sessions() as session:
            return tuple(sorted((r[0], r[1], r[2]) for r in session.execute(query)))

    def active_keys(self, now: datetime) -> list[ActiveKey]:
        """The keys valid at `now`, secrets decrypted (for the platform's verifier only); a key
        this server key cannot decrypt is left out, and the log says which (its id only)."""
        query = (
            select(AccessKeyRow.key_id, AccessKeyRow.secret, UserRow.name, UserRow.role)
            .join(UserRow, UserRow.name == AccessKeyRow.user_name)
            .where(or_(AccessKeyRow.expires_at.is_(None), AccessKeyRow.expires_at > now))
        )
        with self._sessions() as session:
            rows = list(session.execute(query))
        keys = []
        for key_id, token, user, role in rows:
            try:
                secret = self._fernet.decrypt(token.encode()).decode()
            except InvalidToken:  # encrypted under another home's server key: unusable here
                log.warning(
                    "access key %s of %s: not readable with this home's server key "
                    "(rotate it: pier users rotate-key %s)",
                    key_id, user, user,
                )  # fmt: skip
                continue
            keys.append(ActiveKey(key_id, secret, user, role))
        return keys

    # ------------------------------------------------------------------------- helpers

    def _key_row(self, name: str, key_id: str, secret: str, now: datetime) -> AccessKeyRow:
        token = self._fernet.encrypt(secret.encode()).decode()
        return AccessKeyRow(
            key_id=key_id, user_name=name, secret=token, created_at=now, expires_at=None
        )

    @staticmethod
    def _user(session: Session, name: str) -> UserRow:
        user = session.get(UserRow, name)
        if user is None:
            raise UserError(f"no user {name}; `pier users list` shows the users")
        return user


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise UserError(
            f"invalid user name {name!r}: 1 to 64 letters, digits and ._@+=,- "
            "(starting with a letter or digit)"
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"invalid role {role!r}: choose one of {', '.join(ROLES)}")
