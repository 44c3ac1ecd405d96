"""pier's ASGI app served by granian instead of uvicorn, to compare the two ASGI servers.

    python benchmarks/serving/granian_app.py PORT     (settings from PIER_* variables)

The app is the one `pier serve` runs (pier.serving.app.create_app over a ServerState); the
model loads and warms up in the ASGI lifespan startup, so granian accepts requests only once
the model is ready (pier serve instead answers /ping 503 while it loads). One granian worker,
uvloop, HTTP/1 only, no access log: the closest match to pier serve's uvicorn setup.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def build() -> ASGIApp:
    """granian's factory: pier's app plus a lifespan that loads the model (PIER_MODEL_URI)."""
    from pier.serving.app import ServerState, create_app
    from pier.serving.mlflow_runtime import MlflowRuntime
    from pier.settings import ServeSettings

    settings = ServeSettings()
    state = ServerState(settings)
    inner = create_app(state)

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    runtime = await asyncio.to_thread(
                        MlflowRuntime.load,
                        settings.model_uri,
                        quick_load=settings.quick_load,
                        allow_pickle=settings.allow_pickle_deserialization,
                    )
                    await state.attach(runtime)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await state.detach()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
        else:
            await inner(scope, receive, send)

    return app


def main() -> None:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server

    if len(sys.argv) != 2:
        sys.exit("usage: granian_app.py PORT")
    Server(
        "granian_app:build",
        factory=True,
        address="127.0.0.1",
        port=int(sys.argv[1]),
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
