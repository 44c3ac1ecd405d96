"""Storage locations: which URIs pier stores files at, and where they point."""

from __future__ import annotations

from pathlib import Path

import pytest

from pier.storage import S3Location, child, describe, location_problem, resolve


def test_locations(tmp_path: Path) -> None:
    assert location_problem("s3://bucket") is None
    assert location_problem("s3://bucket/a/b/") is None
    assert location_problem("file:///var/capture") is None
    assert location_problem("file:captures/x") is None
    for bad in (
        "https://b.s3.amazonaws.com/p",
        "s3:///nobucket",
        "file://host/x",
        "file:../x",
        "/x",
    ):
        assert location_problem(bad), bad
    assert resolve("s3://bucket/a/b/", tmp_path) == S3Location("bucket", "a/b")
    assert resolve("s3://bucket", tmp_path) == S3Location("bucket", "")
    assert resolve("file:///var/c%20d", tmp_path) == Path("/var/c d")
    assert resolve("file:rel/x", tmp_path) == tmp_path / "rel" / "x"
    with pytest.raises(ValueError, match="file:///path"):
        resolve("ftp://x/y", tmp_path)


def test_child_and_describe(tmp_path: Path) -> None:
    assert child(tmp_path, "a", "b") == tmp_path / "a" / "b"
    assert child(S3Location("bucket", ""), "a", "b") == S3Location("bucket", "a/b")
    assert child(S3Location("bucket", "p"), "a") == S3Location("bucket", "p/a")
    assert describe(S3Location("bucket", "p/a")) == "s3://bucket/p/a"
    assert describe(tmp_path) == str(tmp_path)
