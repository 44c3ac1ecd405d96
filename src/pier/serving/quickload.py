"""Load plain scikit-learn MLflow models without importing MLflow, for a fast cold start.

Importing MLflow takes over a second; unpickling a scikit-learn model needs only scikit-learn.
For the common case — a local model directory whose pyfunc flavor is ``mlflow.sklearn`` saved
with pickle or cloudpickle, with a signature of named scalar columns, no params, no extra code —
this module does what ``mlflow.pyfunc.load_model`` + ``_SklearnModelWrapper.predict`` do: read
MLmodel, unpickle the estimator, call its predict function. Everything else returns None and
MLflow loads the model. MLflow itself is still loaded, in the background, for the plain path.
MLflow's own guard is honoured: no unpickling when MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pier.serving.schema import FastSchema

log = logging.getLogger("pier.serving")

_PREDICT_FNS = {"predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba"}


@dataclass(frozen=True)
class QuickModel:
    predict: Callable[[Any], Any]
    fast_schema: FastSchema
    serving_example: bytes | None


def local_model_dir(model_uri: str) -> Path | None:
    """The directory of a local model URI (a path or file://), None for remote URIs."""
    if model_uri.startswith("file://"):
        return Path(unquote(urlparse(model_uri).path))
    if "://" in model_uri or model_uri.startswith(("models:", "runs:")):
        return None
    return Path(model_uri)


def try_quick_load(model_uri: str, allow_pickle: bool) -> QuickModel | None:
    """The model, loaded without MLflow, or None when MLflow must load it."""
    root = local_model_dir(model_uri)
    if root is None or not allow_pickle or not (root / "MLmodel").is_file():
        return None
    import yaml

    try:
        meta = yaml.safe_load((root / "MLmodel").read_text())
    except (OSError, yaml.YAMLError):
        return None  # MLflow will report the problem in its own words
    if not isinstance(meta, dict):
        return None
    flavors = meta.get("flavors") or {}
    pyfunc, sk = flavors.get("python_function") or {}, flavors.get("sklearn") or {}
    signature = meta.get("signature") or {}
    if (
        pyfunc.get("loader_module") != "mlflow.sklearn"
        or pyfunc.get("predict_fn", "predict") not in _PREDICT_FNS
        or pyfunc.get("code")
        or sk.get("code")
        or sk.get("serialization_format") not in ("pickle", "cloudpickle")
        or signature.get("params")
        or meta.get("is_signature_from_type_hint")
        or meta.get("type_hint_from_example")
        or not isinstance(signature.get("inputs"), str)
        or not isinstance(pyfunc.get("model_path"), str)
    ):
        return None
    try:
        fast_schema = FastSchema.from_signature(json.loads(signature["inputs"]))
    except ValueError:
        return None
    if fast_schema is None:
        return None
    model_file = root / pyfunc["model_path"]
    with model_file.open("rb") as f:
        if sk["serialization_format"] == "cloudpickle":
            import cloudpickle

            estimator = cloudpickle.load(f)
        else:
            estimator = pickle.load(f)  # noqa: S301  # same trust decision as MLflow's loader
    predict = getattr(estimator, pyfunc.get("predict_fn", "predict"), None)
    if not callable(predict):
        return None
    example = None
    example_info = meta.get("saved_input_example_info") or {}
    serving_path = example_info.get("serving_input_path")
    if isinstance(serving_path, str) and (root / serving_path).is_file():
        example = (root / serving_path).read_bytes()
    log.info("loaded %s with the quick scikit-learn loader (MLflow loads in the background)", root)
    return QuickModel(predict, fast_schema, example)
