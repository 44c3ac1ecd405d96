"""Always-valid comparison of two means: the mixture sequential probability ratio test (mSPRT).

The method is the normal-mixture mSPRT of Johari, Koomen, Pekelis and Walsh, "Peeking at A/B
tests: why it matters, and what to do about it" (KDD 2017; "Always valid inference", Operations
Research 2022), which is Robbins' normal-mixture confidence sequence (Howard, Ramdas,
McAuliffe and Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
Annals of Statistics 2021, eq. (14)). With θ̂ the difference of the two arms' means
(treatment − control), V = σ²_c/n_c + σ²_t/n_t its variance, and a normal mixing distribution
N(0, τ²) over the true difference, the mixture likelihood ratio against θ is

    Λ(θ) = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ)² / (2 V (V + τ²)))

and {θ : Λ(θ) < 1/α} is the interval θ̂ ± sqrt(V (V + τ²) / τ² · (2 log(1/α) + log((V + τ²)/V))).
Under the null Λ is a nonnegative martingale, so by Ville's inequality the probability that it
EVER crosses 1/α is at most α: the interval covers the true difference at every moment at once,
and the always-valid p-value min(1, 1/max Λ(0)) can be read after every batch, as often as one
likes, without raising the false-decision rate above α.

Assumptions (said in docs/ab.md too):
- observations of one arm are independent and identically distributed (stationary traffic,
  no carry-over between arms); the arms are independent of each other;
- the variances are estimated from the data (plug-in), which makes the guarantee asymptotic
  (Waudby-Smith et al., "Time-uniform central limit theory", 2021): nothing is decided before
  each arm has `min_n` observations, and the tests measure the error rate that results;
- τ² is fixed by `plan`: the interval is tightest when each arm has about `plan` observations
  (τ² = (σ²_c + σ²_t) / plan); any τ² keeps the guarantee, only the power moves.

Why hand-written rather than a library: scipy has no sequential tests, and the formula is the
few lines below; the simulations in tests/monitor/ab check its error rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

ALPHA = 0.05
PLAN = 1000.0
MIN_N = 100.0
MIN_BATCHES = 5  # batch means: fewer batches say too little about the spread


@dataclass(frozen=True)
class Moments:
    """One arm's sufficient statistics: observations, their mean and per-observation variance."""

    n: float
    mean: float
    variance: float

    @staticmethod
    def bernoulli(trials: float, successes: float) -> Moments:
        """`successes` of `trials` (an error rate, an accuracy): mean p = successes / trials,
        variance p̃(1 − p̃) with p̃ = (successes + 1) / (trials + 2) (Laplace's rule), so that a
        rare event seen a few times, or not at all, is not taken for a certainty: the plug-in
        p(1 − p) makes the interval too narrow on small counts (the simulations show it)."""
        if trials <= 0:
            return Moments(0.0, math.nan, math.nan)
        smoothed = (successes + 1.0) / (trials + 2.0)
        return Moments(float(trials), successes / trials, smoothed * (1.0 - smoothed))

    @staticmethod
    def of(values: Sequence[float]) -> Moments:
        """Moments of individual observations (unbiased variance)."""
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            return Moments(0.0, math.nan, math.nan)
        return Moments(float(x.size), float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else 0.0)

    @staticmethod
    def batch_means(counts: Sequence[float], means: Sequence[float]) -> Moments:
        """Per-observation moments from batches known only by their size and mean (CloudWatch's
        per-minute SampleCount and Average): the mean is the weighted mean, and the variance of
        one observation is estimated from how the batch means spread, Σ nᵢ (mᵢ − m̄)² / (k − 1),
        since a batch of nᵢ independent observations has a mean of variance σ²/nᵢ. Unknown
        (nan: no decision) before MIN_BATCHES batches."""
        n = np.asarray(counts, dtype=np.float64)
        m = np.asarray(means, dtype=np.float64)
        keep = n > 0
        n, m = n[keep], m[keep]
        total = float(n.sum())
        if total <= 0:
            return Moments(0.0, math.nan, math.nan)
        mean = float(np.dot(n, m) / total)
        k = n.size
        variance = float(np.dot(n, (m - mean) ** 2) / (k - 1)) if k >= MIN_BATCHES else math.nan
        return Moments(total, mean, variance)


class Verdict(StrEnum):
    NO_DECISION = "no decision yet"
    BETTER = "better"
    WORSE = "worse"


@dataclass(frozen=True)
class Comparison:
    """Treatment against control: the latest difference of means, the always-valid interval
    (the intersection of every interval seen so far) and p-value, and the verdict."""

    difference: float
    lower: float
    upper: float
    p_value: float
    verdict: Verdict
    n_control: float
    n_treatment: float
    alpha: float


def half_width(v: float, tau2: float, alpha: float) -> float:
    """Half the mSPRT interval's width at variance `v` of the difference (module docstring)."""
    return math.sqrt(
        v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((v + tau2) / v))
    )


def log_ratio(difference: float, v: float, tau2: float) -> float:
    """log Λ(0): the mixture likelihood ratio of a difference of 0, at variance `v`."""
    return 0.5 * math.log(v / (v + tau2)) + tau2 * difference**2 / (2.0 * v * (v + tau2))


def compare(
    steps: Iterable[tuple[Moments, Moments]],
    *,
    lower_is_better: bool,
    alpha: float = ALPHA,
    plan: float = PLAN,
    min_n: float = MIN_N,
) -> Comparison:
    """The always-valid comparison over a sequence of looks at (control, treatment), each the
    cumulative moments so far. A look where an arm has fewer than `min_n` observations, or the
    difference has no variance yet, adds nothing. The verdict is BETTER or WORSE once the
    p-value is at most `alpha` (0 is then outside the interval), by the side the treatment is
    on and whether lower values are better; NO_DECISION before that."""
    if not 0 < alpha < 1 or plan <= 0:
        raise ValueError("alpha must be in (0, 1) and plan above 0")
    lower, upper, best = -math.inf, math.inf, -math.inf
    last: tuple[Moments, Moments] | None = None
    for control, treatment in steps:
        last = (control, treatment)
        if control.n < min_n or treatment.n < min_n:
            continue
        v = control.variance / control.n + treatment.variance / treatment.n
        if not v > 0:  # nan (one batch) or 0 (no error on either side yet)
            continue
        tau2 = (control.variance + treatment.variance) / plan
        d = treatment.mean - control.mean
        w = half_width(v, tau2, alpha)
        lower, upper = max(lower, d - w), min(upper, d + w)
        best = max(best, log_ratio(d, v, tau2))
    if last is None:
        return Comparison(math.nan, -math.inf, math.inf, 1.0, Verdict.NO_DECISION, 0, 0, alpha)
    control, treatment = last
    p = min(1.0, math.exp(-best)) if best > -math.inf else 1.0
    verdict = Verdict.NO_DECISION
    if p <= alpha and (lower > 0 or upper < 0):
        higher = lower > 0
        verdict = Verdict.WORSE if higher == lower_is_better else Verdict.BETTER
    return Comparison(
        treatment.mean - control.mean, lower, upper, p, verdict, control.n, treatment.n, alpha
    )


__all__ = [
    "ALPHA",
    "MIN_BATCHES",
    "MIN_N",
    "PLAN",
    "Comparison",
    "Moments",
    "Verdict",
    "compare",
    "half_width",
    "log_ratio",
]
