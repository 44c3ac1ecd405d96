"""Accept negotiation (RFC 9110): q-values, specificity, and the client's order on a tie."""

from __future__ import annotations

import pytest

from pier.contract.content_types import CSV, JSON, JSONLINES, choose_response_type


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("text/csv", CSV),
        ("application/jsonl", JSONLINES),
        ("text/csv;q=0, application/json", JSON),  # q=0: not acceptable
        ("text/csv;q=0", JSON),  # nothing pier writes is acceptable: JSON, never a 406
        ("application/json;q=0.5, text/csv", CSV),  # the highest q wins
        ("application/json;q=0.5, text/csv;q=0.9, application/jsonlines;q=0.7", CSV),
        ("text/csv, application/json", CSV),  # a tie: the first listed
        ("application/json, text/csv", JSON),
        ("*/*", JSON),  # a tie within one range: pier's order
        ("text/csv;q=0.5, */*;q=0.5", CSV),
        ("text/csv; q=0.8 , application/jsonlines ; Q=0.9", JSONLINES),  # spaces, case
        ("*/*;q=0.1, application/json;q=0", CSV),  # the most specific range decides
        ("application/*;q=0.3, text/*;q=0.4", CSV),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),  # a browser's
        ("image/png", JSON),
        ("text/csv;q=abc, application/json;q=0.9", CSV),  # an unparseable q counts as 1
        ("text/csv;q=7, application/json;q=0.9", CSV),  # so does one out of 0..1
    ],
)
def test_accept_negotiation(accept: str | None, chosen: str) -> None:
    assert choose_response_type(accept) == chosen
