"""pier.control.paging: keyset pages neither skip nor repeat items when others come and go
between pages; tokens the module did not write are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pier.control import paging
from pier.errors import ValidationException
from tests.control.tokens import CRAFTED_TOKENS


def test_pages_cover_every_item_once_in_order() -> None:
    rows = [3, 1, 4, 5, 9, 2, 6]
    seen, token = [], None
    while True:
        page = paging.keyset(rows, lambda r: [r], next_token=token, size=3, descending=True)
        seen += page.items
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == [9, 6, 5, 4, 3, 2, 1]
    assert page.token_field() == {}


def test_items_removed_or_added_before_the_mark_do_not_shift_the_next_page() -> None:
    first = paging.keyset([1, 2, 3, 4, 5], lambda r: [r], next_token=None, size=2, descending=False)
    assert first.items == [1, 2]
    assert first.token_field() == {"NextToken": first.next_token}
    meanwhile = [0, 2, 3, 4, 5]  # 1 deleted, 0 created: both before the mark
    rest = paging.keyset(
        meanwhile, lambda r: [r], next_token=first.next_token, size=10, descending=False
    )
    assert rest.items == [3, 4, 5]


@pytest.mark.parametrize("token", ["garbage", paging.encode({"o": 3}), "!!"])
def test_a_token_not_written_here_is_refused(token: str) -> None:
    with pytest.raises(paging.BadToken):
        paging.keyset([1, 2], lambda r: [r], next_token=token, size=1, descending=False)


# ------------------------------------------------------------------------- crafted tokens
# The sort keys pier's List operations use: (CreationTime, name), name, (status, name), an id,
# and ListMetrics' (namespace, name, dimension pairs).
_ROWS: list[tuple[str, list[Any], Callable[[Any], list[Any]]]] = [
    ("creation time", [(1.5, "a"), (2.5, "b")], lambda r: [r[0], r[1]]),
    ("name", ["a", "b"], lambda r: [r]),
    ("id", [1, 2], lambda r: [r]),
    ("metric", [("ns", "m", [["k", "v"]]), ("ns", "n", [])], lambda r: [r[0], r[1], r[2]]),
    ("none", [], lambda r: [r]),
]


@settings(max_examples=300, deadline=None)
@given(token=CRAFTED_TOKENS, rows=st.sampled_from(_ROWS), descending=st.booleans())
def test_a_crafted_token_is_a_bad_token_never_another_error(
    token: str, rows: tuple[str, list[Any], Callable[[Any], list[Any]]], descending: bool
) -> None:
    _, items, key = rows
    try:
        page = paging.keyset(items, key, next_token=token, size=1, descending=descending)
    except paging.BadToken:
        return
    assert len(page.items) <= 1


@settings(max_examples=200, deadline=None)
@given(token=CRAFTED_TOKENS, rows=st.sampled_from(_ROWS))
def test_sagemaker_answers_a_crafted_token_with_a_validation_error(
    token: str, rows: tuple[str, list[Any], Callable[[Any], list[Any]]]
) -> None:
    _, items, key = rows
    refused: ValidationException | None = None
    try:
        paging.sagemaker_page(items, {"NextToken": token}, key, default_size=1)
    except ValidationException as exc:
        refused = exc
    if refused is not None:
        assert (refused.status, refused.message) == (400, "Invalid pagination token given.")


@pytest.mark.parametrize(
    "token",
    [paging.encode([1.5]), paging.encode(["x", 1.5]), paging.encode([[1], "a"]), "\ud800"],
)
def test_a_token_of_another_shape_is_refused(token: str) -> None:
    with pytest.raises(paging.BadToken):
        paging.keyset(
            [(1.5, "a")], lambda r: [r[0], r[1]], next_token=token, size=1, descending=False
        )


def test_a_token_is_a_string() -> None:
    with pytest.raises(paging.BadToken):
        paging.decode(5)  # type: ignore[arg-type]
