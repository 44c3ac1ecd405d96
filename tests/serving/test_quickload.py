"""The quick scikit-learn loader gives the same answers as MLflow's loader (differential)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pier.contract.content_types import MediaType
from pier.errors import ModelLoadError
from pier.serving.codecs import decode_json_fast
from pier.serving.mlflow_runtime import MlflowRuntime
from pier.serving.quickload import local_model_dir, try_quick_load
from tests.serving.models import save_nan_tolerant, save_scaler


@pytest.fixture(scope="module")
def sk_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_nan_tolerant(tmp_path_factory.mktemp("m") / "model")


def test_quick_and_full_loaders_predict_the_same(sk_model: Path) -> None:
    quick = MlflowRuntime.load(str(sk_model))
    full = MlflowRuntime(str(sk_model))
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 2)).round(6).tolist()
    bodies = [
        json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}}),
        json.dumps({"dataframe_records": [{"b": b, "a": a} for a, b in rows]}),
    ]
    for body in bodies:
        q = decode_json_fast(body.encode(), quick.fast_schema)
        f = decode_json_fast(body.encode(), full.fast_schema)
        assert q is not None
        assert f is not None
        np.testing.assert_array_equal(quick.predict(q), full.predict(f))
    # the plain path (MLflow's parser, loaded in the background) agrees too
    csv = "a,b\n" + "".join(f"{a},{b}\n" for a, b in rows)
    pq = quick.decode(csv.encode(), MediaType("text/csv"))
    pf = full.decode(csv.encode(), MediaType("text/csv"))
    np.testing.assert_array_equal(quick.predict(pq), full.predict(pf))


def test_quick_loader_takes_plain_sklearn_models_only(sk_model: Path, tmp_path: Path) -> None:
    assert try_quick_load(str(sk_model), allow_pickle=True) is not None
    assert try_quick_load(sk_model.as_uri(), allow_pickle=True) is not None
    # MLflow's guard is honoured
    assert try_quick_load(str(sk_model), allow_pickle=False) is None
    # a custom pyfunc, a remote URI, a missing directory: MLflow's job
    assert try_quick_load(str(save_scaler(tmp_path / "scaler")), allow_pickle=True) is None
    assert try_quick_load("models:/diabetes@champion", allow_pickle=True) is None
    assert try_quick_load(str(tmp_path / "nothing"), allow_pickle=True) is None


def test_local_model_dir() -> None:
    assert local_model_dir("file:///opt/ml/model") == Path("/opt/ml/model")
    assert local_model_dir("/opt/ml/model") == Path("/opt/ml/model")
    assert local_model_dir("runs:/abc/model") is None
    assert local_model_dir("s3://bucket/model") is None


def test_a_broken_pickle_is_a_load_error(sk_model: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(sk_model, broken)
    (broken / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="Could not load model"):
        MlflowRuntime.load(str(broken))
