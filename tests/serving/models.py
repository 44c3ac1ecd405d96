"""Small MLflow models for the model-server tests, saved into a directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow.pyfunc
import pandas as pd
from mlflow.models import infer_signature

# Pickle these classes by value: the server process cannot import the tests package.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Scaler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Row-wise: x * multiplier + n; raises for x < -100 (a model error a request can cause)."""

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        multiplier = (params or {}).get("multiplier", 1.0)
        if (model_input["x"] < -100).any():
            raise ValueError("x below -100: boom")
        return (model_input["x"] * multiplier + model_input["n"]).to_numpy()


def save_scaler(path: Path) -> Path:
    example = pd.DataFrame({"x": [1.5, 2.0], "n": [1, 2]})
    signature = infer_signature(example, [1.0, 2.0], params={"multiplier": 1.0})
    mlflow.pyfunc.save_model(
        str(path), python_model=Scaler(), signature=signature, input_example=example
    )
    return path


class Sleeper(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Sleeps max(seconds) then returns the row count per row: for drain and timeout tests."""

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        import time

        time.sleep(float(model_input["seconds"].max()))
        return [len(model_input)] * len(model_input)


def save_sleeper(path: Path) -> Path:
    example = pd.DataFrame({"seconds": [0.0]})
    signature = infer_signature(example, [1])
    mlflow.pyfunc.save_model(
        str(path), python_model=Sleeper(), signature=signature, input_example=example
    )
    return path


def save_nan_tolerant(path: Path) -> Path:
    """A sklearn model on two double columns that also accepts NaN (so it never raises)."""
    import mlflow.sklearn
    from sklearn.ensemble import HistGradientBoostingRegressor

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 5, "b": [1.0, 0.0, 1.0, 0.0] * 5})
    model = HistGradientBoostingRegressor(max_iter=5, min_samples_leaf=2).fit(X, list(range(20)))
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        input_example=X.head(1),
        serialization_format="cloudpickle",
    )
    return path
