"""Usage plans: rate and burst (a token bucket) and daily/monthly quotas, per key and endpoint.

Each (key, endpoint) pair has its own bucket and its own counts: a key with ``rate=10`` that
may call two endpoints may call each ten times a second. Everything is in memory (one dict
look-up and a few float operations per request: the gateway's hot path); the counts are
written to the store every few seconds (`dirty_counts`) and read back on start (`restore`).

A request is refused, with the seconds after which a retry can succeed, when:
- its bucket holds less than one token (the bucket holds `burst` tokens, refilled at `rate`
  per second; `burst` defaults to max(1, rate)): retry after the time one token takes;
- the day's or month's count has reached its quota (UTC periods): retry at the period's end.
Refused requests are counted as throttled, and not against the quota.

Written here rather than taken from a library (pyrate-limiter, limits): those keep their
state in their own backends and cost several function calls and allocations per request;
this is a dozen lines, and tests/gateway/test_usage_plans.py checks it against a model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from pier.store.api_keys import StoredKey, UsageCount

__all__ = ["Limiter", "day_period", "month_period", "retry_after"]


def day_period(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def month_period(t: datetime) -> str:
    return t.strftime("%Y-%m")


class _Count:
    __slots__ = (
        "day",
        "day_requests",
        "month",
        "month_requests",
        "throttled_day",
        "throttled_month",
    )

    def __init__(self, day: str, month: str) -> None:
        self.day, self.month = day, month
        self.day_requests = self.month_requests = 0
        self.throttled_day = self.throttled_month = 0


class _Periods:
    """The current UTC day and month, and when each ends (recomputed only when one does)."""

    __slots__ = ("day", "day_end", "month", "month_end")

    def __init__(self, now: float) -> None:
        t = datetime.fromtimestamp(now, UTC)
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        self.day, self.day_end = day_period(t), (start + timedelta(days=1)).timestamp()
        first = start.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        self.month, self.month_end = month_period(t), following.timestamp()


class Limiter:
    """Admits or refuses requests of a key to an endpoint, and counts them."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._buckets: dict[tuple[str, str], list[float]] = {}  # [tokens, last refill]
        self._counts: dict[tuple[str, str], _Count] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._periods = _Periods(clock())

    def admit(self, key: StoredKey, endpoint: str) -> float | None:
        """None: admitted and counted. Else refused: the seconds until a retry can pass."""
        pair = (key.key_id, endpoint)
        now = self._clock()
        periods = self._periods
        if now >= periods.day_end:
            periods = self._periods = _Periods(now)
        count = self._counts.get(pair)
        if count is None or count.day != periods.day or count.month != periods.month:
            count = self._roll(pair, count, periods)
        self._dirty.add(pair)
        if key.quota_day is not None and count.day_requests >= key.quota_day:
            return self._throttled(count, periods.day_end - now)
        if key.quota_month is not None and count.month_requests >= key.quota_month:
            return self._throttled(count, periods.month_end - now)
        if key.rate is not None:
            burst = float(key.burst) if key.burst is not None else max(1.0, key.rate)
            tick = self._monotonic()
            bucket = self._buckets.get(pair)
            if bucket is None:
                bucket = self._buckets[pair] = [burst, tick]
            tokens = min(burst, bucket[0] + (tick - bucket[1]) * key.rate)
            bucket[1] = tick
            if tokens < 1.0:
                bucket[0] = tokens
                return self._throttled(count, (1.0 - tokens) / key.rate)
            bucket[0] = tokens - 1.0
        count.day_requests += 1
        count.month_requests += 1
        return None

    @staticmethod
    def _throttled(count: _Count, seconds: float) -> float:
        count.throttled_day += 1
        count.throttled_month += 1
        return max(seconds, 0.0)

    def _roll(self, pair: tuple[str, str], old: _Count | None, periods: _Periods) -> _Count:
        new = _Count(periods.day, periods.month)
        if old is not None and old.month == periods.month:  # a new day of the same month
            new.month_requests, new.throttled_month = old.month_requests, old.throttled_month
        self._counts[pair] = new
        return new

    def forget(self, key_id: str) -> None:
        """Drop a key's buckets and counts (it was revoked; its stored counts stay)."""
        for pair in [p for p in self._counts if p[0] == key_id]:
            self._counts.pop(pair, None)
            self._buckets.pop(pair, None)
            self._dirty.discard(pair)

    def dirty_counts(self) -> list[UsageCount]:
        """The counts changed since the last call, as rows for the store (day and month)."""
        out: list[UsageCount] = []
        for pair in self._dirty:
            c = self._counts.get(pair)
            if c is None:
                continue
            key_id, endpoint = pair
            out.append(UsageCount(key_id, endpoint, c.day, c.day_requests, c.throttled_day))
            out.append(UsageCount(key_id, endpoint, c.month, c.month_requests, c.throttled_month))
        self._dirty = set()
        return out

    def periods(self) -> tuple[str, str]:
        """The current (day, month) periods."""
        now = self._clock()
        if now >= self._periods.day_end:
            self._periods = _Periods(now)
        return self._periods.day, self._periods.month

    def restore(self, counts: Iterable[UsageCount]) -> None:
        """Take up the stored counts of the current day and month (at start)."""
        day, month = self.periods()
        for u in counts:
            pair = (u.key_id, u.endpoint)
            c = self._counts.get(pair)
            if c is None:
                c = self._counts[pair] = _Count(day, month)
            if u.period == day:
                c.day_requests, c.throttled_day = u.requests, u.throttled
            elif u.period == month:
                c.month_requests, c.throttled_month = u.requests, u.throttled


def retry_after(seconds: float) -> int:
    """Retry-After's whole seconds for a wait (at least 1)."""
    return max(1, math.ceil(seconds))
