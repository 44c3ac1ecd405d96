"""The model `pier build` puts into an image: fetched from any MLflow model URI, and described
by image labels.

- A local directory (or `file://` URI) is used where it is; `models:/`, `runs:/` and every other
  URI MLflow understands are downloaded with MLflow's artifact API (the tracking and registry
  servers come from MLflow's own settings, MLFLOW_TRACKING_URI and friends).
- The labels (LABEL_PREFIX + model.uri, model.version, model.run-id, model.signature, and
  model.flavors) come from the MLmodel file; the registry version from the URI: `models:/n/3`
  names it, `models:/n@alias` is asked of the registry. A label is left out when the model does
  not say (no run, no signature, not from the registry).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pier.errors import ValidationException
from pier.hosting import model_local

LABEL_PREFIX = "org.pier."
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))?/?$")


@dataclass(frozen=True)
class FetchedModel:
    """A model directory (holding MLmodel), the URI it came from and its registry version."""

    path: Path
    uri: str
    version: str | None


def fetch(uri: str, dest: Path) -> FetchedModel:
    """The model at `uri` as a local directory: a local one as it is, any other downloaded
    under `dest` (pier.hosting.model_local, which the model environments use too).
    ValidationException when the URI cannot be read or holds no MLmodel."""
    path = model_local.local_model_dir(uri, dest).resolve()
    if not (path / "MLmodel").is_file():
        raise ValidationException(
            f"{uri} is not an MLflow model: {path} has no MLmodel file (log or save the model "
            "with mlflow.<flavor>.log_model / save_model, and pass its directory or URI)."
        )
    return FetchedModel(path, uri, _registry_version(uri))


def labels(model: FetchedModel) -> dict[str, str]:
    """Image labels naming the model (see the module docstring)."""
    mlmodel = _mlmodel(model.path)
    out = {f"{LABEL_PREFIX}model.uri": model.uri}
    if model.version is not None:
        out[f"{LABEL_PREFIX}model.version"] = model.version
    run_id = mlmodel.get("run_id")
    if run_id:
        out[f"{LABEL_PREFIX}model.run-id"] = str(run_id)
    signature = mlmodel.get("signature")
    if isinstance(signature, dict):
        out[f"{LABEL_PREFIX}model.signature"] = json.dumps(
            {k: _json(signature[k]) for k in ("inputs", "outputs", "params") if signature.get(k)},
            separators=(",", ":"),
        )
    flavors = mlmodel.get("flavors")
    if isinstance(flavors, dict):
        out[f"{LABEL_PREFIX}model.flavors"] = ",".join(sorted(flavors))
    return out


def _json(value: Any) -> Any:
    """MLmodel stores a signature's parts as JSON strings: as values, for one JSON label."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _registry_version(uri: str) -> str | None:
    match = _MODELS_URI.match(uri)
    if match is None:
        return None
    if match.group("version"):
        return match.group("version")
    if match.group("alias"):
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            found = MlflowClient().get_model_version_by_alias(
                match.group("name"), match.group("alias")
            )
        except MlflowException as exc:
            raise ValidationException(f"{uri}: {_first_line(exc.message)}") from None
        return str(found.version)
    return None


def _mlmodel(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((path / "MLmodel").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValidationException(f"Cannot read {path / 'MLmodel'}: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationException(f"{path / 'MLmodel'}: expected a mapping at the top.")
    return data


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "unknown error"
