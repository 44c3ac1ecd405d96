"""OpenAPI 3.1 documents of the gateway's public routes, from each model's MLflow signature.

`model_schema(model_dir)` reads a model's MLmodel (its signature: column or tensor specs, and
params) and input example (MLflow's serving_input_example.json when saved) without importing
MLflow. `document(models, server_url)` writes one OpenAPI document for the endpoints given,
each with `POST /api/v1/{name}/predict`:

- request bodies: application/json as one of MLflow's scoring formats, `dataframe_split` and
  `dataframe_records` for a model with columns, `inputs` for a tensor model (and `params`
  when the signature has some), with the model's names and types; text/csv as a string (with
  its pattern when every column is a number). A model without a signature (or whose model
  is not an MLflow model: a container that brings its own) gets an open JSON object.
- the 200 answer: MLflow's `{"predictions": [...]}`, typed from the output signature;
- the gateway's errors, each `{"message": ...}` (API Gateway's shape): 400, 403, 404, 413,
  415, 424, 429 (with Retry-After), 503, 504.

The security scheme is an API key in the `x-api-key` header (API Gateway's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ModelSchema", "document", "model_schema"]

_COLUMN_TYPES: dict[str, dict[str, Any]] = {
    "double": {"type": "number"},
    "float": {"type": "number"},
    "long": {"type": "integer"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "binary": {"type": "string", "contentEncoding": "base64"},
    "datetime": {"type": "string", "format": "date-time"},
}
_TENSOR_TYPES = {"float": "number", "int": "integer", "uint": "integer", "bool": "boolean"}
_ERRORS = {
    "400": "The body is not a valid input for the model.",
    "403": "No API key, an invalid or revoked one, or one not allowed this endpoint.",
    "404": "No such endpoint is published on the gateway.",
    "413": "The body is larger than 6 MiB.",
    "415": "The content type is not one the model accepts.",
    "424": "The model failed (its predict raised): its message, as SageMaker's ModelError.",
    "429": "Over the key's rate or quota; retry after Retry-After seconds.",
    "503": "The endpoint has no healthy instance right now.",
    "504": "The model did not answer in time.",
}
#: Rows per generated request body: enough to describe, small enough to fuzz quickly.
_MAX_ROWS = 100


@dataclass(frozen=True)
class ModelSchema:
    """What the documents say of one model: its input columns or tensor, output, example."""

    columns: tuple[tuple[str, dict[str, Any], bool], ...] | None  # (name, JSON schema, required)
    tensor: dict[str, Any] | None  # JSON schema of the `inputs` tensor
    params: dict[str, Any] | None  # JSON schema of `params`
    output: dict[str, Any]  # JSON schema of one prediction
    example: Any  # a JSON request body, or None


def _tensor_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    dtype = str(spec.get("dtype", ""))
    kind = next((v for k, v in _TENSOR_TYPES.items() if dtype.startswith(k)), None)
    schema: dict[str, Any] = {"type": kind} if kind else {}
    for size in reversed(list(spec.get("shape") or [])[1:]):
        schema = {"type": "array", "items": schema}
        if isinstance(size, int) and size > 0:
            schema.update(minItems=size, maxItems=size)
    return schema


def _column_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    kind = spec.get("type")
    if kind == "tensor":
        return _tensor_schema(spec.get("tensor-spec") or {})
    if kind == "array":
        return {"type": "array", "items": _column_schema(spec.get("items") or {})}
    if kind == "object":
        props = {p["name"]: _column_schema(p) for p in spec.get("properties") or []}
        return {"type": "object", "properties": props}
    return dict(_COLUMN_TYPES.get(str(kind), {}))


def model_schema(model_dir: Path | None) -> ModelSchema:
    """The schema of the model in `model_dir` (None, no MLmodel, or no signature: open)."""
    open_schema = ModelSchema(None, None, None, {}, None)
    mlmodel = model_dir / "MLmodel" if model_dir is not None else None
    if mlmodel is None or not mlmodel.is_file():
        return open_schema
    try:
        meta = yaml.safe_load(mlmodel.read_text()) or {}
        signature = meta.get("signature") or {}
        inputs = json.loads(signature["inputs"]) if signature.get("inputs") else None
        outputs = json.loads(signature["outputs"]) if signature.get("outputs") else None
        params = json.loads(signature["params"]) if signature.get("params") else None
    except (OSError, ValueError, yaml.YAMLError, TypeError):
        return open_schema
    columns = tensor = None
    if inputs and all(spec.get("type") == "tensor" for spec in inputs):
        if len(inputs) == 1 and not inputs[0].get("name"):
            tensor = _tensor_schema(inputs[0].get("tensor-spec") or {})
            tensor = {"type": "array", "items": tensor, "minItems": 1, "maxItems": _MAX_ROWS}
    elif inputs:
        columns = tuple(
            (str(spec.get("name", i)), _column_schema(spec), bool(spec.get("required", True)))
            for i, spec in enumerate(inputs)
        )
    output: dict[str, Any] = {}
    if outputs and len(outputs) == 1 and not outputs[0].get("name"):
        spec = outputs[0]
        tensor_spec = spec.get("tensor-spec") or {}
        output = (
            _tensor_schema(tensor_spec) if spec.get("type") == "tensor" else _column_schema(spec)
        )
    param_schema = None
    if params:
        param_schema = {
            "type": "object",
            "properties": {
                p["name"]: {**_COLUMN_TYPES.get(p.get("type", ""), {}), "default": p.get("default")}
                for p in params
            },
        }
    return ModelSchema(columns, tensor, param_schema, output, _example(model_dir, meta))


def _example(model_dir: Path | None, meta: Mapping[str, Any]) -> Any:
    info = meta.get("saved_input_example_info") or {}
    if model_dir is None or not info:
        return None
    serving = info.get("serving_input_path")
    try:
        if serving:
            return json.loads((model_dir / serving).read_text())
        raw = json.loads((model_dir / info["artifact_path"]).read_text())
    except (OSError, ValueError, KeyError):
        return None
    if info.get("type") == "dataframe" and info.get("pandas_orient") == "split":
        return {"dataframe_split": raw}
    if info.get("type") == "ndarray":
        return {"inputs": raw}
    return None


def _request_schema(model: ModelSchema) -> dict[str, Any]:
    formats: list[dict[str, Any]] = []
    if model.columns is not None:
        names = [name for name, _, _ in model.columns]
        types = [schema for _, schema, _ in model.columns]
        row = {
            "type": "array",
            "prefixItems": types,
            "minItems": len(types),
            "maxItems": len(types),
        }
        record = {
            "type": "object",
            "properties": dict(zip(names, types, strict=True)),
            "required": [name for name, _, required in model.columns if required],
            "additionalProperties": False,
        }
        split = {
            "type": "object",
            "properties": {
                "columns": {"const": names},
                "data": {"type": "array", "items": row, "minItems": 1, "maxItems": _MAX_ROWS},
            },
            "required": ["columns", "data"],
            "additionalProperties": False,
        }
        records = {"type": "array", "items": record, "minItems": 1, "maxItems": _MAX_ROWS}
        # `inputs` is MLflow's format for tensors; a DataFrame model takes the other two.
        formats += [_format("dataframe_split", split), _format("dataframe_records", records)]
    elif model.tensor is not None:
        formats.append(_format("inputs", model.tensor))
    else:
        return {"type": "object", "description": "The body the model accepts (no signature)."}
    if model.params is not None:
        for f in formats:
            f["properties"]["params"] = model.params
    return {"oneOf": formats} if len(formats) > 1 else formats[0]


def _format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": name,
        "properties": {name: schema},
        "required": [name],
        "additionalProperties": False,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A prediction's schema, untyped when it is a number: a non-finite prediction (an
    overflowing input) is written as MLflow writes it, NaN or Infinity, which no JSON Schema
    type admits."""
    kind = schema.get("type")
    if isinstance(kind, str) and kind in ("number", "integer"):
        return {
            "description": f"A {kind}; NaN, Infinity or -Infinity when not finite (as MLflow "
            "writes them)."
        }
    return schema


