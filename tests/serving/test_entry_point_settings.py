"""The `serve` executable's settings: SageMaker's variables against pier's."""

from __future__ import annotations

import pytest

from pier.settings import ContainerServeSettings


def test_sagemaker_bind_to_port_wins_over_pier_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """SageMaker's contract: the platform says where the container listens."""
    monkeypatch.setenv("PIER_PORT", "7001")
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "7002")
    assert ContainerServeSettings().port == 7002


def test_pier_port_alone_still_sets_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT", raising=False)
    monkeypatch.setenv("PIER_PORT", "7001")
    assert ContainerServeSettings().port == 7001
