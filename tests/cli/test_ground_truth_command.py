"""`pier ground-truth upload` and `pier quality` without a platform: durations, bad files
(exit 2, every bad line named, nothing sent), a platform that is not running (exit 1).
tests/e2e/test_ground_truth.py runs both against `pier up`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pier.cli.ground_truth_command import _chunks, parse_duration
from pier.cli.main import app

RECORD = {
    "groundTruthData": {"data": "1.5", "encoding": "CSV"},
    "eventMetadata": {"eventId": "order-1"},
    "eventVersion": "0",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("1h30m", 5400), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--since") == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0h", "1x", "1h junk"])
def test_bad_durations_exit_2(text: str) -> None:
    with pytest.raises(typer.Exit) as caught:
        parse_duration(text, "--since")
    assert caught.value.exit_code == 2


def test_chunks_split_at_lines() -> None:
    lines = [b"a" * 10, b"b" * 10, b"c" * 10]
    assert _chunks(lines, 22) == [[b"a" * 10, b"b" * 10], [b"c" * 10]]
    assert _chunks(lines, 5) == [[x] for x in lines]  # one line over the limit still goes


def test_a_bad_file_names_its_lines_and_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    bad_version = {**RECORD, "eventVersion": "2"}
    path.write_text("\n".join([json.dumps(RECORD), "{oops", json.dumps(bad_version)]) + "\n")
    result = CliRunner().invoke(
        app, ["ground-truth", "upload", str(path), "--endpoint", "x", "--home", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"{path}:2: not valid JSON" in result.output
    assert f'{path}:3: eventVersion must be "0", not "2"' in result.output
    assert "nothing was uploaded" in result.output


def test_without_a_platform(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(RECORD) + "\n")
    home = ["--home", str(tmp_path / "home")]
    result = CliRunner().invoke(app, ["ground-truth", "upload", str(path), "-e", "x", *home])
    assert result.exit_code == 1
    assert "pier is not running" in result.output
    result = CliRunner().invoke(app, ["quality", "x", *home])
    assert result.exit_code == 1
    assert "pier is not running" in result.output
    result = CliRunner().invoke(app, ["quality", "x", "--since", "yesterday", *home])
    assert result.exit_code == 2
    missing = CliRunner().invoke(app, ["ground-truth", "upload", "nope.jsonl", "-e", "x", *home])
    assert missing.exit_code == 2
    assert "cannot read nope.jsonl" in missing.output
