"""Process lifecycle of the model server: bind, load, warm up, serve, drain on SIGTERM.

Startup: the socket is bound first so that GET /ping answers 503 while the model loads (the
SageMaker platform polls it); the model loads in a thread; a warm-up request goes through the
whole request path; only then /ping says 200. A model that fails to load or warm up ends the
process with exit code 1 and the reason in the log.

Shutdown: SIGTERM,  # SageMaker stop: stop accepting, finish in-flight requests, exit
uvicorn stops accepting and waits for in-flight requests (up to the request timeout).
With --workers N > 1 this process is worker 0 and starts the other N - 1 once it is warm
(pier.serving.extra_workers): each worker is its own process listening on the same port with
SO_REUSEPORT, the kernel spreads connections, and each accepted socket gets TCP_NODELAY from
the event loop (the shared-socket multi-worker mode of uvicorn misses it, Kludex/uvicorn#3149).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from pier.errors import PierError
from pier.serving.app import ServerState, create_app, error_body
from pier.serving.extra_workers import ExtraWorkers
from pier.settings import ServeSettings

log = logging.getLogger("pier.serving")


def configure_logging(settings: ServeSettings) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(settings.log_file))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(settings.log_level.upper())


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def drain_on_sigterm_server(config: Any, on_exit: Callable[[int], None] | None = None) -> Any:
    """uvicorn's server for `config`; `on_exit(signum)` is also called on SIGTERM/SIGINT."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM drain ends with exit code 0.

        uvicorn re-raises the captured signal after shutting down, so the process would die
        "killed by SIGTERM" even after a clean drain; supervisors then report a crash.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if on_exit is not None:
                on_exit(sig)

    return Server(config)


def _load_runtime(settings: ServeSettings) -> Any:
    # Imported here: importing MLflow takes a second, and the socket should be up first.
    from pier.serving.mlflow_runtime import MlflowRuntime

    return MlflowRuntime.load(
        settings.model_uri,
        quick_load=settings.quick_load,
        allow_pickle=settings.allow_pickle_deserialization,
    )


#: The exit code of a worker given up because a predict call does not end (docs/serving.md).
EXIT_STUCK = 3


def _exit_stuck() -> None:
    log.error("exiting with code %d: a predict call does not end", EXIT_STUCK)
    logging.shutdown()
    os._exit(EXIT_STUCK)


def _http_error_body(message: str) -> bytes:
    """An HTTP-level 400 (uvicorn's, before the app) in the model server's MLflow error shape."""
    return error_body("BAD_REQUEST", message)


async def _serve(
    settings: ServeSettings,
    sock: socket.socket,
    listen_early: bool,
    extra: ExtraWorkers | None = None,
) -> int:
    """Serve on `sock`. With listen_early the socket listens while the model loads (/ping says
    503); otherwise it starts listening only once the model is warm. The extra workers of a
    multi-worker server do the latter: SO_REUSEPORT spreads connections over every listening
    socket, so a loading worker must not listen. Worker 0 (`extra` given) listens early and
    starts the extra workers once warm; its exit code is the largest of all workers'."""
    import uvicorn

    from pier.serving.protocol import json_errors_protocol

    state = ServerState(settings)
    loop = asyncio.get_running_loop()

    # A stuck predict thread cannot be joined, so neither a graceful shutdown nor the
    # interpreter's exit (which joins the executor's threads) would end: leave at once, after
    # a moment for the 503s and 504s already written to reach their clients.
    def give_up() -> None:
        if extra is not None:  # they drain on their own; this process cannot wait for them
            extra.signal(signal.SIGTERM)
        loop.call_later(0.5, _exit_stuck)

    state.give_up = give_up
    config = uvicorn.Config(
        create_app(state),
        loop="uvloop",
        http=json_errors_protocol(_http_error_body),
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.timeout_seconds) + 1,
        timeout_keep_alive=60,  # SageMaker keeps connections to the container alive
    )
    server = drain_on_sigterm_server(config, on_exit=extra.signal if extra else None)
    # Until uvicorn's own handlers take over (serving starts): a signal while loading stops
    # the worker cleanly (exit 0, never served) instead of killing it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    if extra is not None:

        def extra_failed() -> None:
            server.should_exit = True

        extra.on_failure = extra_failed
    serving = asyncio.create_task(server.serve(sockets=[sock])) if listen_early else None
    exit_code = 0
    started = time.perf_counter()
    freezing: asyncio.Task[None] | None = None
    try:
        runtime = await asyncio.to_thread(_load_runtime, settings)
        log.info("model loaded in %.2f s", time.perf_counter() - started)
        await state.attach(runtime)
        log.info(
            "model warm: /ping answers 200 (%.2f s after start)", time.perf_counter() - started
        )
        gc.enable()  # off while starting (pier.cli.main serve), on while serving
        freezing = asyncio.create_task(_freeze_heap(runtime))
        if extra is not None:
            await extra.start()
    except asyncio.CancelledError:
        raise
    except PierError as err:
        log.error("cannot serve: %s", err.message)
        exit_code = 1
    except Exception as exc:
        log.exception("cannot serve: the model failed to load or to answer its warm-up request")
        log.error("cannot serve: %s: %s", type(exc).__name__, exc)
        exit_code = 1
    if exit_code:
        gc.enable()
        server.should_exit = True
    if serving is None and not exit_code and not server.should_exit:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
    if serving is not None:
        await serving
    if freezing is not None:
        freezing.cancel()
    await state.detach()
    if extra is not None:
        exit_code = max(exit_code, await extra.wait())
    log.info("stopped")
    return exit_code


async def _freeze_heap(runtime: Any) -> None:
    """Move everything loaded so far out of the garbage collector's sight.

    The model, MLflow and pandas are hundreds of thousands of long-lived objects; every full
    collection walks them all while requests wait. Measured at c64: p99 231-261 ms without,
    63-81 ms with gc.freeze(), same throughput and p50 (docs/benchmarks.md).
    """
    await asyncio.to_thread(runtime.wait_loaded)
    gc.collect()
    gc.freeze()
    log.info("heap frozen: %d objects out of the collector's sight", gc.get_freeze_count())


def run_worker(
    settings: ServeSettings,
    sock: socket.socket | None = None,
    listen_early: bool = True,
    extra: ExtraWorkers | None = None,
) -> int:
    """Run one worker in this process until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(settings)
    if sock is None:
        sock = bind_socket(settings.host, settings.port, reuse_port=settings.workers > 1)
    import uvloop

    return uvloop.run(_serve(settings, sock, listen_early, extra))


def run(settings: ServeSettings) -> int:
    """Serve until stopped. Worker 0 runs in this process; more run as child processes,
    started once worker 0 is warm (pier.serving.extra_workers)."""
    configure_logging(settings)
    where = f" (log file {settings.log_file})" if settings.log_file else ""
    sock = bind_socket(settings.host, settings.port, reuse_port=settings.workers > 1)
    host, port = sock.getsockname()[:2]
    if settings.workers == 1:
        log.info("pier serve %s on http://%s:%s%s", settings.model_uri, host, port, where)
        return run_worker(settings, sock)
    settings = settings.model_copy(update={"port": port})  # port 0: the extra workers join it
    log.info(
        "pier serve %s on http://%s:%s with %d workers%s",
        settings.model_uri,
        host,
        port,
        settings.workers,
        where,
    )
    return run_worker(settings, sock, extra=ExtraWorkers(settings, settings.workers - 1))
