"""Which image runs where a Model names another: the platform's image map and MLflow's name.

Templates and scripts written for AWS name ECR images
(`123456789012.dkr.ecr.us-east-1.amazonaws.com/my-model:1`); there is no registry here, so the
platform's image map (PIER_IMAGE_MAP, `pier up --map-image URI=IMAGE`) says which local image
runs instead. A key matches exactly, or by repository when it has no tag (`repo` matches
`repo:1.2` and `repo@sha256:...`), as `pier apply --map-image` matches (pier.iac's mapping).

An image named like MLflow's SageMaker image (a name holding `mlflow-pyfunc`, or pier's own
`pier/mlflow-pyfunc`), or no image at all, means pier's own serving image for an MLflow model,
whatever registry it names; an explicit entry of the map wins over that rule.
"""

from __future__ import annotations

from collections.abc import Mapping

PIER_IMAGE = "pier/mlflow-pyfunc"


def is_mlflow_image(image: str | None) -> bool:
    """Whether `image` means "pier serves this MLflow model" (no image, or MLflow's name)."""
    return not image or image == PIER_IMAGE or "mlflow-pyfunc" in image


def repository(image: str) -> str:
    """The image without its `:tag` or `@digest`."""
    image = image.split("@", 1)[0]
    slash, colon = image.rfind("/"), image.rfind(":")
    return image[:colon] if colon > slash else image


class ImageMap:
    """URI → local image, matched exactly or by repository (a key without a tag)."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self.entries = dict(entries or {})

    def __bool__(self) -> bool:
        return bool(self.entries)

    def lookup(self, image: str) -> str | None:
        """The mapped image, None when no entry matches."""
        if image in self.entries:
            return self.entries[image]
        repo = repository(image)
        for key, value in self.entries.items():
            if repository(key) == key and key == repo:
                return value
        return None

    def resolve(self, image: str | None) -> str | None:
        """What runs for `image`: the mapped image, else `image` itself (None stays None)."""
        if not image:
            return image
        return self.lookup(image) or image
