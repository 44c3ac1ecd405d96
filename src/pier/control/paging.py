"""Paging of List operations: one opaque token codec, and keyset pages.

A NextToken holds the sort key of the last item served (keyset paging), so items deleted or
created between pages neither skip nor repeat the others: an offset would do both. The token is
the key as JSON, base64url-encoded; what a service puts in it is its own business, and a token
that does not decode is the service's own error (each AWS API words it differently).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from pier.errors import ValidationException

T = TypeVar("T")

__all__ = ["BadToken", "Page", "decode", "encode", "keyset", "sagemaker_page"]


class BadToken(ValueError):
    """A NextToken this module did not write (or that was altered)."""


def encode(value: Any) -> str:
    """An opaque token holding `value` (JSON)."""
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


def decode(token: str) -> Any:
    """The value `encode` put in `token`; BadToken when it holds none."""
    if not isinstance(token, str):
        raise BadToken(token)
    try:
        # ValueError covers a str that is not ASCII (or not even UTF-8: lone surrogates).
        return orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise BadToken(token) from None


_KINDS = (bool, int, float, str, list)  # bool first: True is an int too


def _kinds(key: list[Any]) -> list[type | None]:
    """The JSON kind of each part of a sort key (a StrEnum is a str)."""
    return [next((k for k in _KINDS if isinstance(part, k)), None) for part in key]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None  # None: the last page

    def token_field(self) -> dict[str, str]:
        """The answer's NextToken member: absent on the last page."""
        return {"NextToken": self.next_token} if self.next_token else {}


def keyset(
    rows: Sequence[T],
    key: Callable[[T], list[Any]],
    *,
    next_token: str | None,
    size: int,
    descending: bool,
) -> Page[T]:
    """Sort `rows` by `key` and serve the `size` after the token's key. `key` must be unique
    per row (end it with the name or id), so that no two rows share a place in the order."""
    ordered = sorted(rows, key=key, reverse=descending)
    if next_token:
        after = decode(next_token)
        # A key this module wrote has the shape of the rows' keys; another one may not even
        # compare with them (a str against a float is a TypeError, not a page).
        if not isinstance(after, list) or (ordered and _kinds(after) != _kinds(key(ordered[0]))):
            raise BadToken(next_token)
        try:
            ordered = [r for r in ordered if (key(r) < after if descending else key(r) > after)]
        except TypeError:  # the shape matched, a part nested deeper did not
            raise BadToken(next_token) from None
    items = ordered[:size]
    return Page(items, encode(key(items[-1])) if len(ordered) > size else None)


def sagemaker_page(
    rows: Sequence[T], req: Mapping[str, Any], key: Callable[[T], list[Any]], *, default_size: int
) -> Page[T]:
    """A page of a SageMaker List* answer: SortOrder (descending by default), MaxResults and
    NextToken from the request `req`."""
    try:
        return keyset(
            rows,
            key,
            next_token=req.get("NextToken"),
            size=int(req.get("MaxResults", default_size)),
            descending=req.get("SortOrder", "Descending") == "Descending",
        )
    except BadToken:
        raise ValidationException("Invalid pagination token given.") from None
