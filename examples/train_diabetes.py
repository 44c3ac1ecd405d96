"""Train the diabetes example model and save it as an MLflow model directory.

    python examples/train_diabetes.py OUT_DIR

The model is the one docs/benchmarks.md measures: RandomForestRegressor(n_estimators=50,
max_depth=6, random_state=0) on sklearn's bundled diabetes data, saved with a signature and an
input example.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor


def train(out_dir: Path) -> Path:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=50, max_depth=6, random_state=0, n_jobs=1)
    model.fit(X, y)
    signature = infer_signature(X, model.predict(X))
    mlflow.sklearn.save_model(
        model,
        str(out_dir),
        signature=signature,
        input_example=X.head(2),
        serialization_format="cloudpickle",
    )
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/train_diabetes.py OUT_DIR")
    path = train(Path(sys.argv[1]))
    print(f"saved model to {path}")
