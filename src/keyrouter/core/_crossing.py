"""When a refilling scope's headroom tier next improves: the one change of a key's rank that
time alone brings about, so the pool can re-file keys exactly then instead of in turn."""

from __future__ import annotations

import math

from keyrouter.core.quota import ScopeQuota

TIER_FLOORS = (0.5, 0.2, 0.05)
"""The least headroom of tiers 0, 1 and 2 (`objectives._headroom_tier`); tier 3 is below."""
CROSSING_PAD = 1e-6
"""Seconds added to a predicted crossing, so that at the returned time the tier is there
(as `Dimension.seconds_until` pads a recovery)."""


def tier_of(headroom: float) -> int:
    """The headroom tier (0 best) of a scope with `headroom` left (`objectives._headroom_tier`)."""
    return 0 if headroom >= 0.5 else 1 if headroom >= 0.2 else 2 if headroom >= 0.05 else 3


def seconds_to_share(quota: ScopeQuota, share: float, now: float) -> float:
    """Seconds until every known dimension of `quota` has `share` of its limit available, as
    it refills with no more requests (0 if now, inf if some dimension has no refill rate).

    The scope's headroom is its tightest dimension's share, so it reaches `share` when the
    slowest dimension does."""
    wait = 0.0
    for dim in quota.dimensions.values():
        limit = dim.limit
        if not dim.known or not limit:
            continue  # counts as full (`ScopeQuota.headroom`)
        shortfall = share * limit - dim.available(now)
        if shortfall <= 0:
            continue
        rate = dim.rate
        if not rate or rate <= 0:
            return math.inf
        # Nothing refills before `as_of` (`Dimension.available`).
        needed = shortfall / rate + (dim.as_of - now if dim.as_of > now else 0.0)
        if needed > wait:
            wait = needed
    return wait
