"""Baselines from files: CSV (with or without a header) and Parquet, one file or a directory,
typed as SageMaker types them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pier.monitor.errors import MonitorError
from pier.monitor.stats.baseline import profile_path, suggest_baseline
from pier.monitor.stats.formats import to_dict
from tests.monitor.data import tabular


@pytest.fixture
def frame() -> pd.DataFrame:
    data = tabular(np.random.default_rng(21), 3000)
    data["count"] = data["count"].astype("Int64")
    data.loc[::7, "count"] = pd.NA  # an integer column with gaps stays Integral
    return data


def test_csv_and_parquet_give_the_frames_statistics(frame: pd.DataFrame, tmp_path: Path) -> None:
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    expected = to_dict(suggest_baseline(frame).constraints)
    for name in ("data.csv", "data.parquet"):
        baseline = suggest_baseline(tmp_path / name)
        assert to_dict(baseline.constraints) == expected, name
        count = baseline.statistics.feature("count")
        assert count is not None
        assert count.inferred_type == "Integral"
        assert count.common.num_missing == len(range(0, 3000, 7))
        assert baseline.statistics.dataset.item_count == 3000


def test_a_directory_of_files_is_one_dataset(frame: pd.DataFrame, tmp_path: Path) -> None:
    frame.iloc[:1000].to_csv(tmp_path / "part-1.csv", index=False)
    frame.iloc[1000:].to_parquet(tmp_path / "part-2.parquet", index=False)
    (tmp_path / "README.txt").write_text("ignored")
    profile = profile_path(tmp_path)
    assert profile.item_count == 3000
    assert list(profile.features) == list(frame.columns)


def test_headerless_csv_uses_sparks_column_names(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("1,a,0.5\n2,b,1.5\n")
    baseline = suggest_baseline(tmp_path / "data.csv", header=False)
    assert [f.name for f in baseline.statistics.features] == ["_c0", "_c1", "_c2"]
    assert [f.inferred_type for f in baseline.statistics.features] == [
        "Integral",
        "String",
        "Fractional",
    ]


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="no such file or directory"):
        suggest_baseline(tmp_path / "absent.csv")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(MonitorError, match=r"expected a \.csv or \.parquet file"):
        suggest_baseline(tmp_path / "data.json")
    (tmp_path / "data.json").unlink()
    with pytest.raises(MonitorError, match=r"no \.csv or \.parquet files"):
        suggest_baseline(tmp_path)
