"""docs/monitoring.md's "Baselines and drift" examples and examples/monitoring run as written,
and print what the page says they print."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "monitoring.md"


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_documented_examples_run_and_print_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = section(DOC.read_text(), "Baselines and drift")
    blocks = re.findall(r"```python\n(.*?)```", body, flags=re.S)
    shown = re.findall(r"```text\n(.*?)```", body, flags=re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)

    # KLL compacts at random: the page's numbers are one run's, the words must match.
    def words(text: str) -> str:
        return re.sub(r"\d+\.\d+", "<number>", text.strip())

    for text in shown:
        assert words(text) in words(out.getvalue())
    assert (tmp_path / "baseline" / "statistics.json").is_file()
    assert (tmp_path / "report" / "constraint_violations.json").is_file()


def test_the_example_script_finds_the_drift_it_plants(tmp_path: Path) -> None:
    module = runpy.run_path(str(ROOT / "examples" / "monitoring" / "baseline_and_drift.py"))
    violations = module["main"](tmp_path)
    assert [(v.feature_name, v.constraint_check_type.value) for v in violations.violations] == [
        ("plan", "categorical_values_check"),
        ("income", "baseline_drift_check"),
    ]
    for name in ("baseline/statistics.json", "baseline/constraints.json"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "constraint_violations.json").is_file()
