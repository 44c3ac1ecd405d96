"""An explicit nesting limit for JSON request bodies, the same on every Python.

Python's json refused deep nesting only by running out of recursion: RecursionError at about
1,000 levels on 3.11, but 3.12 parses 1,000 and 3.13 parses 5,000 levels (its C recursion
limit is separate from the interpreter's). A body's fate must not depend on the interpreter,
so the decoders ask `too_deep` first and refuse anything nested deeper than `MAX_DEPTH`.

The check is cheap: counting brackets (C speed) settles almost every body; only a body with
more opening brackets than the limit is scanned, once, over its brackets alone (strings
removed first, so a bracket inside a string never counts).
"""

from __future__ import annotations

import re

#: Deeper than any SageMaker request or model input (a tensor of 512 dimensions); well below
#: where any Python's parser gives up.
MAX_DEPTH = 512

_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays and objects more than `limit` levels deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def refusal(limit: int = MAX_DEPTH) -> str:
    """The words for a body `too_deep` refused."""
    return f"nested deeper than {limit} levels of arrays and objects"
