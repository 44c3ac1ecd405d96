"""Gateway API keys: how they are made, stored and checked.

A key reads ``pier_<id>_<secret>``: `id` is 12 random lower-case letters and digits, public
(it is how `pier keys` names the key, and how the gateway finds it: a dict look-up, no scan);
`secret` is 32 random bytes, URL-safe base64. What is stored is the id and
HMAC-SHA256(server secret, whole key) in hex, never the key.

Why an HMAC and not a slow hash (scrypt, argon2): a slow hash exists to make guessing a
password from a stolen digest expensive, and a password is guessable. These keys carry 256
random bits: no digest can be inverted by guessing, and checking one costs ~1 µs on every
request where scrypt would cost tens of milliseconds. The server secret (32 bytes in the home,
0600) adds that a stolen database alone does not even let one test a candidate key. Digests
are compared with hmac.compare_digest (constant time).

`KeyRing` is the gateway's in-memory view of the active keys (replaced whole when the store
changes: a revoked key stops working as soon as the ring is reloaded).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass

from pier.store.api_keys import StoredKey

__all__ = ["PREFIX", "KeyRing", "NewKey", "digest", "key_id_of", "new_key"]

PREFIX = "pier_"
_ID_LENGTH = 12
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_CHARS = frozenset(_ID_ALPHABET)


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is shown once and never stored."""

    key_id: str
    key: str


def new_key() -> NewKey:
    """A fresh random key and its id."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    return NewKey(key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}")


def digest(server_secret: bytes, key: str) -> str:
    """What is stored for `key`: hex HMAC-SHA256 under the server's secret."""
    return hmac.new(
        server_secret, key.encode("utf-8", "surrogateescape"), hashlib.sha256
    ).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id inside a presented key, or None when it is not shaped like one of ours."""
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + _ID_LENGTH + 2:
        return None
    key_id = key[len(PREFIX) : len(PREFIX) + _ID_LENGTH]
    if key[len(PREFIX) + _ID_LENGTH] != "_" or not _ID_CHARS.issuperset(key_id):
        return None
    return key_id


class KeyRing:
    """The active keys by id; `check` finds the key a request presents."""

    def __init__(self, server_secret: bytes, keys: Iterable[StoredKey] = ()) -> None:
        self._secret = server_secret
        self._keys: dict[str, StoredKey] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[StoredKey]) -> None:
        """Serve exactly these keys from now on (revoked ones are left out)."""
        self._keys = {k.key_id: k for k in keys if k.revoked_at is None}

    def check(self, presented: str) -> StoredKey | None:
        """The active key `presented` is, or None (unknown id, wrong secret, revoked)."""
        key_id = key_id_of(presented)
        stored = self._keys.get(key_id) if key_id is not None else None
        # The digest is computed and compared even for an unknown id, so that the answer's
        # time does not tell which ids exist.
        expected = stored.digest if stored is not None else "0" * 64
        if hmac.compare_digest(digest(self._secret, presented), expected) and stored is not None:
            return stored
        return None
