"""Profiles: SageMaker's type inference, exact counts and moments, and the merge property
profile(A ∪ B) == merge(profile(A), profile(B))."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pier.monitor.errors import MonitorError
from pier.monitor.stats.drift import linf_distance
from pier.monitor.stats.profile import DatasetProfile, FeatureProfile, merge_profiles, profile_frame
from pier.monitor.stats.summaries import NumericSummary, StringSummary
from tests.monitor.data import tabular


def mixed(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Numbers with gaps, integers with gaps, a wide string column and mixed objects."""
    frame = tabular(rng, n, numeric=2)
    frame.loc[rng.random(n) < 0.05, "x1"] = np.nan
    frame["ints"] = pd.array(rng.integers(-5, 50, n), dtype="Int64")
    frame.loc[rng.random(n) < 0.1, "ints"] = pd.NA
    frame["ids"] = [f"user-{i}" for i in rng.integers(0, 3000, n)]
    objects = np.array([1, 2.5, "n/a", None, "7", True], dtype=object)
    frame["objects"] = objects[rng.integers(0, len(objects), n)]
    return frame


def assert_same(merged: DatasetProfile, whole: DatasetProfile) -> None:
    assert merged.item_count == whole.item_count
    assert list(merged.features) == list(whole.features)
    for name, a in merged.features.items():
        b = whole.features[name]
        counts = ("num_missing", "integral", "fractional", "string")
        assert [getattr(a, c) for c in counts] == [getattr(b, c) for c in counts], name
        assert a.inferred_type == b.inferred_type
        if b.numeric is None:
            assert a.numeric is None
        else:
            assert a.numeric is not None
            assert a.numeric.count == b.numeric.count
            assert (a.numeric.minimum, a.numeric.maximum) == (b.numeric.minimum, b.numeric.maximum)
            assert a.numeric.total == pytest.approx(b.numeric.total, rel=1e-12, abs=1e-9)
            assert a.numeric.std_dev == pytest.approx(b.numeric.std_dev, rel=1e-10)
            assert a.numeric.sketch.n == b.numeric.sketch.n
            # Sketches differ in which items they keep, within the rank error (2 × 0.0017).
            assert linf_distance(a.numeric.sample(), b.numeric.sample()) <= 0.004
        if b.strings is None:
            assert a.strings is None
        else:
            assert a.strings is not None
            assert a.strings.total == b.strings.total
            if b.strings.exact:
                assert a.strings.counts == b.strings.counts
            else:
                assert a.strings.distinct_count() == pytest.approx(
                    b.strings.distinct_count(), rel=0.05
                )
                top_a, top_b = dict(a.strings.top(5)), dict(b.strings.top(5))
                bound = 0.01 * b.strings.total
                assert all(abs(top_a.get(k, 0) - v) <= bound for k, v in top_b.items())


@pytest.mark.parametrize("seed", range(8))
def test_merge_equals_profile_of_the_union(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = mixed(rng, int(rng.integers(2_000, 30_000)))
    cuts = np.sort(
        rng.choice(np.arange(1, len(frame)), size=int(rng.integers(1, 5)), replace=False)
    )
    bounds = [0, *cuts.tolist(), len(frame)]
    parts = [frame.iloc[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    merged = merge_profiles(profile_frame(part, string_cap=1000) for part in parts)
    assert_same(merged, profile_frame(frame, string_cap=1000))


def test_merge_is_associative_and_leaves_its_inputs_alone() -> None:
    rng = np.random.default_rng(11)
    a, b, c = (profile_frame(mixed(rng, 4000)) for _ in range(3))
    before = a.to_json()
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    assert_same(left, right)
    assert a.to_json() == before


def test_merging_different_columns_counts_the_gaps_as_missing() -> None:
    first = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    second = pd.DataFrame({"a": [3.0], "c": [7]})
    merged = merge_profiles([profile_frame(first), profile_frame(second)])
    # concat turns the integers with a gap into floats; nullable Int64 keeps them Integral.
    union = pd.concat([first, second], ignore_index=True).astype({"c": "Int64"})
    assert_same(merged, profile_frame(union))
    assert merged.features["b"].num_missing == 1
    assert merged.features["c"].num_missing == 2
    batches = profile_frame(iter([first, second]))
    assert_same(batches, merged)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=300),
    st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=300),
)
def test_numeric_summary_merge_is_exact(a: list[float], b: list[float]) -> None:
    left, right, whole = NumericSummary(), NumericSummary(), NumericSummary()
    left.update(np.array(a))
    right.update(np.array(b))
    whole.update(np.array(a + b))
    left.merge(right)
    assert left.count == whole.count == len(a) + len(b)
    assert (left.minimum, left.maximum) == (whole.minimum, whole.maximum)
    if whole.count:
        scale = max(1.0, *map(abs, a + b))
        assert math.isclose(left.total, whole.total, rel_tol=1e-12, abs_tol=1e-9 * scale)
        assert math.isclose(left.std_dev, whole.std_dev, rel_tol=1e-9, abs_tol=1e-9 * scale)
        # Below k values a KLL sketch keeps them all: merged and whole are the same data.
        assert linf_distance(left.sample(), whole.sample()) == 0.0


