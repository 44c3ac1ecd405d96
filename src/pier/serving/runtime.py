"""The model server's one extension point: a Runtime decodes requests and predicts.

Batching, metrics and the HTTP layer wrap a Runtime; they never reach into it.
"""

from __future__ import annotations

from typing import Any, Protocol

from pier.contract.content_types import MediaType
from pier.serving.inputs import Prepared
from pier.serving.schema import FastSchema

__all__ = ["Runtime"]  # pinned by tests/test_extension_points.py


class Runtime(Protocol):
    #: Columns the fast JSON decoder may check on its own; None sends everything to `decode`.
    fast_schema: FastSchema | None

    def decode(self, body: bytes, media: MediaType) -> Prepared:
        """Decode any supported body (the plain path). Raises a PierError for bad input."""
        ...

    def predict(self, prepared: Prepared) -> Any:
        """Predict one (possibly merged) request. Raises a PierError."""
        ...

    def warmup_bodies(self) -> list[tuple[bytes, MediaType]]:
        """Requests that must succeed before /ping answers 200."""
        ...

    def wait_loaded(self) -> None:
        """Block until any loading the runtime does in the background has finished (starting
        it if the runtime defers it; the server calls this once the model is warm)."""
        ...
