"""Who may sign in to the console: the one identity check.

Today the platform has one credential, the access key and secret in the home
(pier.platform.home); `check` compares a submitted pair against what the platform's lookup
holds for that key id, in constant time. Named users and roles (docs/security.md) plug in here:
a lookup that returns a user's credentials and role gives the console its `Identity`, and
nothing else in the console changes.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from pier.contract.sigv4 import Credentials

#: The platform's credentials by access key id (None: no such key), as SigV4 reads them.
Lookup = Callable[[str], Credentials | None]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a console session belongs to: the access key it signed in with."""

    access_key_id: str


def check(lookup: Lookup, access_key_id: str, secret: str) -> Identity | None:
    """The identity whose access key and secret these are, else None. The secret is compared
    in constant time; an unknown key still costs one comparison, so timing does not tell a
    known key from an unknown one."""
    found = lookup(access_key_id)
    expected = found.secret_access_key if found is not None else "\0" * max(len(secret), 1)
    same = hmac.compare_digest(expected.encode(), secret.encode())
    if found is None or not same:
        return None
    return Identity(found.access_key_id)


__all__ = ["Identity", "Lookup", "check"]
