"""The loops only the leader runs (pier.store.leader): started once this platform leads.

Every platform serves the APIs; the leader also runs the reconcile loop, the monitoring
scheduler and the alarm runner. A platform that does not lead asks again every `interval_s`
and starts them when the lock is its (the leader died or stopped). A leader checks its lock
as often; one that lost it (its database session ended) stops the platform with `on_lost`, so
two leaders never act at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from pier.store.leader import Leadership

log = logging.getLogger("pier.platform")


class LeaderLoops:
    def __init__(
        self,
        leadership: Leadership,
        loops: Sequence[Callable[[], Awaitable[None]]],
        *,
        on_lost: Callable[[], None],
        interval_s: float = 2.0,
    ) -> None:
        self._leadership = leadership
        self._loops = tuple(loops)  # each starts one loop
        self._on_lost = on_lost
        self._interval_s = interval_s
        self._leading = False
        self._watch: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    async def start(self) -> None:
        """Lead now if the lock is free (a platform alone always is), and keep watching."""
        if await asyncio.to_thread(self._leadership.try_acquire):
            await self._lead()
        else:
            log.info("another platform leads: this one serves the APIs and waits to take over")
        self._watch = asyncio.create_task(self._run(), name="pier-leadership")

    async def _lead(self) -> None:
        log.info("this platform leads: reconciling, scheduling monitoring, evaluating alarms")
        self._leading = True
        for start in self._loops:
            await start()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                if self._leading:
                    if not await asyncio.to_thread(self._leadership.still_held):
                        log.error("this platform lost the leadership: stopping")
                        self._on_lost()
                        return
                elif await asyncio.to_thread(self._leadership.try_acquire):
                    await self._lead()
            except Exception:
                log.exception("leadership check failed; retrying")

    async def aclose(self) -> None:
        """Stop watching and give the lock back (after the leader's loops have stopped)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.to_thread(self._leadership.release)
