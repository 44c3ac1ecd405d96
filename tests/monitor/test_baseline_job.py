"""The baseline job: the training data chosen, profiled and suggested as SageMaker's baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pier.monitor.errors import MonitorError
from pier.monitor.schedules.baseline_job import baseline_data, suggest_for
from pier.monitor.schedules.model_baselines import TrainingData


def test_a_data_file_given_is_the_source(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    pd.DataFrame({"age": [30, 40, 50], "city": ["a", "b", "a"]}).to_csv(data, index=False)
    source = baseline_data(None, data, tmp_path)
    assert (source.data, source.description, source.warning) == (data, str(data), None)
    suggested = suggest_for(source, None)
    assert [f.name for f in suggested.baseline.statistics.features] == ["age", "city"]
    assert suggested.dropped == []


def test_a_frame_is_profiled_as_it_is(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
    suggested = suggest_for(TrainingData(frame, "the run's dataset"), None, all_columns=True)
    assert suggested.baseline.statistics.dataset.item_count == 3


def test_no_data_and_no_model_version(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="no training data"):
        baseline_data(None, None, tmp_path)
