"""Baselines stored with MLflow model versions: where the training data is, where the files go.

``pier monitor baseline --model models:/diabetes/3`` profiles the version's training data and
stores ``statistics.json`` and ``constraints.json`` as artefacts of the run that logged the
version, under ``monitoring/baseline/``; the model-version tag ``pier.monitoring.baseline``
points at them (``runs:/<run_id>/monitoring/baseline``). A monitoring schedule whose
``BaselineConfig`` names ``models:/diabetes/3`` reads them back from there.

The training data, when none is given: the datasets logged as inputs of the version's run
(``mlflow.log_input``; the one with context ``training`` first), loaded from their source (a
CSV or Parquet file or directory, local or remote); else, with a warning, the model's input
example — a handful of rows, a poor baseline.

MLflow is imported inside the functions: it takes seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pier.monitor.errors import MonitorError
from pier.monitor.stats.profile import DatasetProfile

BASELINE_TAG = "pier.monitoring.baseline"
ARTIFACT_DIR = "monitoring/baseline"
BASELINE_FILES = ("statistics.json", "constraints.json")
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))/?$")
_TABULAR = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class TrainingData:
    """Where a baseline's rows come from, and what to tell the user about it."""

    data: Path | pd.DataFrame
    description: str
    warning: str | None = None


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def is_model_uri(uri: str) -> bool:
    return _MODEL_URI.match(uri) is not None


def model_version(uri: str, client: Any | None = None) -> ModelVersion:
    """``models:/name/3``, ``models:/name@alias`` or ``models:/name/latest`` as a version."""
    from mlflow.exceptions import MlflowException

    match = _MODEL_URI.match(uri)
    if match is None:
        raise MonitorError(f"{uri} is not a registered model URI (models:/name/version)")
    client = client or _client()
    name, alias, ref = match["name"], match["alias"], match["ref"]
    try:
        if alias is not None:
            found = client.get_model_version_by_alias(name, alias)
        elif ref.isdigit():
            found = client.get_model_version(name, ref)
        elif ref.lower() == "latest":
            versions = client.search_model_versions(
                f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
            )
            if not versions:
                raise MonitorError(f"{uri}: the registered model {name!r} has no version")
            found = versions[0]
        else:
            raise MonitorError(f"{uri}: name a version (models:/{name}/3) or an alias (@champion)")
    except MlflowException as exc:
        raise MonitorError(f"{uri}: {exc.message}") from None
    return ModelVersion(name, str(found.version), found.run_id or None)


def model_input_names(version: ModelVersion) -> list[str] | None:
    """The column names of the model's input signature (None: no signature, or tensors)."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        signature = get_model_info(version.uri).signature
    except (MlflowException, OSError):
        return None
    if signature is None or signature.inputs is None:
        return None
    names = signature.inputs.input_names()
    return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None


def _loadable(path: Path) -> bool:
    if path.is_dir():
        return any(p.suffix.lower() in _TABULAR for p in path.rglob("*") if p.is_file())
    return path.suffix.lower() in _TABULAR


def training_data(version: ModelVersion, scratch: Path, client: Any | None = None) -> TrainingData:
    """The rows to baseline ``version`` on (see the module's docstring for the order)."""
    import mlflow.data

    client = client or _client()
    tried: list[str] = []
    if version.run_id:
        inputs = list(client.get_run(version.run_id).inputs.dataset_inputs or [])

        def context(d: Any) -> str:
            return next((t.value for t in d.tags if t.key == "mlflow.data.context"), "")

        inputs.sort(key=lambda d: context(d) != "training")
        for i, dataset_input in enumerate(inputs):
            dataset = dataset_input.dataset
            label = f"dataset {dataset.name!r} ({dataset.source_type} source)"
            try:
                source = mlflow.data.get_source(dataset_input)
                target = scratch / f"dataset-{i}"
                target.mkdir(parents=True, exist_ok=True)  # the HTTP source does not make it
                local = Path(source.load(dst_path=str(target)))
            except Exception as exc:  # any source kind, any failure: try the next one
                tried.append(f"{label}: {exc}")
                continue
            if not _loadable(local):
                tried.append(f"{label}: {local.name} is not CSV or Parquet")
                continue
            return TrainingData(local, f"{label} logged with run {version.run_id}")
    example = _input_example(version, scratch)
    why = "; ".join(tried) if tried else "the version's run logged no dataset"
    if example is None:
        raise MonitorError(
            f"{version.uri}: no training data to baseline on ({why}) and no input example; "
            "give the data with --data train.csv"
        )
    return TrainingData(
        example,
        f"the input example of {version.uri}",
        f"baselining on the model's input example ({len(example)} rows) because {why}: "
        "give the training data with --data for a baseline worth checking against",
    )


def _input_example(version: ModelVersion, scratch: Path) -> pd.DataFrame | None:
    import mlflow.artifacts
    from mlflow.models import Model

    try:
        local = mlflow.artifacts.download_artifacts(version.uri, dst_path=str(scratch / "model"))
        example = Model.load(local).load_input_example(local)
    except Exception:  # no example, an unreadable one: the caller says so
        return None
    if example is None:
        return None
    frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)
    return frame if len(frame) else None


def keep_model_inputs(profile: DatasetProfile, inputs: list[str] | None) -> list[str]:
    """Drop the profile's columns that are not model inputs (a label, an ID); their names."""
    if not inputs:
        return []
    dropped = [name for name in profile.features if name not in set(inputs)]
    if len(dropped) == len(profile.features):
        return []  # nothing in common: the signature names something else; keep all
    for name in dropped:
        del profile.features[name]
    return dropped


def store_baseline(version: ModelVersion, directory: Path, client: Any | None = None) -> str:
    """Log the two files of ``directory`` with the version; the URI the tag now holds."""
    client = client or _client()
    run_id = version.run_id
    if run_id is None:  # registered from a path: a run of its own holds the baseline
        experiment = client.get_experiment_by_name("pier-monitoring-baselines")
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment("pier-monitoring-baselines")
        )
        run = client.create_run(
            experiment_id, run_name=f"baseline-{version.name}-{version.version}"
        )
        run_id = run.info.run_id
        client.set_terminated(run_id)
    for name in BASELINE_FILES:
        client.log_artifact(run_id, str(directory / name), ARTIFACT_DIR)
    uri = f"runs:/{run_id}/{ARTIFACT_DIR}"
    client.set_model_version_tag(version.name, version.version, BASELINE_TAG, uri)
    return uri


def fetch_baseline(uri: str, destination: Path) -> Path:
    """Download the baseline stored with ``uri``'s model version into ``destination``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    client = _client()
    version = model_version(uri, client)
    try:
        tags = client.get_model_version(version.name, version.version).tags or {}
    except MlflowException as exc:
        raise MonitorError(f"{uri}: {exc.message}") from None
    stored = tags.get(BASELINE_TAG)
    if not stored:
        raise MonitorError(
            f"{version.uri} has no baseline (no {BASELINE_TAG} tag); create one with "
            f"`pier monitor baseline --model {version.uri} --data train.csv`"
        )
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=stored, dst_path=str(destination))
    except (MlflowException, OSError) as exc:
        raise MonitorError(f"{version.uri}: cannot download its baseline {stored}: {exc}") from None
    return Path(local)


__all__ = [
    "ARTIFACT_DIR",
    "BASELINE_FILES",
    "BASELINE_TAG",
    "ModelVersion",
    "TrainingData",
    "fetch_baseline",
    "is_model_uri",
    "keep_model_inputs",
    "model_input_names",
    "model_version",
    "store_baseline",
    "training_data",
]
