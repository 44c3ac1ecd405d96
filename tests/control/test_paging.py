"""pier.control.paging: keyset pages neither skip nor repeat items when others come and go
between pages; tokens the module did not write are refused."""

from __future__ import annotations

import pytest

from pier.control import paging


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
