"""pier.control.usage_plans against a model: a token bucket written the obvious way (floats,
refill on every call) and per-period counters, driven by hypothesis through random waits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from pier.control.usage_plans import Limiter, retry_after
from pier.store.api_keys import StoredKey

START = datetime(2026, 12, 31, 23, 59, 0, tzinfo=UTC).timestamp()  # a day and a month end


def key(rate: float | None, burst: int | None, day: int | None, month: int | None) -> StoredKey:
    return StoredKey("k", "n", "d", datetime(2026, 1, 1, tzinfo=UTC), None, None,
                     rate, burst, day, month)  # fmt: skip


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Model:
    """What the plan promises, computed from the whole history each time."""

    rate: float | None
    burst: float
    quota_day: int | None
    quota_month: int | None
    tokens: float
    last: float
    counted: list[float]  # times of admitted requests

    def admit(self, now: float) -> bool:
        day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
        month = day[:7]
        days = [
            t for t in self.counted if datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d") == day
        ]
        months = [
            t for t in self.counted if datetime.fromtimestamp(t, UTC).strftime("%Y-%m") == month
        ]
        if self.quota_day is not None and len(days) >= self.quota_day:
            return False
        if self.quota_month is not None and len(months) >= self.quota_month:
            return False
        if self.rate is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
        self.counted.append(now)
        return True


@settings(max_examples=200, deadline=None)
@given(
    rate=st.one_of(st.none(), st.floats(0.1, 50)),
    burst=st.one_of(st.none(), st.integers(1, 20)),
    day=st.one_of(st.none(), st.integers(1, 30)),
    month=st.one_of(st.none(), st.integers(1, 60)),
    waits=st.lists(st.floats(0, 40), min_size=1, max_size=80),
)
def test_the_limiter_admits_what_the_model_admits(
    rate: float | None, burst: int | None, day: int | None, month: int | None,
    waits: list[float],
) -> None:  # fmt: skip
    clock = Clock()
    limiter = Limiter(clock=clock, monotonic=clock)
    plan = key(rate, burst if rate is not None else None, day, month)
    full = float(burst) if burst is not None and rate is not None else max(1.0, rate or 1.0)
    model = Model(rate, full, day, month, full, clock.now, [])
    for wait in waits:
        clock.now += wait
        wait_s = limiter.admit(plan, "e")
        assert (wait_s is None) == model.admit(clock.now), (clock.now, wait)
        if wait_s is not None:
            assert wait_s >= 0
            assert retry_after(wait_s) >= 1
    counts = {c.period: c for c in limiter.dirty_counts()}
    today = datetime.fromtimestamp(clock.now, UTC)
    assert counts[today.strftime("%Y-%m-%d")].requests == sum(
        1 for t in model.counted
        if datetime.fromtimestamp(t, UTC).date() == today.date()
    )  # fmt: skip
    assert counts[today.strftime("%Y-%m")].requests == sum(
        1 for t in model.counted
        if datetime.fromtimestamp(t, UTC).strftime("%Y-%m") == today.strftime("%Y-%m")
    )  # fmt: skip


def test_a_refusal_says_when_to_retry() -> None:
    clock = Clock()
    limiter = Limiter(clock=clock, monotonic=clock)
    assert limiter.admit(key(0.5, 1, None, None), "e") is None
    assert limiter.admit(key(0.5, 1, None, None), "e") == 2.0  # one token at 0.5/s
    assert limiter.admit(key(None, None, 0, None), "other") == 60.0  # the day ends in 60 s
    # a month's quota waits for the month's end; each endpoint has its own counts
    assert limiter.admit(key(None, None, None, 1), "m") is None
    assert limiter.admit(key(None, None, None, 1), "m") == 60.0
    assert limiter.admit(key(None, None, None, 1), "n") is None


def test_a_revoked_key_is_forgotten() -> None:
    clock = Clock()
    limiter = Limiter(clock=clock, monotonic=clock)
    limiter.admit(key(1, 1, None, None), "e")
    limiter.forget("k")
    assert limiter.dirty_counts() == []
    assert limiter.admit(key(1, 1, None, None), "e") is None  # a fresh bucket
