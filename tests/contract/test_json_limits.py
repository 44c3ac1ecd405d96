"""Bodies beyond the decoders' limits are the client's serialization error, never a 500.

Python's json raises RecursionError past the recursion limit (about 1,000 levels) and
ValueError for integers of more than 4,300 digits; cbor2 refuses nesting past 400 levels.
"""

from __future__ import annotations

import pytest

from pier.contract import cloudwatch, sagemaker
from pier.errors import SerializationException

DEEP_ARRAY = b"[" * 2000 + b"]" * 2000
DEEP_OBJECT = b'{"a": ' * 2000 + b"1" + b"}" * 2000
DEEP_MEMBER = b'{"a": ' + DEEP_ARRAY + b"}"
LONG_INTEGER = b'{"a": 1' + b"0" * 4400 + b"}"
JSON_BODIES = pytest.mark.parametrize(
    "body",
    [DEEP_ARRAY, DEEP_OBJECT, DEEP_MEMBER, LONG_INTEGER],
    ids=["array", "object", "member", "integer"],
)


@JSON_BODIES
def test_sagemaker_json(body: bytes) -> None:
    with pytest.raises(SerializationException, match="Malformed JSON"):
        sagemaker.parse_body(body)


@JSON_BODIES
def test_cloudwatch_json(body: bytes) -> None:
    with pytest.raises(SerializationException, match="Malformed JSON"):
        cloudwatch.decode_body(body, cloudwatch.Protocol.JSON)


@pytest.mark.parametrize(
    "body",
    [b"\x81" * 2000 + b"\x80", b"\xa1\x61a" * 2000 + b"\x01"],  # arrays, maps of one item
    ids=["arrays", "maps"],
)
def test_cloudwatch_cbor(body: bytes) -> None:
    with pytest.raises(SerializationException, match="Malformed CBOR"):
        cloudwatch.decode_body(body, cloudwatch.Protocol.CBOR)
