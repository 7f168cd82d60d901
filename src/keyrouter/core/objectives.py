"""Objectives: how to order the keys that can serve a request.

Each objective maps a candidate to a sort key (lower is better). Candidates reaching an
objective have already passed every hard check (state, quota), so an objective only expresses
preference: spread by headroom (default), strict rotation, reliability first, or cost first
(cheapest effective price, then headroom). Objectives combine with weights
(`{"cost": 0.7, "headroom": 0.3}`): each contributes a score in 0..1 (lower is better) and
the weighted mean decides, ties going to the least-loaded key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, NamedTuple

from keyrouter.errors import ConfigError

__all__ = ["OBJECTIVES", "RANK_FIELDS", "Candidate", "ObjectiveName", "describe_rank", "resolve"]

ObjectiveName = Literal["headroom", "round_robin", "reliability", "cost"]
Order = Callable[["Candidate"], tuple[float, ...]]


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
    price: float = 1.0
    """The key's effective price relative to the dearest key of the pool, 0..1 (0 while it
    has free credits left); only objectives that weigh cost read it."""


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


def _by_cost(c: Candidate) -> tuple[float, ...]:
    return (round(c.price, 4), *_by_headroom(c))


OBJECTIVES: dict[str, Order] = {
    "headroom": _by_headroom,
    "round_robin": _by_rotation,
    "reliability": _by_reliability,
    "cost": _by_cost,
}

RANK_FIELDS: dict[str, tuple[str, ...]] = {
    "headroom": ("headroom tier", "load", "last pick"),
    "round_robin": ("last pick",),
    "reliability": ("failure rate", "headroom tier", "load", "last pick"),
    "cost": ("price", "headroom tier", "load", "last pick"),
}
"""Names of the parts of each objective's rank, for explanations."""

_SCORES: dict[str, Callable[[Candidate], float]] = {
    "cost": lambda c: c.price,
    "headroom": lambda c: 1.0 - c.headroom,
    "reliability": lambda c: c.failure_rate,
}


def resolve(objective: str | Mapping[str, float]) -> tuple[str, Order, bool]:
    """(name, order, reads price) for an objective name or a mapping of weights."""
    if isinstance(objective, str):
        order = OBJECTIVES.get(objective)
        if order is None:
            raise ConfigError(
                f"unknown objective {objective!r}; choose one of {sorted(OBJECTIVES)} "
                f"or weights over {sorted(_SCORES)}",
                field="objective",
            )
        return objective, order, objective == "cost"
    if not isinstance(objective, Mapping) or not objective:
        raise ConfigError("give an objective name or a mapping of weights", field="objective")
    weights: list[tuple[Callable[[Candidate], float], float]] = []
    for name, weight in objective.items():
        if name not in _SCORES:
            raise ConfigError(
                f"{name!r} cannot be weighted; choose among {sorted(_SCORES)}", field="objective"
            )
        if not (isinstance(weight, int | float) and 0 <= weight < float("inf")):
            raise ConfigError(f"weight of {name!r} must be a number >= 0", field="objective")
        weights.append((_SCORES[name], float(weight)))
    total = sum(w for _, w in weights) or 1.0
    label = "+".join(f"{name}*{weight:g}" for name, weight in objective.items())

    def by_weights(c: Candidate) -> tuple[float, ...]:
        score = sum(score_of(c) * w for score_of, w in weights) / total
        return (round(score, 2), c.served / c.weight, c.last_pick)

    RANK_FIELDS.setdefault(label, ("score", "load", "last pick"))
    return label, by_weights, "cost" in objective


def describe_rank(objective: str, rank: tuple[float, ...]) -> str:
    """`price 0, headroom tier 0, load 3` for a rank of the named objective."""
    names = RANK_FIELDS.get(objective, ())
    if len(rank) == len(names) + 1:
        names = ("policy tier", *names)  # a pool with key tiers ranks by tier first
    if len(names) != len(rank):
        return ""
    return ", ".join(
        f"{name} {value:.4g}"
        for name, value in zip(names, rank, strict=True)
        if name != "last pick"
    )
