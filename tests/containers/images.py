"""Building the test images: a tiny `serve` on PIER_BASE_IMAGE (default pier-base:bookworm)."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BASE_IMAGE = os.environ.get("PIER_BASE_IMAGE", "pier-base:bookworm")
TINY_SERVE = Path(__file__).with_name("tiny_serve.py")


def _context(files: dict[str, bytes], dockerfile: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {**files, "Dockerfile": dockerfile.encode()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@contextlib.contextmanager
def tiny_image(client: Any, model_text: str | None = None) -> Iterator[str]:
    """`pier-test-tiny-<hex>:1`: tiny_serve.py as `serve`; with `model_text`, a model.txt baked
    in at /opt/ml/model (a model inside its image). Removed afterwards."""
    tag = f"pier-test-tiny-{uuid.uuid4().hex[:8]}:1"
    files = {"serve": TINY_SERVE.read_bytes()}
    dockerfile = f"FROM {BASE_IMAGE}\nCOPY serve /usr/local/bin/serve\n"
    if model_text is not None:
        files["model.txt"] = model_text.encode()
        dockerfile += "COPY model.txt /opt/ml/model/model.txt\n"
    dockerfile += 'ENTRYPOINT []\nCMD ["serve"]\n'
    client.images.build(fileobj=_context(files, dockerfile), custom_context=True, tag=tag, rm=True)
    try:
        yield tag
    finally:
        with contextlib.suppress(Exception):
            client.images.remove(tag, force=True)
