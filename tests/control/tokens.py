"""Tokens pier did not write, for the List operations' NextToken: arbitrary text, base64 of
arbitrary bytes, base64 of JSON of any shape (huge integers, NaN and the infinities included),
and a few made to slip past a lax decoder."""

from __future__ import annotations

import base64
import json

from hypothesis import strategies as st

from pier.control import paging

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=10**400)  # beyond what orjson reads
    | st.floats()  # NaN and the infinities too: json.dumps writes them, JSON has none
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


CRAFTED_TOKENS = (
    st.text()
    | st.binary().map(_b64)
    | _JSON.map(lambda v: _b64(json.dumps(v).encode()))
    | st.sampled_from(
        [
            _b64(b"[" * 5000 + b"]" * 5000),  # nested deeper than any parser goes
            _b64(b"[" + b"9" * 5000 + b"]"),
            _b64(b"[NaN]"),
            _b64(b"[1e999]"),
            "\ud800",  # not even UTF-8
            paging.encode([1.5]),  # the kind of a key, one part short
            paging.encode(["x", 1.5]),  # the parts swapped
            paging.encode(["ns", "m", [["k", 1]]]),  # a nested part of another kind
        ]
    )
)
