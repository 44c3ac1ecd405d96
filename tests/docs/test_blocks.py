"""The markers the docs-run test reads (fast: no shell is started)."""

from __future__ import annotations

import pytest

from tests.docs.blocks import ORDER, ROOT, MarkerError, all_blocks, blocks_of

PAGE = """# A page

<!-- docs-run: skip: AWS only -->
```bash
aws sagemaker list-endpoints --region eu-west-1
```

```bash
pier endpoints
```

<!-- docs-run: expect-fail: the key was revoked -->
```sh
curl --fail http://127.0.0.1:1/
```

```console
$ pier endpoints
```

```python
print("not run")
```
"""


def test_markers_and_languages() -> None:
    found = [(b.line, b.mode, b.reason, b.text) for b in blocks_of("p.md", PAGE)]
    assert found == [
        (4, "skip", "AWS only", "aws sagemaker list-endpoints --region eu-west-1"),
        (8, "run", "", "pier endpoints"),
        (13, "expect-fail", "the key was revoked", "curl --fail http://127.0.0.1:1/"),
    ]


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ("<!-- docs-run: skipp: typo -->\n```bash\nls\n```\n", "unreadable marker"),
        ("<!-- docs-run: skip -->\n```bash\nls\n```\n", "unreadable marker"),  # no reason
        ("<!-- docs-run: skip: x -->\ntext\n```bash\nls\n```\n", "must precede a fence"),
        ("<!-- docs-run: skip: x -->\n```python\n1\n```\n", "before a python block"),
    ],
)
def test_a_marker_that_would_be_ignored_is_an_error(page: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        blocks_of("p.md", page)


def test_every_page_is_in_the_reading_order_and_every_marker_reads() -> None:
    pages = {"README.md"} | {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert set(ORDER) == pages
    assert len(ORDER) == len(set(ORDER))
    assert all_blocks()  # parses every page: a misspelt marker is an error, not a silent run