def test_types_are_inferred_as_sagemaker_does() -> None:
    frame = pd.DataFrame(
        {
            "floats": [1.0, 2.0, np.nan],
            "ints": [1, 2, 3],
            "text_ints": ["1", " 2", "-3"],
            "text_floats": ["1.5", "2", "1e-3"],
            "words": ["a", "1", None],
            "flags": [True, False, True],
            "empty": [np.nan, np.nan, np.nan],
            "blank": ["", " ", None],
            "infinite": [1.0, np.inf, 2.0],
        }
    )
    profile = profile_frame(frame)
    kinds = {name: str(f.inferred_type) for name, f in profile.features.items()}
    assert kinds == {
        "floats": "Fractional",
        "ints": "Integral",
        "text_ints": "Integral",
        "text_floats": "Fractional",
        "words": "String",
        "flags": "String",
        "empty": "Unknown",
        "blank": "Unknown",
        "infinite": "String",
    }
    words = profile.features["words"]
    assert (words.integral, words.string, words.num_missing) == (1, 1, 1)
    assert words.strings is not None
    assert words.strings.counts == {"a": 1, "1": 1}
    text = profile.features["text_floats"].numeric
    assert text is not None
    assert text.total == pytest.approx(3.501)
    assert profile.features["blank"].num_missing == 3


def test_arrow_batches_and_tables() -> None:
    frame = tabular(np.random.default_rng(3), 1000)
    table = pa.Table.from_pandas(frame)
    from_batches = profile_frame(table.to_batches(max_chunksize=300))
    assert_same(from_batches, profile_frame(frame))
    assert_same(profile_frame(table), profile_frame(frame))


def test_profiles_serialize_and_come_back() -> None:
    rng = np.random.default_rng(5)
    profile = profile_frame(mixed(rng, 20_000), string_cap=500)
    assert profile.features["ids"].strings is not None
    assert not profile.features["ids"].strings.exact  # 3000 distinct ids > cap: sketched
    again = DatasetProfile.from_bytes(profile.to_bytes())
    # (byte-equal JSON is not promised: a frequent-items sketch re-serializes in hash order)
    assert_same(again, profile)
    # A stored profile still merges: roll up from storage.
    assert_same(again.merge(profile), profile.merge(profile))


def test_string_counts_switch_to_sketches_beyond_the_cap() -> None:
    summary = StringSummary(cap=10)
    summary.update({f"v{i}": i + 1 for i in range(10)})
    assert summary.exact
    assert summary.distinct_count() == 10
    summary.update({"v99": 1000})
    assert not summary.exact
    assert summary.distinct_count() == 11
    assert summary.top(1) == [("v99", 1000)]
    assert summary.total == 1000 + sum(range(1, 11))
    exact = StringSummary(cap=10)
    exact.update({"v0": 5})
    exact.merge(summary)
    assert not exact.exact
    assert exact.count_of("v0") == 6


def test_unusable_input_is_refused_clearly() -> None:
    with pytest.raises(MonitorError, match="kll_k must be between 1024"):
        profile_frame(pd.DataFrame({"a": [1.0]}), kll_k=100)
    with pytest.raises(MonitorError, match="duplicate column names"):
        profile_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(MonitorError, match="different"):
        merge_profiles([DatasetProfile(kll_k=1024), DatasetProfile(kll_k=2048)])
    with pytest.raises(MonitorError, match="nothing to merge"):
        merge_profiles([])
    with pytest.raises(MonitorError, match="not a pier profile"):
        DatasetProfile.from_json('{"format": "other"}')
    with pytest.raises(MonitorError, match="must be JSON"):
        DatasetProfile.from_json("{")
    with pytest.raises(MonitorError, match="malformed"):
        DatasetProfile.from_json('{"format": "pier.monitor.stats.profile/1", "kll_k": 2048}')
    with pytest.raises(MonitorError, match="pass a DataFrame"):
        DatasetProfile().update([1, 2])  # type: ignore[arg-type]


def test_feature_completeness() -> None:
    feature = FeatureProfile("a")
    assert feature.completeness == 1.0
    feature.update(pd.Series([1.0, np.nan, 3.0, np.nan]))
    assert feature.completeness == 0.5


def test_pandas_extension_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "category": pd.Categorical(["a", "b", None], categories=["a", "b", "unused"]),
            "boolean": pd.array([True, None, False], dtype="boolean"),
            "dates": pd.to_datetime(["2024-01-01", None, "2024-01-02"]),
            "uint8": np.array([1, 2, 3], dtype="uint8"),
            "float32": np.array([1.5, np.nan, 2], dtype="float32"),
            "Float64": pd.array([1.5, None, 2.0], dtype="Float64"),
        }
    )
    profile = profile_frame(frame)
    summary = {
        name: (str(f.inferred_type), f.num_present, f.num_missing)
        for name, f in profile.features.items()
    }
    assert summary == {
        "category": ("String", 2, 1),
        "boolean": ("String", 2, 1),
        "dates": ("String", 2, 1),
        "uint8": ("Integral", 3, 0),
        "float32": ("Fractional", 2, 1),
        "Float64": ("Fractional", 2, 1),
    }
    category = profile.features["category"].strings
    assert category is not None
    assert category.counts == {"a": 1, "b": 1}  # an unused category is no value