def _csv_schema(model: ModelSchema) -> dict[str, Any]:
    """A CSV body: a header line of the columns, then rows; its pattern when all are numbers."""
    schema: dict[str, Any] = {"type": "string", "description": "CSV with a header line."}
    if model.columns is None:
        return schema
    names = [name for name, _, _ in model.columns]
    kinds = {s.get("type") for _, s, _ in model.columns}
    if kinds <= {"number", "integer"} and all(n.isidentifier() for n in names):
        number = r"-?[0-9]{1,15}(\.[0-9]{1,15})?"
        row = ",".join([number] * len(names))
        schema["pattern"] = f"^{','.join(names)}\\n({row}\\n){{1,{_MAX_ROWS}}}$"
        schema["example"] = ",".join(names) + "\n" + ",".join(["1"] * len(names)) + "\n"
    return schema


def _operation(name: str, model: ModelSchema) -> dict[str, Any]:
    json_body: dict[str, Any] = {"schema": _request_schema(model)}
    if model.example is not None:
        json_body["example"] = model.example
    responses: dict[str, Any] = {
        "200": {
            "description": "The model's predictions (MLflow's scoring server format).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "predictions": {"type": "array", "items": _nullable(model.output)}
                        },
                    }
                }
            },
        }
    }
    for status, why in _ERRORS.items():
        answer: dict[str, Any] = {
            "description": why,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == "429":
            answer["headers"] = {
                "Retry-After": {
                    "description": "Seconds after which a retry can succeed.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[status] = answer
    return {
        "operationId": f"predict_{name}",
        "summary": f"Predict with endpoint {name}",
        "description": "Forwards the body to the endpoint (as SageMaker's InvokeEndpoint "
        "does) and answers with the model's answer. MLflow's /invocations formats.",
        "tags": [name],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": json_body,
                "text/csv": {"schema": _csv_schema(model)},
            },
        },
        "responses": responses,
    }


def document(models: Mapping[str, ModelSchema], server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints' predict routes (sorted by name)."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "pier gateway",
            "version": "1",
            "description": "Public prediction routes of pier's endpoints. Every call needs an "
            "API key in the x-api-key header (`pier keys create`).",
        },
        "security": [{"apiKey": []}],
        "paths": {
            f"/api/v1/{name}/predict": {"post": _operation(name, models[name])}
            for name in sorted(models)
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}},
                    "required": ["message"],
                }
            },
        },
    }
    if server_url is not None:
        doc["servers"] = [{"url": server_url}]
    return doc
