"""A container's log, copied into a file as the container writes it.

The Docker backend keeps every instance's log in `<home>/instances/<id>/serve.log`, as the
process backend does, so `pier logs` and failure reasons read files for both backends, with no
platform and no engine running, and a removed container's last words outlive it. A LogPump
thread follows the engine's log stream (stdout and stderr, with the engine's timestamps) and
appends each line without its timestamp; the file's mtime is set to the last copied line's
time, so a pump started again after a platform restart resumes exactly there.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker.models.containers import Container

log = logging.getLogger("pier.hosting.docker")

_STAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")


class LogPump(threading.Thread):
    """Copies a container's log stream (stdout and stderr) into a file until the stream ends,
    when the container stops; `ended` is set then.

    The engine's timestamp of each line is stripped, and the file's mtime is set to the last
    copied line's: a pump started after an adopt asks for the lines since that second and
    skips those at or before it, so nothing is lost or repeated across a platform restart.
    (The file system's own mtime lags the clock by up to a jiffy: not precise enough.)"""

    def __init__(self, container: Container, path: Path, after_ns: int | None) -> None:
        super().__init__(name=f"pier-logs-{container.name}", daemon=True)
        self._container = container
        self._path = path
        self._after_ns = after_ns
        self._stream: Any = None
        self._closed = False
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            kwargs: dict[str, Any] = {"stream": True, "follow": True, "timestamps": True}
            if self._after_ns is not None:
                kwargs["since"] = self._after_ns // 10**9
            self._stream = self._container.logs(**kwargs)
            with self._path.open("ab") as out:
                for chunk in self._stream:
                    if self._closed:
                        break
                    last = self._copy(chunk, out)
                    if last is not None:
                        os.utime(out.fileno(), ns=(last, last))
        except Exception as exc:  # the engine went away: the health check will tell
            log.debug("log stream of %s ended: %s", self._container.name, exc)
        finally:
            if self._stream is not None:
                with quietly():
                    self._stream.close()
            self.ended.set()

    def _copy(self, chunk: bytes, out: Any) -> int | None:
        """Write the chunk's lines without their timestamps; the last line's time (ns)."""
        last = None
        for line in chunk.splitlines(keepends=True):
            stamp, _, text = line.partition(b" ")
            when = _timestamp_ns(stamp)
            if when is None:  # not a line the engine stamped: as it is
                out.write(line)
                continue
            if self._after_ns is not None and when <= self._after_ns:
                continue  # copied before the adopt
            out.write(text)
            last = when
        out.flush()
        return last

    def close(self) -> None:
        """Stop copying (the container runs on): nothing more is written to the file."""
        self._closed = True
        if self._stream is not None:
            with quietly():
                self._stream.close()


def _timestamp_ns(stamp: bytes) -> int | None:
    """The engine's RFC 3339 timestamp with nanoseconds (`2024-01-02T03:04:05.123456789Z`) in
    ns since the epoch; None when it is not one."""
    match = _STAMP.fullmatch(stamp)
    if match is None:
        return None
    seconds = datetime.strptime(match[1].decode(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = (match[2] or b"").decode().ljust(9, "0")[:9]
    return int(seconds.timestamp()) * 10**9 + int(fraction)


def last_copied_ns(log_path: Path) -> int | None:
    """The time (ns) of the last line copied into the instance's log (see LogPump)."""
    try:
        return log_path.stat().st_mtime_ns
    except OSError:
        return None


class quietly:  # contextlib.suppress of every error, named for what it means here
    """Best-effort clean-up: errors are logged at debug level and dropped."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if exc is not None:
            log.debug("ignored: %s", exc)
        return isinstance(exc, Exception)
