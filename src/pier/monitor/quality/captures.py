"""The captured predictions of one endpoint in a window, read for the model-quality join.

Data capture writes `{destination}/{endpoint}/{variant}/yyyy/mm/dd/hh/*.jsonl`; this reads every
variant's records of the hours a window overlaps and counts the lines it could not use.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pier.monitor.quality.quality import Captured, QualityError, captured_from_record
from pier.storage import Location, S3ClientFactory, child, read_lines, s3_client, subdirectories


@dataclass
class CaptureWindow:
    """The captured records of one endpoint in a window, with what could not be read."""

    captures: list[Captured]
    variants: list[str]
    bad_lines: int = 0  # not JSON, or not a capture record (e.g. a line cut by a crash)
    example: str | None = None  # the first bad line's file, number and problem


def read_captures(
    destination: Location,
    endpoint: str,
    start: float,
    end: float,
    s3: S3ClientFactory = s3_client,
) -> CaptureWindow:
    """Records under `{destination}/{endpoint}/{variant}/yyyy/mm/dd/hh/` of every variant,
    in the hours overlapping [start, end] (the caller filters by inferenceTime)."""
    root = child(destination, endpoint)
    variants = subdirectories(root, s3)
    window = CaptureWindow([], variants)
    for variant in variants:
        for line in read_lines(child(root, variant), start, end, s3):
            try:
                window.captures.append(captured_from_record(orjson.loads(line.text), variant))
            except (orjson.JSONDecodeError, QualityError) as exc:
                window.bad_lines += 1
                if window.example is None:
                    problem = exc.message if isinstance(exc, QualityError) else "not JSON"
                    window.example = f"{line.source}:{line.number}: {problem}"
    return window


__all__ = ["CaptureWindow", "read_captures"]
