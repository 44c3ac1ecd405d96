"""The model server's error bodies carry MLflow's classification (`sqlstate`, `error_class`),
as MLflow 3.17's scoring server writes them: pier's table against MLflow's own functions."""

from __future__ import annotations

import orjson
import pytest
from mlflow.error_classification import ErrorClass, SqlState

from pier import errors
from pier.serving.app import MLFLOW_CLASSIFICATION, error_body

#: Every error code the model server answers with: pier.errors' classes above the AWS ones.
SERVING_CODES = sorted(
    {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.PierError)
        and not issubclass(cls, errors.AwsError)
        and cls.code.isupper()
    }
)


def mlflow_classification(code: str) -> tuple[str | None, str | None]:
    """What MlflowException(message, error_code=code) computes (mlflow/exceptions.py)."""
    error_class = ErrorClass.from_client_error_code(code)
    sqlstate = (
        SqlState.from_error_class(error_class) if error_class else None
    ) or SqlState.from_client_error_code(code)
    return error_class, sqlstate


def test_the_serving_codes_are_found() -> None:
    assert {"BAD_REQUEST", "INVALID_PARAMETER_VALUE", "INTERNAL_ERROR"} <= set(SERVING_CODES)


@pytest.mark.parametrize("code", SERVING_CODES)
def test_the_table_classifies_each_code_as_mlflow_does(code: str) -> None:
    expected = mlflow_classification(code)
    assert MLFLOW_CLASSIFICATION.get(code, (None, None)) == expected


def test_keys_in_mlflows_order_and_absent_when_unclassified() -> None:
    doc = orjson.loads(error_body("BAD_REQUEST", "no"))
    assert list(doc) == ["error_code", "message", "sqlstate", "error_class"]
    assert doc == {
        "error_code": "BAD_REQUEST",
        "message": "no",
        "sqlstate": "KAM00",
        "error_class": "INVALID_PARAMETER_VALUE",
    }
    assert orjson.loads(error_body("UNSUPPORTED_MEDIA_TYPE", "x")) == {
        "error_code": "UNSUPPORTED_MEDIA_TYPE",
        "message": "x",
    }


def test_mlflows_own_classification_wins() -> None:
    doc = orjson.loads(
        error_body("INVALID_PARAMETER_VALUE", "m", "SCHEMA_ENFORCEMENT_FAILED", "KAM01")
    )
    assert (doc["error_class"], doc["sqlstate"]) == ("SCHEMA_ENFORCEMENT_FAILED", "KAM01")
