"""The model-quality job: an endpoint's captured predictions of a window joined with its ground
truth, as `pier quality` shows them.

The capture destination is the endpoint's DataCaptureConfig.DestinationS3Uri (`file:relative`
under the platform's capture directory); the ground truth is read from `store`. Lines that
cannot be read are counted, with the first one's file, number and problem, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pier.monitor.quality.captures import CaptureWindow, read_captures
from pier.monitor.quality.ground_truth import GroundTruthStore, GroundTruthWindow
from pier.monitor.quality.quality import QualityOptions, QualityReport, compute
from pier.storage import S3ClientFactory, resolve, s3_client


@dataclass(frozen=True)
class QualityRun:
    """A quality report with what it was computed from."""

    report: QualityReport
    captured: CaptureWindow
    labels: GroundTruthWindow


def run_quality(
    endpoint: str,
    capture_uri: str,
    capture_base: Path,
    store: GroundTruthStore,
    options: QualityOptions,
    start: float,
    end: float,
    s3: S3ClientFactory = s3_client,
) -> QualityRun:
    """Model quality of `endpoint` over [start, end] (epoch seconds).

    Raises ValueError when pier cannot read `capture_uri`, QualityError (also a ValueError)
    when the records cannot be scored with `options`, and botocore's errors for S3.
    """
    destination = resolve(capture_uri, capture_base)
    captured = read_captures(destination, endpoint, start, end, s3)
    labels = store.read(endpoint, start, end)
    report = compute(captured.captures, labels, options, start, end)
    return QualityRun(report, captured, labels)


__all__ = ["QualityRun", "run_quality"]
