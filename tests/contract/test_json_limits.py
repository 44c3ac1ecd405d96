"""Bodies beyond the decoders' limits are the client's serialization error, never a 500.

Nesting past pier's own limit (512 levels, json_depth) is refused before parsing; Python's
json raises ValueError for integers of more than 4,300 digits; cbor2 refuses nesting past
400 levels.
"""

from __future__ import annotations

import pytest

from pier.contract import cloudwatch, json_depth, sagemaker
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


# Parsed by Python's json on 3.11 and 3.12 (which give up near 1,000 levels), and 3.13 parses
# 5,000: the limit is pier's own, so the answer is the same on every interpreter.
WITHIN_PARSERS = b'{"a": ' + b"[" * 600 + b"]" * 600 + b"}"


def test_nesting_past_pier_limit_is_refused_on_every_python() -> None:
    with pytest.raises(SerializationException, match="nested deeper than 512 levels"):
        sagemaker.parse_body(WITHIN_PARSERS)
    with pytest.raises(SerializationException, match="nested deeper than 512 levels"):
        cloudwatch.decode_body(WITHIN_PARSERS, cloudwatch.Protocol.JSON)


def test_the_limit_itself_is_accepted() -> None:
    at_limit = b'{"a": ' + b"[" * 511 + b"]" * 511 + b"}"
    assert not json_depth.too_deep(at_limit)
    assert json_depth.too_deep(b'{"a": ' + b"[" * 512 + b"]" * 512 + b"}")
    assert sagemaker.parse_body(at_limit)["a"] is not None


def test_brackets_in_strings_do_not_count() -> None:
    inside = b'{"a": "' + b"[" * 2000 + b'", "b": "\\"' + b"{" * 2000 + b'"}'
    assert not json_depth.too_deep(inside)
    assert set(sagemaker.parse_body(inside)) == {"a", "b"}


def test_many_shallow_arrays_are_not_deep() -> None:
    rows = b'{"data": [' + b",".join([b"[1, 2, 3]"] * 5000) + b"]}"
    assert not json_depth.too_deep(rows)
