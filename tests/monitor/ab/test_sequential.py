"""The always-valid comparison tested like a statistician would: over many simulated experiments
(seeded), checked after every batch, the false-decision rate under no true difference stays at
or below alpha (within a one-sided binomial margin of the simulation's own noise), the interval
covers the true difference at every look at once, and a real difference is found, on the right
side."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from pier.monitor.ab.sequential import (
    MIN_N,
    Moments,
    Verdict,
    compare,
    half_width,
    log_ratio,
)

ALPHA = 0.05
EXPERIMENTS = 2000
BATCHES = 40


def tolerated(alpha: float, n: int = EXPERIMENTS) -> int:
    """The most false decisions that n experiments at a true rate alpha give with probability
    0.999: above it, the true rate is above alpha."""
    return int(binom.ppf(0.999, n, alpha))


def bernoulli_experiments(
    rng: np.random.Generator, p_control: float, p_variant: float, per_batch: int, share: float
) -> list[list[tuple[Moments, Moments]]]:
    """EXPERIMENTS experiments of BATCHES batches of `per_batch` requests, `share` of them to
    the variant; each a list of looks at the cumulative counts."""
    n_var = rng.binomial(per_batch, share, (EXPERIMENTS, BATCHES))
    n_ctl = per_batch - n_var
    k_ctl = np.cumsum(rng.binomial(n_ctl, p_control), axis=1)
    k_var = np.cumsum(rng.binomial(n_var, p_variant), axis=1)
    n_ctl, n_var = np.cumsum(n_ctl, axis=1), np.cumsum(n_var, axis=1)
    return [
        [
            (
                Moments.bernoulli(n_ctl[e, b], k_ctl[e, b]),
                Moments.bernoulli(n_var[e, b], k_var[e, b]),
            )
            for b in range(BATCHES)
        ]
        for e in range(EXPERIMENTS)
    ]


@pytest.mark.parametrize(
    ("p", "share"),
    [(0.05, 0.5), (0.02, 0.2), (0.3, 0.1)],
    ids=["5%-even", "2%-skewed-80-20", "30%-skewed-90-10"],
)
def test_no_difference_false_decisions_stay_below_alpha_when_peeking_every_batch(
    p: float, share: float
) -> None:
    rng = np.random.default_rng(20260412)
    experiments = bernoulli_experiments(rng, p, p, per_batch=200, share=share)
    false = 0
    for looks in experiments:
        # peeking: a decision at ANY look counts, which is what compare() carries forward
        result = compare(looks, lower_is_better=True, alpha=ALPHA)
        false += result.verdict is not Verdict.NO_DECISION
    assert false <= tolerated(ALPHA), f"{false} false decisions in {EXPERIMENTS}"


def test_peeking_at_a_fixed_sample_test_would_have_failed_the_same_check() -> None:
    """The check has teeth: the classic fixed-sample z-test, read after every batch on the same
    simulated data, decides far more often than alpha."""
    rng = np.random.default_rng(7)
    false = 0
    for looks in bernoulli_experiments(rng, 0.05, 0.05, per_batch=200, share=0.5):
        for c, v in looks:
            se = math.sqrt(c.variance / c.n + v.variance / v.n)
            if abs(v.mean - c.mean) > 1.96 * se:
                false += 1
                break
    assert false > 2 * tolerated(ALPHA)


def test_the_interval_covers_the_true_difference_at_every_look_at_once() -> None:
    rng = np.random.default_rng(11)
    missed = 0
    for looks in bernoulli_experiments(rng, 0.10, 0.13, per_batch=200, share=0.5):
        result = compare(looks, lower_is_better=True, alpha=ALPHA)
        missed += not result.lower <= 0.03 <= result.upper
    assert missed <= tolerated(ALPHA)


def test_a_real_difference_is_found_on_the_right_side() -> None:
    rng = np.random.default_rng(3)
    worse = better = 0
    for looks in bernoulli_experiments(rng, 0.05, 0.08, per_batch=200, share=0.5):
        verdict = compare(looks, lower_is_better=True, alpha=ALPHA).verdict
        worse += verdict is Verdict.WORSE
        better += verdict is Verdict.BETTER
    assert worse >= 0.9 * EXPERIMENTS
    assert better <= tolerated(ALPHA)
    # the same data where higher is better (an accuracy): the variant is better
    looks = bernoulli_experiments(np.random.default_rng(3), 0.05, 0.08, 200, 0.5)[0]
    assert compare(looks, lower_is_better=False).verdict is Verdict.BETTER


def test_batch_means_latency_false_decisions_stay_below_alpha() -> None:
    """Latency known only as per-minute counts and averages (CloudWatch's), skewed
    (lognormal), unequal traffic: checked after every minute."""
    rng = np.random.default_rng(5)
    minutes, experiments = 30, 1000
    false = 0
    for _ in range(experiments):
        looks, arms = [], ([], [], [], [])
        for _m in range(minutes):
            for i, rate in enumerate((40, 8)):
                n = int(rng.poisson(rate))
                arms[2 * i].append(n)
                arms[2 * i + 1].append(float(rng.lognormal(3.0, 1.0, n).mean()) if n else 0.0)
            looks.append(
                (Moments.batch_means(arms[0], arms[1]), Moments.batch_means(arms[2], arms[3]))
            )
        false += compare(looks, lower_is_better=True).verdict is not Verdict.NO_DECISION
    assert false <= tolerated(ALPHA, experiments)


def test_batch_means_agree_with_the_per_observation_moments() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(10.0, 2.0, 400) for _ in range(50)]
    m = Moments.batch_means([b.size for b in batches], [b.mean() for b in batches])
    whole = Moments.of(np.concatenate(batches).tolist())
    assert m.n == whole.n
    assert m.mean == pytest.approx(whole.mean)
    assert m.variance == pytest.approx(4.0, rel=0.3)  # σ² = 4, from 50 batch means
    assert math.isnan(Moments.batch_means([10, 10], [1.0, 2.0]).variance)  # too few batches


def test_the_interval_is_the_set_where_the_mixture_ratio_stays_below_one_over_alpha() -> None:
    v, tau2, d = 0.01, 0.02, 0.4
    w = half_width(v, tau2, ALPHA)
    # Λ(θ) at the interval's ends is exactly 1/α: log Λ of the difference d − θ
    assert log_ratio(w, v, tau2) == pytest.approx(math.log(1 / ALPHA))
    assert log_ratio(d - (d - w * 0.99), v, tau2) < math.log(1 / ALPHA)


def test_nothing_is_decided_before_each_arm_has_min_n_observations() -> None:
    small = MIN_N - 1
    looks = [(Moments.bernoulli(small, 0), Moments.bernoulli(small, small))]
    result = compare(looks, lower_is_better=True)
    assert result.verdict is Verdict.NO_DECISION
    assert result.p_value == 1.0
    assert (result.lower, result.upper) == (-math.inf, math.inf)
    assert compare([], lower_is_better=True).verdict is Verdict.NO_DECISION
    with pytest.raises(ValueError, match="alpha"):
        compare(looks, lower_is_better=True, alpha=1.5)
