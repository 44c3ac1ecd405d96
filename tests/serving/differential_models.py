"""MLflow models for the differential test (pier vs `mlflow models serve`), saved into a directory.

Each builder saves one model directory and returns its path. The custom pyfunc classes are
pickled by value, so the servers load them without importing this module (they run with their
own working directory and sys.path).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

cloudpickle.register_pickle_by_value(sys.modules[__name__])

# Given, so that saving skips MLflow's slow requirement inference (a model load per save).
PIP_REQUIREMENTS = ["mlflow", "scikit-learn", "pandas"]

DIABETES_COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def diabetes_frame() -> pd.DataFrame:
    X, _ = load_diabetes(return_X_y=True, as_frame=True)
    return X


def save_diabetes(path: Path) -> Path:
    """examples/train_diabetes.py's model: a RandomForestRegressor over 10 double columns."""
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=50, max_depth=6, random_state=0, n_jobs=1)
    model.fit(X, y)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        input_example=X.head(2),
        serialization_format="cloudpickle",
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


# -------------------------------------------------------------------------- string classifier

COLORS = ["red", "green", "blue", "grün"]


def classifier_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "color": [COLORS[i % len(COLORS)] for i in range(n)],
            "size": rng.normal(10.0, 3.0, n).round(3),
            "weight": rng.normal(50.0, 10.0, n).round(3),
        }
    )


def save_classifier(path: Path) -> Path:
    """OneHotEncoder on a string column + scaled numeric columns -> LogisticRegression -> str."""
    X = classifier_frame()
    y = np.where((X["color"].isin(["red", "grün"])) ^ (X["size"] > 10.0), "yes", "no").astype(
        object
    )
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                        ("num", StandardScaler(), ["size", "weight"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    pipe.fit(X, y)
    mlflow.sklearn.save_model(
        pipe,
        str(path),
        signature=infer_signature(X, pipe.predict(X)),
        input_example=X.head(2),
        serialization_format="cloudpickle",
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


# --------------------------------------------------------------------------- params pyfunc


class ParamsModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A DataFrame out: y = x * multiplier, and the `label` param repeated per row."""

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        multiplier = float(params.get("multiplier", 1.0))
        label = str(params.get("label", "x"))
        return pd.DataFrame(
            {"y": model_input["x"].to_numpy() * multiplier, "label": [label] * len(model_input)}
        )


def save_params_model(path: Path) -> Path:
    example = pd.DataFrame({"x": [1.5, 2.0]})
    output = pd.DataFrame({"y": [1.5, 2.0], "label": ["x", "x"]})
    signature = infer_signature(example, output, params={"multiplier": 1.0, "label": "x"})
    mlflow.pyfunc.save_model(
        str(path),
        python_model=ParamsModel(),
        signature=signature,
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


# ---------------------------------------------------------------------------- raising pyfunc


class BoomModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """x + 1, but predict raises ValueError("boom") when any x is negative."""

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        if (model_input["x"] < 0).any():
            raise ValueError("boom")
        return (model_input["x"] + 1.0).to_numpy()


def save_boom_model(path: Path) -> Path:
    example = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(
        str(path),
        python_model=BoomModel(),
        signature=infer_signature(example, np.array([2.0, 3.0])),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


# ----------------------------------------------------------------------- long + boolean pyfunc


class TypedModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Echoes what it was handed, with the dtypes: shows how each server cast the columns."""

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "n2": model_input["n"] * 2,
                "not_flag": ~model_input["flag"].astype(bool),
                "x": model_input["x"],
                "s": model_input["s"].astype(object),
                "dtypes": ",".join(str(t) for t in model_input.dtypes),
            }
        )


def typed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": np.array([1, 2], dtype=np.int64),
            "flag": np.array([True, False]),
            "x": np.array([0.5, 1.5]),
            "s": np.array(["a", "ß"], dtype=object),
        }
    )


def save_typed_model(path: Path) -> Path:
    """A long, a boolean, a double and a string column."""
    example = typed_frame()
    output = TypedModel().predict(None, example)
    mlflow.pyfunc.save_model(
        str(path),
        python_model=TypedModel(),
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


# ------------------------------------------------------------------------ string-only pyfunc


class TextModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """The length of each text and review: a signature of strings only."""

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.Series:
        return model_input["text"].str.len() + model_input["review"].str.len()


def text_frame() -> pd.DataFrame:
    return pd.DataFrame({"text": ["good", "bad"], "review": ["yes", "no"]})


def save_text_model(path: Path) -> Path:
    """Two string columns, `text` and `review`: a CSV header and a data row look alike."""
    example = text_frame()
    mlflow.pyfunc.save_model(
        str(path),
        python_model=TextModel(),
        signature=infer_signature(example, TextModel().predict(None, example)),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "diabetes": save_diabetes,
    "classifier": save_classifier,
    "params": save_params_model,
    "boom": save_boom_model,
    "typed": save_typed_model,
    "text": save_text_model,
}


def build_all(root: Path) -> dict[str, Path]:
    """Every model of BUILDERS saved under ``root``; name -> model directory."""
    return {name: build(root / name) for name, build in BUILDERS.items()}
