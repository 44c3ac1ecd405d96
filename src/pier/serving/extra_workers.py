"""The extra workers of a multi-worker model server, started and watched by worker 0.

With --workers N > 1 the `pier serve` process is worker 0 itself: it binds, listens at once
(/ping 503 while it loads) and answers 200 as soon as its own model is warm, exactly as a
single worker does. Only then does it spawn the N - 1 extra workers (spawned, not forked: the
parent runs threads and an event loop). Each extra worker binds the same port with SO_REUSEPORT
and starts listening only once its own model is warm, so no connection ever reaches a worker
that would answer 503. Starting them later keeps them off the CPU while worker 0 imports and
loads (on a 2-core machine, two workers importing at once made the first 200 ~0.5 s later).

Policies (docs/serving.md):
- SIGTERM/SIGINT to the parent is passed on to every extra worker; all drain, the parent waits
  for them and exits with the largest exit code.
- A worker that ends with a non-zero code while the server is not stopping stops the server:
  the others are sent SIGTERM and drain, rather than run degraded. A worker killed by a signal
  counts as exit code 128 + the signal's number (the shell's convention), never as 0 (but a
  worker that dies of the SIGTERM it was sent to stop, before it could handle it, stopped).
- A signal before the extra workers are started means none is started.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from pier.settings import ServeSettings

log = logging.getLogger("pier.serving")


def _extra_worker_main(settings: ServeSettings) -> None:
    import gc

    gc.disable()  # cold start, as worker 0 runs it: re-enabled once the model is warm
    from pier.serving.server import run_worker

    sys.exit(run_worker(settings, listen_early=False))


def _exit_code(p: Any, stopping: bool) -> int:
    """The process's exit code; 128 + N when signal N killed it (multiprocessing says -N),
    except the stop signal it was sent: a worker still starting up has no handler for it yet,
    and dies of it rather than drain (it never served)."""
    code = p.exitcode or 0
    if code >= 0:
        return code
    if stopping and -code in (signal.SIGTERM, signal.SIGINT):
        return 0
    return 128 - code


class ExtraWorkers:
    """Workers 1..count of a server whose worker 0 is this process."""

    def __init__(self, settings: ServeSettings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.stopping = False
        self.procs: list[Any] = []
        self.codes: dict[int, int] = {}  # pid -> exit code, once ended
        #: Called when an extra worker failed: worker 0 stops serving too.
        self.on_failure: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Spawn the extra workers (worker 0 is warm). Nothing when the server is stopping."""
        if self.stopping:
            return
        # In a thread: spawning starts interpreters (and multiprocessing's resource tracker),
        # ~0.1 s in which worker 0's event loop would not answer.
        procs = await asyncio.to_thread(self._spawn)
        loop = asyncio.get_running_loop()
        for p in procs:
            # The sentinel becomes readable when the process ends: no thread needed to watch.
            loop.add_reader(p.sentinel, self._ended, p)
        log.info("worker 0 warm: started %d more worker(s)", self.count)
        if self.stopping:  # a signal came while they were spawned
            self.signal(signal.SIGTERM)

    def _spawn(self) -> list[Any]:
        ctx = multiprocessing.get_context("spawn")
        for _ in range(self.count):
            p = ctx.Process(target=_extra_worker_main, args=(self.settings,))
            p.start()
            self.procs.append(p)
        return list(self.procs)

    def _ended(self, p: Any) -> None:
        asyncio.get_running_loop().remove_reader(p.sentinel)
        p.join()
        code = self.codes[p.pid] = _exit_code(p, self.stopping)
        if code and not self.stopping:
            log.error("worker %d ended with exit code %s: stopping the server", p.pid, p.exitcode)
            self.signal(signal.SIGTERM)
            self.on_failure()

    def signal(self, signum: int) -> None:
        """Pass `signum` on to every running extra worker; none is started after this."""
        self.stopping = True
        for p in self.procs:
            if p.pid is not None and p.exitcode is None:
                os.kill(p.pid, signum)

    async def wait(self) -> int:
        """Wait for every extra worker to end; the largest exit code among them (0 if none)."""
        loop = asyncio.get_running_loop()
        for p in self.procs:
            if p.pid not in self.codes:
                loop.remove_reader(p.sentinel)
                await asyncio.to_thread(p.join)
                self.codes[p.pid] = _exit_code(p, self.stopping)
        return max(self.codes.values(), default=0)
