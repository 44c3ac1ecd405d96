"""Where real templates' images and model data live, and where pier finds them instead.

Templates written for AWS name ECR images (`763104351884.dkr.ecr.us-east-1.amazonaws.com/...`)
and `s3://` model data. `--map-image URI=IMAGE`, `--map-model S3URI=MODEL_URI` and a mapping
file (`images: {URI: IMAGE}`, `models: {S3URI: MODEL_URI}`) say what pier runs instead:

- an image matches exactly, or by repository when the key has no tag (`repo` matches
  `repo:1.2` and `repo@sha256:...`);
- model data matches exactly, or by the longest key that is a prefix ending at a `/`
  (`s3://bucket/models` maps `s3://bucket/models/v1/model.tar.gz` to `TARGET/v1/model.tar.gz`).
- S3 destinations an endpoint configuration writes to (data capture, async outputs) match the
  same way by `--map-s3 s3://BUCKET[/PREFIX]=file:///DIR` (or `s3://` of a reachable store) and
  a mapping file's `s3:`; a plain path is read as the local directory `file:///abs/path`.

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
class Problem:
    """Why pier cannot run a Model as the template and the mappings give it: `keys` lead
    to the property in the CreateModel request."""

    keys: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class LocationMap:
    images: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    s3: dict[str, str] = field(default_factory=dict)  # S3 destinations → file:// or s3://
    used: set[str] = field(default_factory=set, compare=False)  # keys that matched

    def merged(self, other: LocationMap) -> LocationMap:
        """`other`'s entries win (options over the mapping file)."""
        return LocationMap(
            {**self.images, **other.images},
            {**self.models, **other.models},
            {**self.s3, **other.s3},
        )

    def destination(self, uri: str) -> str | None:
        """Where pier writes what the template sends to S3 location `uri`, if mapped."""
        if uri in self.s3:
            self.used.add(f"s3:{uri}")
            return self.s3[uri]
        best: tuple[str, str] | None = None
        for key in self.s3:
            prefix = key.rstrip("/")
            if uri.startswith(prefix + "/") and (best is None or len(prefix) > len(best[1])):
                best = (key, prefix)
        if best is None:
            return None
        self.used.add(f"s3:{best[0]}")
        return self.s3[best[0]].rstrip("/") + uri[len(best[1]) :]

    def apply_destinations(self, config_request: dict[str, Any]) -> list[str]:
        """Map the S3 destinations of a CreateEndpointConfig request (in place); notes on
        those left unmapped."""
        notes: list[str] = []
        capture = config_request.get("DataCaptureConfig")
        if isinstance(capture, dict) and isinstance(capture.get("DestinationS3Uri"), str):
            capture["DestinationS3Uri"] = self._destination(
                capture["DestinationS3Uri"], "data capture", notes
            )
        asynchronous = config_request.get("AsyncInferenceConfig")
        output = asynchronous.get("OutputConfig") if isinstance(asynchronous, dict) else None
        for key in ("S3OutputPath", "S3FailurePath"):
            if isinstance(output, dict) and isinstance(output.get(key), str):
                output[key] = self._destination(output[key], f"async {key}", notes)
        return notes

    def _destination(self, uri: str, what: str, notes: list[str]) -> str:
        mapped = self.destination(uri)
        if mapped is not None:
            return mapped
        if uri.startswith("s3://"):
            bucket = uri.removeprefix("s3://").split("/", 1)[0]
            notes.append(
                f"{what} to {uri} is not mapped (--map-s3 s3://{bucket}=file:///DIR writes "
                "it locally): the platform writes to S3 with its AWS credentials"
            )
        return uri

    def image(self, uri: str) -> str | None:
        if uri in self.images:
            self.used.add(f"images:{uri}")
            return self.images[uri]
        repository = _repository(uri)
        for key, value in self.images.items():
            if _repository(key) == key and key == repository:
                self.used.add(f"images:{key}")
                return value
        return None

    def model(self, uri: str) -> str | None:
        found = self._model_key(uri)
        if found is None:
            return None
        key, prefix = found
        self.used.add(f"models:{key}")
        value = self.models[key]
        return value if prefix is None else value.rstrip("/") + uri[len(prefix) :]

    def _model_key(self, uri: str) -> tuple[str, str | None] | None:
        """The key matching `uri` and, for a prefix match, the prefix."""
        if uri in self.models:
            return uri, None
        best: tuple[str, str] | None = None
        for key in self.models:
            prefix = key.rstrip("/")
            if uri.startswith(prefix + "/") and (best is None or len(prefix) > len(best[1])):
                best = (key, prefix)
        return best

    def unused(self) -> list[str]:
        """Notes on the mappings that matched nothing in the template."""
        notes = []
        for section, option, entries in (
            ("images", "--map-image", self.images),
            ("models", "--map-model", self.models),
            ("s3", "--map-s3", self.s3),
        ):
            for key in entries:
                if f"{section}:{key}" not in self.used:
                    what = {
                        "images": "image",
                        "models": "model data or model package",
                        "s3": "S3 destination (data capture, async outputs)",
                    }[section]
                    notes.append(
                        f"warning: {option} {key}=... matches no {what} of the template "
                        "(nothing is mapped by it)"
                    )
        return notes

    def apply(self, model_request: dict[str, Any]) -> tuple[list[str], list[Problem]]:
        """Replace images and model locations in a CreateModel request (in place): notes on
        what stays unmapped, and what pier cannot run (apply would fail on it)."""
        notes: list[str] = []
        problems: list[Problem] = []
        containers: list[tuple[tuple[str | int, ...], Any]] = [
            (("Containers", i), c) for i, c in enumerate(model_request.get("Containers") or [])
        ]
        if isinstance(model_request.get("PrimaryContainer"), dict):
            containers.append((("PrimaryContainer",), model_request["PrimaryContainer"]))
        for keys, container in containers:
            if not isinstance(container, dict):
                continue
            package = container.get("ModelPackageName")
            if isinstance(package, str):
                self._package(container, package, keys, problems)
            image = container.get("Image")
            if isinstance(image, str):
                mapped = self.image(image)
                if mapped is not None:
                    container["Image"] = mapped
                elif ECR_HOST.match(image) and not _has_model(container):
                    problems.append(
                        Problem(
                            (*keys, "Image"),
                            f"pier cannot run this model: it lives inside the image {image} "
                            "(the container has no ModelDataUrl) and pier pulls nothing from "
                            f"a registry. Map the image to a local one: --map-image "
                            f"{_repository(image)}=IMAGE (built with `docker build -t IMAGE` "
                            "or `pier build MODEL_URI -t IMAGE`; `--map-image URI=URI` if "
                            "`pier up --map-image` maps it already)",
                        )
                    )
                elif ECR_HOST.match(image):
                    notes.append(
                        f"image {image} is not mapped (--map-image {image}=pier/mlflow-pyfunc "
                        "runs the model with pier's MLflow server)"
                    )
            url = container.get("ModelDataUrl")
            if isinstance(url, str):
                container["ModelDataUrl"] = self._model(
                    url, (*keys, "ModelDataUrl"), notes, problems
                )
            source = container.get("ModelDataSource")
            s3 = source.get("S3DataSource") if isinstance(source, dict) else None
            if isinstance(s3, dict) and isinstance(s3.get("S3Uri"), str):
                where_ = (*keys, "ModelDataSource", "S3DataSource", "S3Uri")
                s3["S3Uri"] = self._model(s3["S3Uri"], where_, notes, problems)
        return notes, problems

    def _package(
        self,
        container: dict[str, Any],
        package: str,
        keys: tuple[str | int, ...],
        problems: list[Problem],
    ) -> None:
        """A model package of SageMaker's registry: mapped exactly to a model, or refused."""
        if package in self.models:
            self.used.add(f"models:{package}")
            del container["ModelPackageName"]
            container["ModelDataUrl"] = self.models[package]
            return
        problems.append(
            Problem(
                (*keys, "ModelPackageName"),
                f"pier cannot run this model: the model package {package} lives in "
                "SageMaker's model registry, which pier cannot read. Map it to a model: "
                f"--map-model {package}=models:/NAME/VERSION (or a path, runs:/..., an "
                "s3:// model.tar.gz)",
            )
        )

    def _model(
        self, uri: str, keys: tuple[str | int, ...], notes: list[str], problems: list[Problem]
    ) -> str:
        found = self._model_key(uri)
        if found is None:
            if uri.startswith("s3://"):
                notes.append(
                    f"model data {uri} is not mapped (--map-model): the platform downloads it "
                    "from S3 with its AWS credentials"
                )
            return uri
        key, prefix = found
        mapped = self.model(uri)
        assert mapped is not None
        target = self.models[key]
        if prefix is not None and target.startswith(("models:/", "runs:/")):
            problems.append(
                Problem(
                    keys,
                    f"--map-model {key}={target} maps by prefix, which gives {mapped}: not a "
                    f"model URI. Map the exact location: --map-model {uri}={target}/VERSION "
                    "(a registered model needs its version or @alias)",
                )
            )
        missing = _missing_local(mapped)
        if missing is not None:
            problems.append(
                Problem(
                    keys,
                    f"--map-model {key}={target}: {missing} does not exist (the model data "
                    f"{uri} maps to it)",
                )
            )
        return mapped


