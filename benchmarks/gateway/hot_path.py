"""What the gateway adds per request, in-process: the key check (an HMAC and a constant-time
compare), the usage plan (bucket and counts), and the log line (to a file, as the platform
writes it). A complement to run.py, whose end-to-end numbers a busy machine blurs.

    .venv/bin/python benchmarks/gateway/hot_path.py

Prints the median of 5 repeats of 100,000 calls each, in microseconds per call.
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import timeit
from datetime import UTC, datetime
from pathlib import Path

from pier.control.api_keys import KeyRing, digest, new_key
from pier.control.usage_plans import Limiter
from pier.store.api_keys import StoredKey

CALLS = 100_000


def per_call_us(stmt: object) -> float:
    runs = timeit.repeat(stmt, number=CALLS, repeat=5)  # type: ignore[arg-type]
    return statistics.median(runs) / CALLS * 1e6


def main() -> int:
    secret = b"s" * 32
    made = new_key()
    key = StoredKey(made.key_id, "bench", digest(secret, made.key), datetime.now(UTC), None,
                    None, 1e9, 1_000_000_000, 10**12, 10**13)  # fmt: skip
    ring = KeyRing(secret, [key])
    limiter = Limiter()
    log = logging.getLogger("bench.gateway")
    log.propagate = False
    with tempfile.TemporaryDirectory() as tmp:
        handler = logging.FileHandler(Path(tmp) / "platform.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        results = {
            "key check (HMAC-SHA256 + compare_digest)": per_call_us(lambda: ring.check(made.key)),
            "usage plan (bucket + day/month counts)": per_call_us(
                lambda: limiter.admit(key, "bench")
            ),
            "log line (file handler)": per_call_us(
                lambda: log.info(
                    "gateway key=%s endpoint=%s status=%d latency_ms=%.2f",
                    key.key_id,
                    "bench",
                    200,
                    1.23,
                )
            ),
        }
        handler.close()
    for what, us in results.items():
        print(f"{what:<45} {us:6.2f} µs")
    print(f"{'total':<45} {sum(results.values()):6.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
