"""The baseline job: statistics.json and constraints.json of a model's training data, as
`pier monitor baseline` computes them before storing them with the model version.

The data is the file or directory given, else the dataset logged with the version's run
(model_baselines.training_data). Columns the model does not take as input (a label, an ID the
signature does not name) are left out unless the caller keeps every column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pier.monitor.errors import MonitorError
from pier.monitor.schedules.model_baselines import (
    ModelVersion,
    TrainingData,
    keep_model_inputs,
    model_input_names,
    training_data,
)
from pier.monitor.stats.baseline import Baseline, profile_path, suggest_baseline
from pier.monitor.stats.profile import profile_frame


@dataclass(frozen=True)
class SuggestedBaseline:
    baseline: Baseline
    dropped: list[str] = field(default_factory=list)  # columns left out: not model inputs


def baseline_data(version: ModelVersion | None, data: Path | None, scratch: Path) -> TrainingData:
    """`data` when given, else the training data of `version` (downloaded into `scratch`)."""
    if data is not None:
        return TrainingData(data, str(data))
    if version is None:
        raise MonitorError("no training data: give a data file or a model version")
    return training_data(version, scratch)


def suggest_for(
    source: TrainingData, version: ModelVersion | None, all_columns: bool = False
) -> SuggestedBaseline:
    """Profile `source` and suggest its baseline (SageMaker's suggest_baseline)."""
    if isinstance(source.data, Path):
        profile = profile_path(source.data)
    else:
        profile = profile_frame(source.data)
    dropped = []
    if version is not None and not all_columns:
        dropped = keep_model_inputs(profile, model_input_names(version))
    return SuggestedBaseline(suggest_baseline(profile), dropped)


__all__ = ["SuggestedBaseline", "baseline_data", "suggest_for"]
