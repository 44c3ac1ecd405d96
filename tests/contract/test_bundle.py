"""The bundle codec (pier.contract.bundle): what is encoded decodes to the same requests and
answers, absent headers stay absent, and anything cut short is a BundleError, never garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pier.contract import bundle

header = st.none() | st.binary(max_size=40)
requests = st.lists(
    st.builds(bundle.BundledRequest, header, header, st.binary(max_size=200)), max_size=12
)
answers = st.lists(
    st.builds(
        bundle.BundledAnswer, st.integers(100, 599), st.binary(max_size=40), st.binary(max_size=200)
    ),
    max_size=12,
)


@given(requests)
def test_requests_round_trip(items: list[bundle.BundledRequest]) -> None:
    assert bundle.decode_requests(bundle.encode_requests(items)) == items


@given(answers)
def test_answers_round_trip(items: list[bundle.BundledAnswer]) -> None:
    assert bundle.decode_answers(bundle.encode_answers(items)) == items


@given(requests.filter(bool), st.data())
def test_requests_cut_short_are_refused(
    items: list[bundle.BundledRequest], data: st.DataObject
) -> None:
    encoded = bundle.encode_requests(items)
    last = bundle.encode_requests(items[-1:])
    cut = data.draw(st.integers(len(encoded) - len(last) + 1, len(encoded) - 1), label="cut")
    with pytest.raises(bundle.BundleError, match="cut short"):
        bundle.decode_requests(encoded[:cut])


@given(answers.filter(bool), st.data())
def test_answers_cut_short_are_refused(
    items: list[bundle.BundledAnswer], data: st.DataObject
) -> None:
    encoded = bundle.encode_answers(items)
    last = bundle.encode_answers(items[-1:])
    cut = data.draw(st.integers(len(encoded) - len(last) + 1, len(encoded) - 1), label="cut")
    with pytest.raises(bundle.BundleError, match="cut short"):
        bundle.decode_answers(encoded[:cut])


def test_an_empty_header_is_not_an_absent_one() -> None:
    items = [bundle.BundledRequest(b"", None, b"x")]
    assert bundle.decode_requests(bundle.encode_requests(items)) == items


def test_a_header_too_long_for_the_format_is_refused() -> None:
    with pytest.raises(bundle.BundleError, match="does not fit"):
        bundle.encode_requests([bundle.BundledRequest(b"a" * 70000, None, b"")])
