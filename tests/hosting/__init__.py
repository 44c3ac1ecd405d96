"""Tests of pier.hosting: the process backend and model-data resolution."""

from __future__ import annotations

from pathlib import Path

# {"a": 1, "b": 1} -> 3.0 for the model below (y = 1 + 2a, exactly)
PAYLOAD = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 1.0]]}}
EXPECTED = {"predictions": [3.0]}


def save_linear_model(path: Path) -> Path:
    """A tiny scikit-learn LinearRegression saved as an MLflow model (quick to load)."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]})
    model = LinearRegression().fit(X, [1.0, 3.0, 5.0])
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(X, model.predict(X)),
        input_example=X.head(1),
        serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],  # skips MLflow's requirement inference (seconds)
    )
    return path
