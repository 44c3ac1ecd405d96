"""The container startup health check, shared by every backend that reaches its instances over
HTTP: poll GET /ping until it answers 200, the instance fails, or the startup timeout passes.

A backend supplies three things it alone knows (how one ping is made and what it means for the
instance's state, how to stop it, and its log tail); the policy is written once here, as
SageMaker states it: an instance not healthy within ContainerStartupHealthCheckTimeoutInSeconds
is stopped and the variant fails with the reason and the last log lines."""

from __future__ import annotations

import asyncio
from typing import Protocol

import httpx

from pier.hosting.base import PING_TIMEOUT_S, Instance, InstanceState

POLL_INTERVAL_S = 0.05  # how often a startup ping is tried
FAILED_STOP_GRACE_S = 5.0  # an instance that never became healthy has nothing to drain
FAILURE_LOG_LINES = 20


class Pinged(Protocol):
    """What a backend gives the health check."""

    async def _check(self, instance: Instance, client: httpx.AsyncClient) -> bool:
        """One GET /ping; updates `instance.state` (and `failure`) from what it sees."""
        ...

    async def stop(self, instance: Instance, grace_s: float = ...) -> None: ...

    def log_tail(self, instance: Instance, lines: int = 40) -> str: ...


def client() -> httpx.AsyncClient:
    # Plain http on loopback: no TLS, so skip loading CA certificates (20 ms per client), and
    # no proxies from the environment.
    return httpx.AsyncClient(timeout=PING_TIMEOUT_S, verify=False, trust_env=False)  # noqa: S501


async def wait_healthy(
    backend: Pinged, instance: Instance, timeout_s: float | None = None
) -> Instance:
    """Poll until healthy, FAILED or STOPPED; past the timeout, stop the instance and mark it
    FAILED with the reason and its last log lines. Never raises for a failing instance."""
    timeout = instance.spec.startup_timeout_s if timeout_s is None else timeout_s
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with client() as http:
        while True:
            healthy = await backend._check(instance, http)
            if healthy or instance.state in (InstanceState.FAILED, InstanceState.STOPPED):
                return instance
            if loop.time() >= deadline:
                break
            await asyncio.sleep(POLL_INTERVAL_S)
    failure = (
        f"Instance {instance.instance_id} did not answer GET /ping with 200 within "
        f"{timeout:g} s (the container startup health check timeout) and was stopped. "
        f"Last log lines:\n{backend.log_tail(instance, FAILURE_LOG_LINES)}"
    )
    await backend.stop(instance, grace_s=FAILED_STOP_GRACE_S)
    instance.state = InstanceState.FAILED
    instance.failure = failure
    return instance


async def health(backend: Pinged, instance: Instance) -> bool:
    """One check, as `Backend.health` states it."""
    async with client() as http:
        return await backend._check(instance, http)
