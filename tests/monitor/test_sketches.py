"""KLL sketches as weighted samples: read back exactly, and accurate enough to measure drift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pier.monitor.errors import MonitorError
from pier.monitor.stats.drift import linf_distance
from pier.monitor.stats.sketches import WeightedSample, kll_levels, new_kll

ROWS = 200_000


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2048)
    return {
        "normal": rng.standard_normal(ROWS),
        "shifted": rng.standard_normal(ROWS) + 0.05,
        "wider": rng.standard_normal(ROWS) * 1.1,
        "lognormal": rng.lognormal(0.0, 1.0, ROWS),
        "integers": rng.poisson(4.0, ROWS).astype(float),
    }


def sketched(values: np.ndarray, k: int = 2048) -> WeightedSample:
    sketch = new_kll(k)
    sketch.update(values)
    return WeightedSample.from_kll(sketch)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("normal", "shifted"),
        ("normal", "wider"),
        ("normal", "lognormal"),
        ("integers", "normal"),
        ("normal", "normal"),
    ],
)
def test_ks_distance_from_sketches_matches_exact(
    samples: dict[str, np.ndarray], a: str, b: str
) -> None:
    exact = stats.ks_2samp(samples[a], samples[b]).statistic
    from_sketches = linf_distance(sketched(samples[a]), sketched(samples[b]))
    assert from_sketches == pytest.approx(exact, abs=0.002)


def test_sketch_cdf_is_within_rank_error_of_the_data(samples: dict[str, np.ndarray]) -> None:
    for values in samples.values():
        exact = WeightedSample.from_values(values)
        assert linf_distance(sketched(values), exact) <= 0.002


def test_levels_weigh_exactly_what_the_sketch_saw(samples: dict[str, np.ndarray]) -> None:
    sketch = new_kll()
    sketch.update(samples["normal"])
    levels = kll_levels(sketch)
    assert len(levels) > 1  # estimation mode: items stand for 2**level values
    assert sum(len(level) << h for h, level in enumerate(levels)) == ROWS
    retained = np.concatenate(levels)
    assert sketch.get_min_value() <= retained.min()
    assert retained.max() <= sketch.get_max_value()
    sample = WeightedSample.from_levels(levels)
    assert sample.total == ROWS
    median = sample.quantiles([0.5])[0]
    assert median == pytest.approx(np.median(samples["normal"]), abs=0.01)


def test_small_and_empty_sketches() -> None:
    assert kll_levels(new_kll()) == []
    one = new_kll()
    one.update(np.array([3.5]))
    assert [list(level) for level in kll_levels(one)] == [[3.5]]
    few = new_kll()
    few.update(np.array([3.0, 1.0, 2.0, 2.0]))
    sample = WeightedSample.from_kll(few)
    assert sample.values.tolist() == [1.0, 2.0, 3.0]
    assert sample.weights.tolist() == [1.0, 2.0, 1.0]
    assert sample.cdf([0.0, 1.0, 2.5, 9.0]).tolist() == [0.0, 0.25, 0.75, 1.0]


def test_levels_from_a_sagemaker_sketch_carry_their_weights() -> None:
    sample = WeightedSample.from_levels([[4.0, 1.0], [2.0], [], [3.0]])
    assert sample.values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert sample.weights.tolist() == [1.0, 2.0, 8.0, 1.0]
    with pytest.raises(MonitorError, match="NaN or infinite"):
        WeightedSample.from_levels([[1.0, float("nan")]])


def test_buckets_split_the_weight_between_min_and_max() -> None:
    sample = WeightedSample.from_values(np.arange(100.0))
    buckets = sample.buckets(0.0, 99.0, 10)
    assert len(buckets) == 10
    assert sum(count for _, _, count in buckets) == 100
    assert buckets[0][0] == 0.0
    assert buckets[-1][1] == 99.0
    assert sample.buckets(5.0, 5.0) == [(5.0, 5.0, 100.0)]


def test_small_k_is_refused() -> None:
    with pytest.raises(MonitorError, match="kll_k must be between 1024"):
        new_kll(200)
