"""The R example (examples/byoc-r) in a real container: SageMaker's `train` and `serve`.

The image is built once per session on the debootstrap base; `train` runs with /opt/ml
bind-mounted, `serve` with the trained model mounted read-only at /opt/ml/model and published
on 127.0.0.1 only. Predictions are checked against the same regression computed by numpy
(least squares): a differential test of R's lm() behind plumber.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.containers.conftest import TrainedR

pytestmark = [pytest.mark.slow, pytest.mark.docker]

CSV = {"Content-Type": "text/csv"}


class Served:
    def __init__(self, container: Any, url: str) -> None:
        self.container = container
        self.url = url

    def invoke(self, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.url + "/invocations", content=body, headers=headers or CSV)


def published_url(container: Any, port: int) -> str:
    container.reload()
    (binding,) = container.ports[f"{port}/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    return f"http://127.0.0.1:{binding['HostPort']}"


def wait_for_ping(container: Any, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            raise AssertionError(f"serve exited:\n{container.logs().decode(errors='replace')}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"/ping did not answer 200 in {timeout} s")


@contextlib.contextmanager
def serve(docker_client: Any, image: str, model_dir: Path, **options: Any) -> Iterator[Any]:
    """`docker run IMAGE serve`, removed (forcibly) afterwards."""
    container = docker_client.containers.run(
        image,
        ["serve"],
        detach=True,
        volumes={str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}},
        **options,
    )
    try:
        yield container
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def served(docker_client: Any, byoc_r_image: str, trained_r: TrainedR) -> Iterator[Served]:
    """The trained model served on a port named by SAGEMAKER_BIND_TO_PORT."""
    with serve(
        docker_client,
        byoc_r_image,
        trained_r.model_dir,
        environment={"SAGEMAKER_BIND_TO_PORT": "8081"},
        ports={"8081/tcp": ("127.0.0.1", None)},
    ) as container:
        url = published_url(container, 8081)
        wait_for_ping(container, url)
        yield Served(container, url)


def test_train_writes_the_model(trained_r: TrainedR) -> None:
    assert (trained_r.model_dir / "model.rds").is_file()
    assert "trained lm on 120 rows, 3 features" in trained_r.train_log


def test_predictions_equal_numpy_least_squares(served: Served, trained_r: TrainedR) -> None:
    rows = np.random.default_rng(11).uniform(-20, 20, size=(25, 3))
    body = "\n".join(",".join(repr(v) for v in row) for row in rows.tolist()) + "\n"
    r = served.invoke(body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    got = np.array([float(line) for line in r.text.splitlines()])
    np.testing.assert_allclose(got, trained_r.expected(rows), rtol=1e-9, atol=1e-9)


def test_one_row_with_a_charset_and_crlf(served: Served, trained_r: TrainedR) -> None:
    r = served.invoke("1,2,3\r\n", {"Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(float(r.text), trained_r.expected(np.array([[1.0, 2.0, 3.0]]))[0])


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("1,x,3\n", "text/csv", 400, "Row 1, column 2 is not a number: 'x'"),
        ("1,2\n", "text/csv", 400, "needs 3 numeric features"),
        ("1,2,3\n4,5\n", "text/csv", 400, "Row 2, column 3 is not a number"),
        ("1,2,NA\n", "text/csv", 400, "is not a number: 'NA'"),
        ("", "text/csv", 400, "body is empty"),
        ('{"instances": [[1, 2, 3]]}', "application/json", 415, "send text/csv"),
    ],
)
def test_bad_input_is_4xx_with_a_message_and_the_server_keeps_serving(
    served: Served, body: str, content_type: str, status: int, message: str
) -> None:
    r = served.invoke(body, {"Content-Type": content_type})
    assert r.status_code == status, r.text
    assert message in r.text
    assert served.invoke("1,2,3\n").status_code == 200
    assert httpx.get(served.url + "/ping").status_code == 200


def test_serve_runs_as_a_non_root_user(served: Served) -> None:
    code, out = served.container.exec_run(["id", "-u"])
    assert code == 0
    assert int(out) != 0


def test_default_port_is_8080(docker_client: Any, byoc_r_image: str, trained_r: TrainedR) -> None:
    with serve(
        docker_client, byoc_r_image, trained_r.model_dir, ports={"8080/tcp": ("127.0.0.1", None)}
    ) as container:
        url = published_url(container, 8080)
        wait_for_ping(container, url)
        assert "serving /opt/ml/model/model.rds on 0.0.0.0:8080" in container.logs().decode()


def test_serve_without_a_model_exits_with_the_reason(
    docker_client: Any, byoc_r_image: str, tmp_path: Path
) -> None:
    empty = tmp_path / "model"
    empty.mkdir()
    with serve(docker_client, byoc_r_image, empty) as container:
        assert container.wait(timeout=60)["StatusCode"] == 1
        assert "no model at /opt/ml/model/model.rds" in container.logs().decode()


def test_train_without_data_fails_with_the_reason(
    docker_client: Any, byoc_r_image: str, tmp_path: Path
) -> None:
    (tmp_path / "input" / "data" / "training").mkdir(parents=True)
    container = docker_client.containers.run(
        byoc_r_image,
        ["train"],
        detach=True,
        user=f"{os.getuid()}:{os.getgid()}",
        volumes={str(tmp_path): {"bind": "/opt/ml", "mode": "rw"}},
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 1
    finally:
        container.remove(force=True)
    failure = (tmp_path / "output" / "failure").read_text()
    assert "no CSV file in /opt/ml/input/data/training" in failure
    assert not (tmp_path / "model" / "model.rds").exists()
