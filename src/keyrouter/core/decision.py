"""Routing decisions as values: which key, and why every other key was not chosen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from keyrouter.core.keys import Key
from keyrouter.core.quota import Demand

__all__ = ["Decision", "Lease", "Refusal"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A key that was not chosen, the reason in words, and when it may serve again."""

    key: str
    reason: str
    retry_at: float | None = None
    permanent: bool = False
    """The key will never serve again (invalid, disabled)."""
    for_this_request: bool = False
    """Refused for this request only (its size, or its model: another request may go now)."""
    policy: str | None = None
    """The policy that refused the key (`labels`, `models`, `schedule`, `max_in_flight`), or
    None when the key's state or quota did."""


class Lease(NamedTuple):
    """A granted attempt: hand it back with the outcome (`settle`) or without (`abandon`)."""

    key: Key
    scope_id: str
    seq: int
    demand: Demand
    picked_at: float


class Decision(NamedTuple):
    """The answer to "which key for this request?" (a tuple: one is made for every attempt).

    `lease` is None when no key can serve now; then `retry_at` is the earliest time one may
    (None if none ever will: every key invalid or disabled) and `refused` says why for each.
    """

    lease: Lease | None
    objective: str
    refused: tuple[Refusal, ...]
    retry_at: float | None = None
    waiting_for_probe: bool = False
    queued: bool = False
    """Other callers are waiting ahead of this one: try again shortly."""
    rank: tuple[float, ...] = ()
    """The chosen key's rank under the objective (its scores, lower is better)."""

    @property
    def key(self) -> Key | None:
        return self.lease.key if self.lease else None

    def explain(self, now: float | None = None) -> str:
        """One line a person can read: the choice, then each refusal."""
        head = (
            f"chose {self.lease.key.label} by {self.objective}{self._scores()}"
            if self.lease
            else "no key can serve now"
        )
        parts = [head]
        parts.extend(f"{r.key}: {r.reason}" for r in self.refused)
        if self.lease is None and self.retry_at is not None and now is not None:
            parts.append(f"earliest recovery in {_seconds(self.retry_at - now)}")
        return "; ".join(parts)

    def _scores(self) -> str:
        if not self.rank:
            return ""
        from keyrouter.core.objectives import describe_rank

        described = describe_rank(self.objective, self.rank)
        return f" ({described})" if described else ""


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        return "never"
    return f"{max(0.0, value):.1f}s"
