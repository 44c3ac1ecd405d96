"""From a container definition to what `pier serve --model-uri` takes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pier.errors import ValidationException
from pier.hosting import model_data
from pier.hosting.image_map import ImageMap, is_mlflow_image

# models:/name@alias, models:/name/latest, models:/name/Production; models:/name/3 is pinned.
_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))$")


def model_resolver(
    cache_dir: Path, images: ImageMap | None = None
) -> Callable[[dict[str, Any]], str]:
    """ModelDataUrl, or ModelDataSource.S3DataSource.S3Uri, resolved (downloads cached;
    registry references pinned to a version); "" for a container without model data (its
    model lives in its image). The model data of an image that is not an MLflow server (bring
    your own container) need not be an MLflow model: it is unpacked as it is. Which image runs
    is decided through the platform's image map, as the backends decide it."""
    image_map = images or ImageMap()

    def resolve(container: dict[str, Any]) -> str:
        url = container.get("ModelDataUrl")
        if not url:
            source = container.get("ModelDataSource") or {}
            url = (source.get("S3DataSource") or {}).get("S3Uri")
        if not url:
            return ""
        mlflow_model = is_mlflow_image(image_map.resolve(container.get("Image")))
        return pin_version(model_data.resolve(url, cache_dir, mlflow_model=mlflow_model))

    return resolve


def pin_version(uri: str) -> str:
    """`models:/diabetes@champion` → `models:/diabetes/3`, asking the tracking server (the
    MLFLOW_TRACKING_URI of the platform). Every other URI comes back as it is."""
    match = _REGISTRY.match(uri)
    if match is None or (match["ref"] or "").isdigit():
        return uri
    from mlflow import MlflowClient  # only here: importing MLflow takes seconds
    from mlflow.exceptions import MlflowException

    name, alias, ref = match["name"], match["alias"], match["ref"]
    client = MlflowClient()
    try:
        if alias is not None:
            version = client.get_model_version_by_alias(name, alias).version
        elif ref.lower() == "latest":
            found = client.search_model_versions(
                f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
            )
            if not found:
                raise ValidationException(f"{uri}: the registered model {name!r} has no version")
            version = found[0].version
        else:  # a stage: the deprecated flow some registries still use
            found = client.get_latest_versions(name, stages=[ref])
            if not found:
                raise ValidationException(f"{uri}: no version of {name!r} is in stage {ref!r}")
            version = found[0].version
    except MlflowException as exc:
        raise ValidationException(f"{uri}: {exc.message}") from None
    return f"models:/{name}/{version}"
