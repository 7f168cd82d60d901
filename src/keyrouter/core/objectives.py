"""Objectives: how to order the keys that can serve a request.

Each objective maps a candidate to a sort key (lower is better). Candidates reaching an
objective have already passed every hard check (state, quota), so an objective only expresses
preference: spread by headroom (default), strict rotation, or reliability first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

__all__ = ["OBJECTIVES", "Candidate", "ObjectiveName"]

ObjectiveName = Literal["headroom", "round_robin", "reliability"]


class Candidate(NamedTuple):
    """What an objective may look at for one eligible key (a tuple: built on every pick)."""

    headroom: float
    """Predicted available share of the key's scope, 0..1 (1.0 when unknown)."""
    served: int
    """Attempts sent with this key so far."""
    weight: float
    failure_rate: float
    """Recent share of attempts that failed with a server or connection error, 0..1."""
    last_pick: int
    """When the pool last chose this key (a sequence number; 0 for never)."""


def _headroom_tier(headroom: float) -> int:
    # Coarse tiers, so that keys of similar headroom share load instead of one key taking
    # everything until it is marginally below the next.
    return 0 if headroom >= 0.5 else 1 if headroom >= 0.2 else 2 if headroom >= 0.05 else 3


def _by_headroom(c: Candidate) -> tuple[float, ...]:
    # Most headroom first, then each key's fair share of the traffic (served / weight).
    return (_headroom_tier(c.headroom), c.served / c.weight, c.last_pick)


def _by_rotation(c: Candidate) -> tuple[float, ...]:
    # Least recently chosen first: strict rotation while every key can serve.
    return (c.last_pick,)


def _by_reliability(c: Candidate) -> tuple[float, ...]:
    return (round(c.failure_rate, 2), *_by_headroom(c))


OBJECTIVES: dict[str, Callable[[Candidate], tuple[float, ...]]] = {
    "headroom": _by_headroom,
    "round_robin": _by_rotation,
    "reliability": _by_reliability,
}
