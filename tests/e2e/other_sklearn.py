"""A model logged with a scikit-learn other than pier's: trained in its own venv, built with uv.

The training venv (Python of this interpreter, scikit-learn OTHER_SKLEARN, this MLflow) is
cached under the system's temporary directory by what it installs, so later sessions reuse it;
uv's own cache makes the first build quick too. The model is saved with MLflow's defaults
(MLflow infers its requirements), as a user's training job would.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from uv import find_uv_bin

OTHER_SKLEARN = "1.6.1"  # pier's venv has 1.9.x
MLFLOW = metadata.version("mlflow")
TRAINING_REQUIREMENTS = (f"scikit-learn=={OTHER_SKLEARN}", f"mlflow=={MLFLOW}")
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")

TRAIN = """
import sys
import mlflow.sklearn
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor

X, y = load_diabetes(return_X_y=True, as_frame=True)
model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
mlflow.sklearn.save_model(
    model, sys.argv[1], input_example=X.head(3), serialization_format="cloudpickle"
)
"""


def training_python() -> Path:
    """The interpreter of the training venv (built once per machine, atomically)."""
    key = hashlib.sha256("\n".join((sys.version, *TRAINING_REQUIREMENTS)).encode()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir()) / "pier-test-training" / key
    python = venv / "bin" / "python"
    if (venv / "ready").is_file():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=venv.parent))
    uv = str(find_uv_bin())
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run(
        [uv, "venv", "-q", "--relocatable", "--allow-existing", "--python", base, str(tmp)],
        check=True,
        env=env,
    )
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(tmp / "bin" / "python"),
            *TRAINING_REQUIREMENTS,
        ],
        check=True,
        env=env,
    )
    (tmp / "ready").write_text("ok\n")
    try:
        os.rename(tmp, venv)
    except OSError:  # another session won the race: use its venv
        shutil.rmtree(tmp, ignore_errors=True)
    return python


def trained_model() -> Path:
    """The diabetes random forest trained with scikit-learn OTHER_SKLEARN, saved by MLflow;
    cached beside the training venv (treat it as read-only: copy it to change it)."""
    python = training_python()
    venv = python.parent.parent
    model_dir = venv.with_name(venv.name + "-model")
    if (model_dir / "MLmodel").is_file():
        return model_dir
    tmp = Path(tempfile.mkdtemp(prefix=".train-", dir=model_dir.parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    subprocess.run([str(python), "-c", TRAIN, str(tmp / "model")], check=True, env=env, cwd=tmp)
    with contextlib.suppress(OSError):  # another session won the race: keep its model
        os.rename(tmp / "model", model_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    return model_dir
