"""From a container definition to what `pier serve --model-uri` takes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pier.hosting import model_data


def model_resolver(cache_dir: Path) -> Callable[[dict[str, Any]], str]:
    """ModelDataUrl, or ModelDataSource.S3DataSource.S3Uri, resolved (downloads cached)."""

    def resolve(container: dict[str, Any]) -> str:
        url = container.get("ModelDataUrl")
        if not url:
            url = container["ModelDataSource"]["S3DataSource"]["S3Uri"]
        return model_data.resolve(url, cache_dir)

    return resolve
