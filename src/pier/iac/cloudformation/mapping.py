"""Where real templates' images and model data live, and where pier finds them instead.

Templates written for AWS name ECR images (`763104351884.dkr.ecr.us-east-1.amazonaws.com/...`)
and `s3://` model data. `--map-image URI=IMAGE`, `--map-model S3URI=MODEL_URI` and a mapping
file (`images: {URI: IMAGE}`, `models: {S3URI: MODEL_URI}`) say what pier runs instead:

- an image matches exactly, or by repository when the key has no tag (`repo` matches
  `repo:1.2` and `repo@sha256:...`);
- model data matches exactly, or by the longest key that is a prefix ending at a `/`
  (`s3://bucket/models` maps `s3://bucket/models/v1/model.tar.gz` to `TARGET/v1/model.tar.gz`).

A relative local path is made absolute (against the working directory for options, the mapping
file's directory for the file): the platform runs elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pier.iac.cloudformation.template import TemplateError
from pier.iac.source import Located, read, where

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")


def local_target(value: str, base: Path) -> str:
    """`value` unless it is a relative path: then absolute against `base`."""
    if _SCHEME.match(value) or value.startswith("/"):
        return value
    return str((base / value).resolve())


def _repository(image: str) -> str:
    """The image without its `:tag` or `@digest`."""
    image = image.split("@", 1)[0]
    slash, colon = image.rfind("/"), image.rfind(":")
    return image[:colon] if colon > slash else image


@dataclass(frozen=True)
class LocationMap:
    images: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    def merged(self, other: LocationMap) -> LocationMap:
        """`other`'s entries win (options over the mapping file)."""
        return LocationMap({**self.images, **other.images}, {**self.models, **other.models})

    def image(self, uri: str) -> str | None:
        if uri in self.images:
            return self.images[uri]
        repository = _repository(uri)
        for key, value in self.images.items():
            if _repository(key) == key and key == repository:
                return value
        return None

    def model(self, uri: str) -> str | None:
        if uri in self.models:
            return self.models[uri]
        best: tuple[str, str] | None = None
        for key, value in self.models.items():
            prefix = key.rstrip("/")
            if uri.startswith(prefix + "/") and (best is None or len(prefix) > len(best[0])):
                best = (prefix, value)
        if best is None:
            return None
        return best[1].rstrip("/") + uri[len(best[0]) :]

    def apply(self, model_request: dict[str, Any]) -> list[str]:
        """Replace images and model locations in a CreateModel request (in place); notes on
        what stays unmapped."""
        notes: list[str] = []
        containers = list(model_request.get("Containers") or [])
        if isinstance(model_request.get("PrimaryContainer"), dict):
            containers.append(model_request["PrimaryContainer"])
        for container in containers:
            if not isinstance(container, dict):
                continue
            image = container.get("Image")
            if isinstance(image, str):
                mapped = self.image(image)
                if mapped is not None:
                    container["Image"] = mapped
                elif ECR_HOST.match(image):
                    notes.append(
                        f"image {image} is not mapped (--map-image {image}=pier/mlflow-pyfunc "
                        "runs the model with pier's MLflow server)"
                    )
            url = container.get("ModelDataUrl")
            if isinstance(url, str):
                container["ModelDataUrl"] = self._model(url, notes)
            source = container.get("ModelDataSource")
            s3 = source.get("S3DataSource") if isinstance(source, dict) else None
            if isinstance(s3, dict) and isinstance(s3.get("S3Uri"), str):
                s3["S3Uri"] = self._model(s3["S3Uri"], notes)
        return notes

    def _model(self, uri: str, notes: list[str]) -> str:
        mapped = self.model(uri)
        if mapped is not None:
            return mapped
        if uri.startswith("s3://"):
            notes.append(
                f"model data {uri} is not mapped (--map-model): the platform downloads it "
                "from S3 with its AWS credentials"
            )
        return uri


def parse_pairs(values: Iterable[str], option: str, base: Path, local: bool) -> dict[str, str]:
    """`KEY=VALUE` option values; with `local`, relative VALUEs become absolute paths."""
    out: dict[str, str] = {}
    for value in values:
        key, eq, target = value.partition("=")
        if not eq or not key or not target:
            what = "URI=IMAGE" if option == "--map-image" else "S3URI=MODEL_URI"
            raise TemplateError(f"{option} {value!r}: expected {what}")
        out[key] = local_target(target, base) if local else target
    return out


def read_mapping(path: Path) -> LocationMap:
    """A mapping file: `images:` and `models:`, each a mapping of strings."""
    doc = read(path)
    file = str(path)
    if not isinstance(doc, Located):
        raise TemplateError(f"{file}: a mapping file holds `images:` and `models:` mappings")
    for key in doc:
        if key not in ("images", "models"):
            raise TemplateError(
                f"{where(doc, key)}: {key}: unknown section (a mapping file has images, models)"
            )
    sections: dict[str, dict[str, str]] = {}
    for name in ("images", "models"):
        section = doc.get(name) or Located()
        if not isinstance(section, Located):
            raise TemplateError(f"{where(doc, name)}: {name}: must map URIs to URIs")
        for key, value in section.items():
            if not isinstance(value, str) or not value:
                raise TemplateError(f"{where(section, key)}: {name}.{key}: must be a string")
        base = path.parent.resolve()
        sections[name] = {
            key: local_target(value, base) if name == "models" else value
            for key, value in section.items()
        }
    return LocationMap(sections["images"], sections["models"])
