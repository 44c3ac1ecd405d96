"""The model-quality job: a capture destination URI and a ground-truth store in, a report with
what could not be read out (what `pier quality` renders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pier.monitor.quality.ground_truth import GroundTruthStore, store_uri, validate
from pier.monitor.quality.job import run_quality
from pier.monitor.quality.quality import Problem, QualityOptions
from tests.monitor.test_ground_truth import T0, body, capture_line, line, write_captures

OPTIONS = QualityOptions(problem=Problem.REGRESSION)


def test_captures_under_the_capture_base_joined_with_labels(tmp_path: Path) -> None:
    base = tmp_path / "capture"
    write_captures(base / "cap", "ep", "champion", [capture_line("e1", T0, 1.0, "i1")], T0)
    cut = capture_line("e2", T0, 2.0, "i2")[:40]  # a line a crash cut
    write_captures(base / "cap", "ep", "challenger", [capture_line("e3", T0, 3.0, "i3"), cut], T0)
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)
    store.append("ep", validate(body(line("i1", "2"), line("i3", "5"))), now=T0)

    run = run_quality("ep", "file:cap", base, store, OPTIONS, T0 - 3600, T0 + 1)

    assert {v: t.metrics["mae"] for v, t in run.report.totals.items()} == {
        "challenger": 2.0,
        "champion": 1.0,
    }
    assert run.captured.bad_lines == 1
    assert [g.event_id for g in run.labels] == ["i1", "i3"]


def test_a_capture_destination_pier_cannot_read(tmp_path: Path) -> None:
    store = GroundTruthStore(store_uri(None, tmp_path), tmp_path)
    with pytest.raises(ValueError, match="file:///path"):
        run_quality("ep", "ftp://x/y", tmp_path, store, OPTIONS, T0 - 60, T0)
