"""SageMaker's DataCaptureConfig, parsed once when an endpoint's route is published.

The router carries it on each route and the capturer (pier.monitor.capture) samples and
encodes with it; the control plane builds it from the EndpointConfig. Wire shapes only: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """An endpoint's DataCaptureConfig, parsed once when its route is published."""

    destination: str
    percentage: int
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str] = frozenset()
    json_types: frozenset[str] = frozenset()
    kms_key_id: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> CaptureSettings | None:
        """None when the config captures nothing (absent, EnableCapture false, 0 %)."""
        if not config or not config.get("EnableCapture", True):
            return None
        percentage = int(config.get("InitialSamplingPercentage", 0))
        destination = config.get("DestinationS3Uri")
        if percentage <= 0 or not destination:
            return None
        modes = {o.get("CaptureMode") for o in config.get("CaptureOptions", [])}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination=str(destination),
            percentage=min(percentage, 100),
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            csv_types=frozenset(media_type(t) for t in header.get("CsvContentTypes", [])),
            json_types=frozenset(media_type(t) for t in header.get("JsonContentTypes", [])),
            kms_key_id=config.get("KmsKeyId") or None,
        )


def media_type(content_type: str) -> str:
    """`Text/CSV; charset=utf-8` -> `text/csv`."""
    return content_type.split(";", 1)[0].strip().lower()


__all__ = ["CaptureSettings", "media_type"]
