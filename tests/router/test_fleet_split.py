"""The routing table's fleet split (EndpointRoute.incoming) during a guarded update: the new
fleet gets its share of the picks (a binomial test), a fleet with no healthy instance gives
its share to the other, and without a split the picks are exactly those of before."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from pier.router.table import EndpointRoute, FleetSplit, Target, VariantRoute


def fleet(tag: str, weights: dict[str, float], healthy: bool = True) -> dict[str, VariantRoute]:
    return {
        name: VariantRoute(
            name, w, [Target(f"{tag}-{name}", "http://127.0.0.1:9")] if healthy else []
        )
        for name, w in weights.items()
    }


def is_new(v: VariantRoute) -> bool:
    return v.targets[0].instance_id.startswith("new-")


def test_the_new_fleet_gets_its_share() -> None:
    rng = random.Random(12)
    for share in (0.1, 0.25, 0.5, 0.9):
        route = EndpointRoute("e", fleet("old", {"main": 1.0}), None,
                              FleetSplit(share, fleet("new", {"main": 1.0})))  # fmt: skip
        picks = [route.pick_variant(rng) for _ in range(4000)]
        new = sum(1 for v in picks if v is not None and is_new(v))
        assert binomtest(new, 4000, share).pvalue >= 1e-4, (share, new)


def test_the_ends_of_a_shift_are_all_or_nothing() -> None:
    rng = random.Random(3)
    for share, want in ((0.0, False), (1.0, True)):
        route = EndpointRoute("e", fleet("old", {"main": 1.0}), None,
                              FleetSplit(share, fleet("new", {"main": 1.0})))  # fmt: skip
        assert {is_new(v) for v in (route.pick_variant(rng) for _ in range(500)) if v} == {want}


@given(
    share=st.floats(0.0, 1.0),
    old_healthy=st.booleans(),
    new_healthy=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_fleet_without_instances_gives_its_share_to_the_other(
    share: float, old_healthy: bool, new_healthy: bool, seed: int
) -> None:
    route = EndpointRoute("e", fleet("old", {"main": 1.0}, old_healthy), None,
                          FleetSplit(share, fleet("new", {"main": 1.0}, new_healthy)))  # fmt: skip
    picked = route.pick_variant(random.Random(seed))
    if not (old_healthy or new_healthy):
        assert picked is None
    else:
        assert picked is not None
        if not old_healthy:
            assert is_new(picked)
        if not new_healthy:
            assert not is_new(picked)


@given(
    weights=st.dictionaries(st.sampled_from("abcd"), st.floats(0.0, 5.0), min_size=1),
    seed=st.integers(0, 2**32 - 1),
)
def test_without_a_split_the_picks_are_those_of_before(
    weights: dict[str, float], seed: int
) -> None:
    """Differential: the weighted pick as it was before the split existed, written out."""
    variants = fleet("old", weights)
    route = EndpointRoute("e", variants)

    def before(rng: random.Random) -> VariantRoute | None:
        live = [v for v in variants.values() if v.targets and v.weight > 0]
        if not live:
            return None
        if len(live) == 1:
            return live[0]
        return rng.choices(live, weights=[v.weight for v in live])[0]

    a, b = random.Random(seed), random.Random(seed)
    assert [route.pick_variant(a) for _ in range(20)] == [before(b) for _ in range(20)]
