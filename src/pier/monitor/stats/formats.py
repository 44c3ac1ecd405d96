"""SageMaker Model Monitor's files, as typed models: statistics.json, constraints.json and
constraint_violations.json.

pier writes exactly SageMaker's keys, so SageMaker's tooling (and Studio) reads pier's files,
and reads SageMaker's files back (numbers written as ``0.0`` where pier writes ``0``, unknown
keys kept as they are). :func:`load` and :func:`dump` turn validation failures into
:class:`~pier.monitor.errors.MonitorError` naming the file and the field.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pier.monitor.errors import MonitorError
from pier.monitor.stats.profile import InferredType


class _Model(BaseModel):
    # Unknown keys survive a round trip (SageMaker may add fields); ours are exact.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- statistics.json -------------------------------------------------------------------------


class CommonStatistics(_Model):
    num_present: int
    num_missing: int


class KllBucket(_Model):
    lower_bound: float
    upper_bound: float
    count: float


class KllParameters(_Model):
    c: float
    k: float


class KllSketch(_Model):
    parameters: KllParameters
    # One list per level, lowest first; an item on level h stands for 2**h values.
    data: list[list[float]]


class KllDistribution(_Model):
    buckets: list[KllBucket]
    sketch: KllSketch


class NumericalDistribution(_Model):
    kll: KllDistribution


class NumericalStatistics(_Model):
    common: CommonStatistics
    mean: float
    sum: float
    std_dev: float
    min: float
    max: float
    distribution: NumericalDistribution


class CategoricalBucket(_Model):
    value: str
    count: int | float


class CategoricalDistribution(_Model):
    buckets: list[CategoricalBucket]


class StringDistribution(_Model):
    categorical: CategoricalDistribution


class StringStatistics(_Model):
    common: CommonStatistics
    distinct_count: int | float
    distribution: StringDistribution


class FeatureStatistics(_Model):
    name: str
    inferred_type: InferredType
    numerical_statistics: NumericalStatistics | None = None
    string_statistics: StringStatistics | None = None

    @property
    def common(self) -> CommonStatistics:
        stats = self.numerical_statistics or self.string_statistics
        if stats is None:
            raise MonitorError(f"feature {self.name!r} has neither numerical nor string statistics")
        return stats.common


class DatasetStatistics(_Model):
    item_count: int


class Statistics(_Model):
    version: int | float = 0
    dataset: DatasetStatistics
    features: list[FeatureStatistics]

    def feature(self, name: str) -> FeatureStatistics | None:
        return next((f for f in self.features if f.name == name), None)


# --- constraints.json ------------------------------------------------------------------------

Switch = Literal["Enabled", "Disabled"]


class DistributionConstraints(_Model):
    perform_comparison: Switch = "Enabled"
    comparison_threshold: float = 0.1
    comparison_method: Literal["Simple", "Robust"] = "Robust"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: Literal["LInfinity", "ChiSquared"] = "LInfinity"


class MonitoringConfig(_Model):
    """SageMaker's defaults (Model Monitor's constraints schema)."""

    evaluate_constraints: Switch = "Enabled"
    emit_metrics: Switch = "Enabled"
    datatype_check_threshold: float = 1.0
    domain_content_threshold: float = 1.0
    distribution_constraints: DistributionConstraints = Field(
        default_factory=DistributionConstraints
    )

    def with_overrides(self, overrides: dict[str, Any] | None) -> MonitoringConfig:
        """This config with a feature's ``monitoringConfigOverrides`` applied (deep merge)."""
        if not overrides:
            return self
        merged = _deep_merge(self.model_dump(), overrides)
        return validate(MonitoringConfig, merged, "monitoringConfigOverrides")


class NumConstraints(_Model):
    is_non_negative: bool


class StringConstraints(_Model):
    domains: list[str]


class FeatureConstraints(_Model):
    name: str
    inferred_type: InferredType
    completeness: float = 1.0
    num_constraints: NumConstraints | None = None
    string_constraints: StringConstraints | None = None
    monitoring_config_overrides: dict[str, Any] | None = Field(
        default=None, alias="monitoringConfigOverrides"
    )


class Constraints(_Model):
    version: int | float = 0
    features: list[FeatureConstraints]
    monitoring_config: MonitoringConfig = Field(default_factory=MonitoringConfig)

    def feature(self, name: str) -> FeatureConstraints | None:
        return next((f for f in self.features if f.name == name), None)


# --- constraint_violations.json --------------------------------------------------------------


class CheckType(StrEnum):
    DATA_TYPE = "data_type_check"
    COMPLETENESS = "completeness_check"
    BASELINE_DRIFT = "baseline_drift_check"
    MISSING_COLUMN = "missing_column_check"
    EXTRA_COLUMN = "extra_column_check"
    CATEGORICAL_VALUES = "categorical_values_check"


class Violation(_Model):
    feature_name: str
    constraint_check_type: CheckType
    description: str


class ConstraintViolations(_Model):
    violations: list[Violation]


# --- reading and writing ---------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(model: type[M], data: Any, source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise MonitorError(
            f"{source} is not a valid {model.__name__}: {where}: {first['msg']}"
            + (f" (and {exc.error_count() - 1} more errors)" if exc.error_count() > 1 else "")
        ) from exc


def to_dict(model: BaseModel) -> dict[str, Any]:
    """The JSON object SageMaker writes: its keys only, none of pier's ``None`` fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump(model: BaseModel, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(to_dict(model), indent=2) + "\n")
    return target


def load(model: type[M], path: str | Path) -> M:
    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except FileNotFoundError as exc:
        raise MonitorError(f"{source}: no such file") from exc
    except ValueError as exc:
        raise MonitorError(f"{source} is not JSON: {exc}") from exc
    return validate(model, data, str(source))
