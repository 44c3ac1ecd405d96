"""The in-process limit: predict calls per second with no HTTP and no server at all."""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CallTiming:
    label: str
    rows: int
    calls_per_s: float
    median_ms: float

    @property
    def rows_per_s(self) -> float:
        return self.calls_per_s * self.rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rows": self.rows,
            "calls_per_s": self.calls_per_s,
            "rows_per_s": self.rows_per_s,
            "median_ms": self.median_ms,
        }


def merge_rounds(rounds: list[list[CallTiming]]) -> list[CallTiming]:
    """Per case, the median calls/s and the median per-call time over the rounds."""
    by_label: dict[str, list[CallTiming]] = {}
    for timings in rounds:
        for t in timings:
            by_label.setdefault(t.label, []).append(t)
    return [
        CallTiming(
            label,
            ts[0].rows,
            statistics.median(t.calls_per_s for t in ts),
            statistics.median(t.median_ms for t in ts),
        )
        for label, ts in by_label.items()
    ]


def time_calls(label: str, rows: int, fn: Callable[[], Any], seconds: float) -> CallTiming:
    """Call `fn` back to back for about `seconds` (after a few warm-up calls)."""
    for _ in range(5):
        fn()
    durations: list[float] = []
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        durations.append(t1 - t0)
        if t1 - started >= seconds and len(durations) >= 20:
            break
    elapsed = time.perf_counter() - started
    return CallTiming(label, rows, len(durations) / elapsed, statistics.median(durations) * 1e3)


def measure(model_dir: Path, frame: Any, body_1row: bytes, seconds: float) -> list[CallTiming]:
    """pyfunc predict, raw scikit-learn predict, and pier's request path without HTTP.

    `frame` is the diabetes feature DataFrame; `body_1row` a 1-row JSON request body.
    """
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    raw = pyfunc.get_raw_model()
    one, hundred = frame.iloc[:1], frame.iloc[:100]
    one_array = one.to_numpy()
    timings = [
        time_calls("pyfunc.predict, 1-row DataFrame", 1, lambda: pyfunc.predict(one), seconds),
        time_calls("sklearn predict, 1-row DataFrame", 1, lambda: raw.predict(one), seconds),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "X does not have valid feature names"
        timings.append(
            time_calls("sklearn predict, 1-row ndarray", 1, lambda: raw.predict(one_array), seconds)
        )
    timings.append(
        time_calls("sklearn predict, 100-row DataFrame", 100, lambda: raw.predict(hundred), seconds)
    )
    timings.append(_pier_request_path(model_dir, body_1row, seconds))
    return timings


def _pier_request_path(model_dir: Path, body: bytes, seconds: float) -> CallTiming:
    """What `pier serve` does per 1-row JSON request, minus HTTP and the event loop."""
    from pier.contract.content_types import JSON, MediaType
    from pier.serving import codecs
    from pier.serving.mlflow_runtime import MlflowRuntime

    runtime = MlflowRuntime.load(str(model_dir))
    # The plain path waits for MLflow's own load, which the quick loader runs in the background:
    # let it finish before timing anything.
    runtime.decode(body, MediaType(JSON))

    def request() -> bytes:
        prepared = codecs.decode_json_fast(body, runtime.fast_schema)
        assert prepared is not None, "the benchmark body should take pier's fast path"
        return codecs.dumps_json(codecs.to_jsonable(runtime.predict(prepared)))

    return time_calls("pier decode + predict + encode, 1 row", 1, request, seconds)
