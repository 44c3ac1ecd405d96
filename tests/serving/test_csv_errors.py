"""A JSON document sent as text/csv: a 400 that says so and quotes a short prefix only
(MLflow would read it as a CSV header and echo the whole payload twice)."""

from __future__ import annotations

import pytest

from pier.contract.content_types import MediaType
from pier.errors import BadRequest, PierError
from pier.serving.mlflow_runtime import MlflowRuntime
from tests.serving.models import save_scaler


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> MlflowRuntime:
    return MlflowRuntime(str(save_scaler(tmp_path_factory.mktemp("csv") / "model")))


def test_json_sent_as_csv_is_named_with_a_short_prefix(runtime: MlflowRuntime) -> None:
    rows = ", ".join(f"[{i}.5, {i}]" for i in range(200))
    body = f'{{"dataframe_split": {{"columns": ["x", "n"], "data": [{rows}]}}}}'.encode()
    with pytest.raises(BadRequest) as caught:
        runtime.decode(body, MediaType("text/csv"))
    message = caught.value.message
    assert caught.value.status == 400
    assert "sent as text/csv but is a JSON document" in message
    assert "Content-Type: application/json" in message
    assert '{"dataframe_split": {"columns"' in message
    assert len(message) < 200  # a prefix, not the payload
    assert message.count("dataframe_split") == 1


def test_real_csv_still_predicts(runtime: MlflowRuntime) -> None:
    prepared = runtime.decode(b"x,n\n1.5,1\n2.0,2\n", MediaType("text/csv"))
    assert list(runtime.predict(prepared)) == [2.5, 4.0]


def test_a_bare_carriage_return_is_a_400_not_an_internal_error(runtime: MlflowRuntime) -> None:
    """Python's csv module raises on a CR inside an unquoted field (found by the fuzzer on
    3.13): pier's header check leaves such a body to MLflow's reading, which refuses it."""
    with pytest.raises(PierError) as caught:
        runtime.predict(runtime.decode(b"1.5\r2,3\n", MediaType("text/csv")))
    assert caught.value.status == 400
