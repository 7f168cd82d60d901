"""Objectives: how to order the keys that can serve a request.

Each objective maps a candidate to a sort key (lower is better). Candidates reaching an
objective have already passed every hard check (state, quota), so an objective only expresses
preference: spread by headroom (default), strict rotation, or reliability first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["OBJECTIVES", "Candidate", "ObjectiveName"]

ObjectiveName = Literal["headroom", "round_robin", "reliability"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """What an objective may look at for one eligible key."""

    index: int
    """Position of the key in its pool (used for rotation)."""
    headroom: float
    """Predicted available share of the key's scope, 0..1 (1.0 when unknown)."""
    in_flight: int
    served: int
    weight: float
    failure_rate: float
    """Recent share of attempts that failed with a server or connection error, 0..1."""
    rotation: int
    """Distance from the pool's rotation cursor (0 is next in turn)."""


def _headroom_tier(headroom: float) -> int:
    # Coarse tiers, so that keys of similar headroom share load instead of one key taking
    # everything until it is marginally below the next.
    return 0 if headroom >= 0.5 else 1 if headroom >= 0.2 else 2 if headroom >= 0.05 else 3


def _by_headroom(c: Candidate) -> tuple[float, ...]:
    return (_headroom_tier(c.headroom), c.in_flight / c.weight, c.served / c.weight, c.rotation)


def _by_rotation(c: Candidate) -> tuple[float, ...]:
    return (c.rotation,)


def _by_reliability(c: Candidate) -> tuple[float, ...]:
    return (round(c.failure_rate, 2), *_by_headroom(c))


OBJECTIVES: dict[str, Callable[[Candidate], tuple[float, ...]]] = {
    "headroom": _by_headroom,
    "round_robin": _by_rotation,
    "reliability": _by_reliability,
}
