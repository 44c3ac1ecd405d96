"""pier.platform.gateway_openapi on models MLflow saved: a DataFrame model, a tensor model,
and no model at all each give a document openapi-spec-validator accepts, whose schemas admit
the model's own input example and name its columns and types."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
from openapi_spec_validator import validate

from pier.platform.gateway_openapi import document, model_schema
from tests.gateway.conftest import COLUMNS, save_diabetes_model


def request_schema(doc: dict[str, object], name: str) -> dict[str, object]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    body = paths[f"/api/v1/{name}/predict"]["post"]["requestBody"]["content"]
    schema: dict[str, object] = body["application/json"]["schema"]
    return schema


def save_tensor_model(path: Path) -> Path:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            # untyped: MLflow reads a signature from type hints, and warns about these
            return model_input

    x = np.zeros((2, 3), dtype="float32")
    mlflow.pyfunc.save_model(
        str(path), python_model=Echo(), signature=infer_signature(x, x), input_example=x,
        pip_requirements=["mlflow"],
    )  # fmt: skip
    return path


def test_documents_follow_the_signature_and_admit_the_example(tmp_path: Path) -> None:
    frame = model_schema(save_diabetes_model(tmp_path / "frame"))
    tensor = model_schema(save_tensor_model(tmp_path / "tensor"))
    nothing = model_schema(None)
    assert frame.columns is not None
    assert [name for name, _, _ in frame.columns] == COLUMNS
    assert {str(s) for _, s, _ in frame.columns} == {"{'type': 'number'}"}
    doc = document({"frame": frame, "tensor": tensor, "open": nothing}, "http://127.0.0.1:1")
    validate(doc)  # type: ignore[arg-type]
    for name, model in (("frame", frame), ("tensor", tensor)):
        jsonschema.validate(model.example, request_schema(doc, name))
    jsonschema.validate({"inputs": [[1.0, 2.0, 3.0]]}, request_schema(doc, "tensor"))
    for wrong in ({"inputs": [[1.0, 2.0]]}, {"inputs": [["a", 2.0, 3.0]]}, {"instances": []}):
        try:
            jsonschema.validate(wrong, request_schema(doc, "tensor"))
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"{wrong} passed the tensor model's schema")
    assert request_schema(doc, "open")["type"] == "object"


def test_an_unreadable_model_is_documented_as_open(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("signature: [not: yaml")
    assert model_schema(tmp_path).columns is None
    assert model_schema(tmp_path / "missing").example is None
