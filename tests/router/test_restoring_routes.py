"""A route published from the store at start (EndpointRoute.restoring), before the endpoint's
instances serve again: InvokeEndpoint gets sagemaker-runtime's retryable 503
(ServiceUnavailable), for the endpoint and for a named variant, never "not found"; a route
without healthy instances that is not restoring keeps its 429; an unknown endpoint its 400."""

from __future__ import annotations

import asyncio

import pytest

from pier.errors import ModelNotReadyException, RuntimeValidationError, ServiceUnavailable
from pier.router.invoke import Router
from pier.router.table import EndpointRoute, RoutingTable, VariantRoute


def _invoke(router: Router, endpoint: str, variant: str | None = None) -> None:
    async def call() -> None:
        try:
            await router.invoke(endpoint, b"{}", {}, variant)
        finally:
            await router.aclose()

    asyncio.run(call())


def _router(restoring: bool) -> Router:
    table = RoutingTable()
    table.set(EndpointRoute("e", {"main": VariantRoute("main", 1.0)}, restoring=restoring))
    return Router(table, "123456789012")


@pytest.mark.parametrize("variant", [None, "main"])
def test_a_restoring_endpoint_answers_a_retryable_503(variant: str | None) -> None:
    with pytest.raises(ServiceUnavailable) as excinfo:
        _invoke(_router(restoring=True), "e", variant)
    assert (excinfo.value.status, excinfo.value.code) == (503, "ServiceUnavailable")
    assert "Endpoint e is starting again after a platform restart" in excinfo.value.message


def test_an_endpoint_without_instances_otherwise_is_not_ready() -> None:
    with pytest.raises(ModelNotReadyException):
        _invoke(_router(restoring=False), "e")


def test_an_unknown_endpoint_is_not_found() -> None:
    with pytest.raises(RuntimeValidationError, match="Endpoint other of account"):
        _invoke(_router(restoring=True), "other")