def _has_model(container: dict[str, Any]) -> bool:
    return bool(container.get("ModelDataUrl") or container.get("ModelDataSource"))


def _missing_local(target: str) -> str | None:
    """The local path `target` names, if it names one that does not exist."""
    if target.startswith("file://"):
        path = Path(target.removeprefix("file://"))
    elif target.startswith("/"):
        path = Path(target)
    else:
        return None
    return None if path.exists() else str(path)


def parse_pairs(values: Iterable[str], option: str, base: Path, local: bool) -> dict[str, str]:
    """`KEY=VALUE` option values; with `local`, relative VALUEs become absolute paths."""
    out: dict[str, str] = {}
    for value in values:
        key, eq, target = value.partition("=")
        if not eq or not key or not target:
            what = {"--map-image": "URI=IMAGE", "--map-s3": "S3URI=file:///DIR"}.get(
                option, "S3URI=MODEL_URI"
            )
            raise TemplateError(f"{option} {value!r}: expected {what}")
        out[key] = local_target(target, base) if local else target
        if option == "--map-s3":
            out[key] = _destination(key, target, base, option)
    return out


def _destination(key: str, target: str, base: Path, what: str) -> str:
    """An S3 destination's target: `s3://` or `file://` as given, a path as `file:///abs`."""
    if not key.startswith("s3://"):
        raise TemplateError(f"{what} {key}=...: the key is an S3 location (s3://BUCKET/PREFIX)")
    if target.startswith(("s3://", "file://")):
        return target
    if _SCHEME.match(target):
        raise TemplateError(
            f"{what} {key}={target}: the target is a directory (file:///DIR or a path) or s3://"
        )
    return Path(local_target(target, base)).as_uri()


def read_mapping(path: Path) -> LocationMap:
    """A mapping file: `images:`, `models:` and `s3:`, each a mapping of strings."""
    doc = read(path)
    file = str(path)
    if not isinstance(doc, Located):
        raise TemplateError(f"{file}: a mapping file holds `images:` and `models:` mappings")
    for key in doc:
        if key not in ("images", "models", "s3"):
            raise TemplateError(
                f"{where(doc, key)}: {key}: unknown section (a mapping file has images, models, s3)"
            )
    sections: dict[str, dict[str, str]] = {}
    for name in ("images", "models", "s3"):
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
        if name == "s3":
            sections[name] = {
                key: _destination(key, value, base, f"{file}: s3:")
                for key, value in section.items()
            }
    return LocationMap(sections["images"], sections["models"], sections["s3"])
