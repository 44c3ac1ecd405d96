"""The routing table: which instances serve which endpoint variant, with what weight.

The reconciler writes it (whole endpoint entries, replaced atomically); the router reads it on
every request, so reads are plain dict lookups and selection is O(variants + instances).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pier.contract.capture_config import CaptureSettings


@dataclass(eq=False)
class Target:
    """One healthy instance. `outstanding` counts requests in flight to it; `bundles`: it is
    pier's own model server, which takes requests in bundles (pier.router.bundler)."""

    instance_id: str
    url: str  # http://HOST:PORT
    bundles: bool = False
    outstanding: int = 0
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"instance URL without host and port: {self.url}")
        self.host, self.port = parts.hostname, parts.port


@dataclass
class VariantRoute:
    name: str
    weight: float
    targets: list[Target] = field(default_factory=list)


def _by_weight(variants: dict[str, VariantRoute], rng: random.Random) -> VariantRoute | None:
    """A variant by weight among those with a healthy instance (None if there is none)."""
    live = [v for v in variants.values() if v.targets and v.weight > 0]
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    return rng.choices(live, weights=[v.weight for v in live])[0]


@dataclass
class FleetSplit:
    """An update in progress (deployment guardrails): `share` of the requests go to the new
    fleet's `variants` (same names as the old fleet's, as SageMaker requires), the rest to the
    endpoint's. Set by the reconciler at each traffic step; None on the route otherwise."""

    share: float
    variants: dict[str, VariantRoute]


@dataclass
class ShadowRoute:
    """A shadow variant: gets a copy of `share` (0..1) of the endpoint's requests, and its
    answers are recorded, never returned (pier.router.mirror)."""

    name: str
    share: float
    targets: list[Target] = field(default_factory=list)


@dataclass
class EndpointRoute:
    name: str
    variants: dict[str, VariantRoute]
    # The deployed config's DataCaptureConfig; None when nothing is captured (one attribute
    # read per request decides).
    capture: CaptureSettings | None = None
    # The new fleet while a guarded update shifts traffic (one attribute read when there is
    # none: the hot path without an update is unchanged).
    incoming: FleetSplit | None = None
    # The config's ShadowProductionVariants; empty (falsy: one attribute read per request
    # decides) when the endpoint has none.
    shadows: tuple[ShadowRoute, ...] = ()
    # Published from the store when the platform starts, before the endpoint's instances serve
    # again (adopted ones still loading, or relaunched after a reboot): a request finding no
    # healthy instance then gets a retryable 503, not the 429 of an instance gone missing.
    restoring: bool = False

    def waiting_to_restore(self) -> bool:
        """Published at start-up and no production variant has an instance serving yet."""
        return self.restoring and not any(v.targets for v in self.variants.values())

    def routed(self) -> frozenset[str]:
        """The names of every variant routed, production and shadow."""
        return frozenset((*self.variants, *(s.name for s in self.shadows)))

    def pick_variant(self, rng: random.Random) -> VariantRoute | None:
        """A variant by weight among those with a healthy instance (None if there is none).
        During a split, the new fleet with probability `share`, else the old; a fleet with no
        healthy instance gives its requests to the other, so none fails for want of one."""
        split = self.incoming
        if split is None:
            return _by_weight(self.variants, rng)
        first, second = self.variants, split.variants
        if rng.random() < split.share:
            first, second = second, first
        return _by_weight(first, rng) or _by_weight(second, rng)


def least_outstanding(targets: list[Target], rng: random.Random) -> Target:
    """The instance with the fewest requests in flight; ties broken at random."""
    best = min(t.outstanding for t in targets)
    candidates = [t for t in targets if t.outstanding == best]
    return candidates[0] if len(candidates) == 1 else rng.choice(candidates)


# Told (endpoint, variant names) when variants stop being routed.
Retired = Callable[[str, frozenset[str]], None]


class RoutingTable:
    def __init__(self) -> None:
        self._routes: dict[str, EndpointRoute] = {}
        self._on_retired: list[Retired] = []

    def get(self, endpoint: str) -> EndpointRoute | None:
        return self._routes.get(endpoint)

    def on_retired(self, callback: Retired) -> None:
        """Call `callback(endpoint, variants)` when variants leave the table: every variant of
        a removed endpoint, and those an update dropped. Whatever is kept per variant (the
        metrics' labelled series) is let go there, so a deleted endpoint leaves nothing."""
        self._on_retired.append(callback)

    def set(self, route: EndpointRoute) -> None:
        old = self._routes.get(route.name)
        self._routes[route.name] = route
        if old is not None:
            self._retire(route.name, old.routed() - route.routed())

    def remove(self, endpoint: str) -> None:
        old = self._routes.pop(endpoint, None)
        if old is not None:
            self._retire(endpoint, old.routed())

    def _retire(self, endpoint: str, variants: frozenset[str]) -> None:
        if variants:
            for callback in self._on_retired:
                callback(endpoint, variants)

    def names(self) -> list[str]:
        return list(self._routes)
