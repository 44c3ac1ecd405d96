"""pier's two public extension points, pinned: the model server's `Runtime` and the hosting
`Backend`. A change here is a change for everyone who wrote one; make it on purpose (and say
so in CHANGELOG.md), then update the pins. Every backend and runtime pier ships must still
implement the whole protocol with the same parameters."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from pier.hosting import base
from pier.hosting.dispatch import DispatchBackend
from pier.hosting.docker_backend import DockerBackend
from pier.hosting.process import ProcessBackend
from pier.serving import runtime
from pier.serving.mlflow_runtime import MlflowRuntime

RUNTIME = {
    "decode": "(self, body: 'bytes', media: 'MediaType') -> 'Prepared'",
    "predict": "(self, prepared: 'Prepared') -> 'Any'",
    "warmup_bodies": "(self) -> 'list[tuple[bytes, MediaType]]'",
    "wait_loaded": "(self) -> 'None'",
}
BACKEND = {
    "can_run": "(self, image: 'str | None') -> 'bool'",
    "cannot_run": "(self, image: 'str | None') -> 'str | None'",
    "launch": "(self, spec: 'InstanceSpec') -> 'Instance'",
    "wait_healthy": (
        "(self, instance: 'Instance', timeout_s: 'float | None' = None) -> 'Instance'"
    ),
    "health": "(self, instance: 'Instance') -> 'bool'",
    "stop": "(self, instance: 'Instance', grace_s: 'float' = 30.0) -> 'None'",
    "list": "(self) -> 'list[Instance]'",
    "adopt": "(self) -> 'builtins.list[Instance]'",
    "log_tail": "(self, instance: 'Instance', lines: 'int' = 40) -> 'str'",
}
ASYNC = {"launch", "wait_healthy", "health", "stop", "adopt"}


def members(protocol: type) -> dict[str, str]:
    return {
        name: str(inspect.signature(fn))
        for name, fn in vars(protocol).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    }


def test_the_public_names_are_pinned() -> None:
    assert runtime.__all__ == ["Runtime"]
    assert sorted(base.__all__) == sorted(
        [
            "DEFAULT_STARTUP_TIMEOUT_S", "DEFAULT_STOP_GRACE_S", "PING_TIMEOUT_S", "Backend",
            "Instance", "InstanceSpec", "InstanceState", "new_instance_id",
        ]
    )  # fmt: skip
    for module in (runtime, base):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names {name}"


def test_the_runtime_protocol_is_pinned() -> None:
    assert members(runtime.Runtime) == RUNTIME
    assert runtime.Runtime.__annotations__ == {"fast_schema": "FastSchema | None"}


def test_the_backend_protocol_is_pinned() -> None:
    assert members(base.Backend) == BACKEND
    for name in ASYNC:
        assert inspect.iscoroutinefunction(getattr(base.Backend, name)), name


def _parameters(fn: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("impl", [ProcessBackend, DockerBackend, DispatchBackend])
def test_every_backend_pier_ships_implements_the_whole_protocol(impl: type) -> None:
    for name in BACKEND:
        ours = getattr(impl, name)
        assert _parameters(ours) == _parameters(getattr(base.Backend, name)), (impl, name)
        assert inspect.iscoroutinefunction(ours) == (name in ASYNC), (impl, name)


def test_the_mlflow_runtime_implements_the_whole_protocol() -> None:
    for name in RUNTIME:
        assert _parameters(getattr(MlflowRuntime, name)) == _parameters(
            getattr(runtime.Runtime, name)
        ), name
