"""Policies: which keys may serve a request, and which are preferred.

Key policies are fields of each `Key`: `labels`, `tier`, `allow_models` / `deny_models` (glob
patterns), `max_in_flight` and a `Schedule`. A pool's policy (`PoolPolicy`) says which labels it
may use and bounds its waiting and attempts. `PolicyGate` compiles both for one pool; the pool
consults it in one place for filters (`refusal`) and one for preference (`rank`), so a policy
is one more reason a key is refused, never a special case of the selection loop:

- a key outside the pool's labels is refused for good (`permanent`);
- a key outside its schedule is refused until its window opens (the pool parks it until then);
- a key at its `max_in_flight` is refused until one of its requests settles;
- a key whose model rules exclude the request's model is refused for this request only.

Lower tiers rank before higher ones whatever the objective says, so a higher tier serves only
when no lower-tier key can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from keyrouter.core.decision import Refusal
from keyrouter.core.keys import Key
from keyrouter.core.quota import Demand
from keyrouter.core.rules import model_allowed
from keyrouter.errors import ConfigError

__all__ = ["PolicyGate", "PoolPolicy"]

IN_FLIGHT_RECHECK: Final = 0.05
"""A key at its in-flight limit is looked at again this soon (or when a request settles)."""
_MAX_CACHED_MODELS: Final = 1024


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """What a pool (or a scoped pool) may use, and how long and how often it may try.

    `labels`: only keys carrying at least one of these labels (empty: every key).
    `max_wait` / `max_attempts`: override the patch-wide settings for this pool's requests.
    `budgets`: spending limits (`keyrouter.Budget` from the cost module), kept for it as given.
    """

    labels: frozenset[str] = frozenset()
    max_wait: float | None = None
    max_attempts: int | None = None
    budgets: tuple[object, ...] = field(default=())

    def __post_init__(self) -> None:
        labels = self.labels
        object.__setattr__(
            self, "labels", frozenset([labels] if isinstance(labels, str) else labels)
        )
        if self.max_attempts is not None and not (
            isinstance(self.max_attempts, int) and self.max_attempts >= 1
        ):
            raise ConfigError("must be a whole number, at least 1", field="max_attempts")
        if self.max_wait is not None and not (
            isinstance(self.max_wait, int | float) and 0 <= self.max_wait < math.inf
        ):
            raise ConfigError("must be a number of seconds, 0 or more", field="max_wait")
        object.__setattr__(self, "budgets", tuple(self.budgets))


class PolicyGate:
    """One pool's policies, compiled: the pool asks it `refusal` and `rank` (see module doc)."""

    __slots__ = (
        "_keys",
        "_labels_out",
        "_models",
        "_ruled",
        "_tiers",
        "_timed",
        "active",
        "screens",
    )

    def __init__(self, keys: Sequence[Key], policy: PoolPolicy, *, pool: str) -> None:
        self._keys = tuple(keys)
        self._labels_out: dict[int, Refusal] = {}
        if policy.labels:
            wanted = sorted(policy.labels)
            for index, key in enumerate(self._keys):
                if policy.labels.isdisjoint(key.labels):
                    reason = f"policy labels: the pool uses keys labelled {wanted}"
                    self._labels_out[index] = Refusal(
                        key.label, reason, permanent=True, policy="labels"
                    )
            if len(self._labels_out) == len(self._keys):
                raise ConfigError(
                    f"no key carries any of the labels {wanted}", field=f"{pool}.labels"
                )
        tiers = tuple(key.tier for key in self._keys)
        self._tiers = tiers if len(set(tiers)) > 1 else None
        self._ruled = frozenset(
            i for i, k in enumerate(self._keys) if k.allow_models is not None or k.deny_models
        )
        self._timed = frozenset(
            i
            for i, k in enumerate(self._keys)
            if k.schedule is not None or k.max_in_flight is not None
        )
        self._models: dict[str, dict[int, Refusal]] = {}
        self.screens = bool(self._labels_out or self._ruled)
        """Whether a rule that never changes (labels, models) can refuse a key (see `forbids`)."""
        self.active = self.screens or bool(self._timed)
        """Whether any policy can refuse a key (the pool skips `refusal` otherwise)."""

    def refusal(
        self, index: int, demand: Demand | None, in_flight: int, now: float
    ) -> Refusal | None:
        """Why a policy refuses key `index` now (None: no policy does).

        Without a `demand`, only what does not depend on the request is checked.
        """
        out = self._labels_out.get(index)
        if out is not None:
            return out
        if index in self._timed:
            key = self._keys[index]
            schedule = key.schedule
            if schedule is not None and not schedule.is_open(now):
                reason = f"policy schedule: serves only {schedule.describe()}"
                return Refusal(key.label, reason, schedule.opens_at(now), policy="schedule")
            limit = key.max_in_flight
            if limit is not None and in_flight >= limit:
                reason = f"policy max_in_flight: {in_flight} of {limit} requests in flight"
                return Refusal(key.label, reason, now + IN_FLIGHT_RECHECK, policy="max_in_flight")
        if demand is not None and demand.model is not None and index in self._ruled:
            return self._by_model(demand.model).get(index)
        return None

    def forbids(self, demand: Demand) -> str | None:
        """Why no key of the pool may ever serve `demand` (None if some key may).

        Only the rules that never change are asked (labels, models): a request they leave no
        key for is refused before anything is sent, rather than waiting for nothing.
        """
        model = demand.model
        if model is None and not self._labels_out:
            return None
        by_model = self._by_model(model) if model is not None else {}
        refused = [
            r
            for i in range(len(self._keys))
            if (r := self._labels_out.get(i) or by_model.get(i)) is not None
        ]
        if len(refused) < len(self._keys):
            return None
        what = f"model {model!r}" if model is not None else "this request"
        reasons = "; ".join(f"{r.key}: {r.reason}" for r in refused[:8])
        more = f"; and {len(refused) - 8} more" if len(refused) > 8 else ""
        return f"keyrouter: a policy forbids every key of the pool for {what} ({reasons}{more})"

    def rank(self, index: int, rank: tuple[float, ...]) -> tuple[float, ...]:
        """The objective's rank, behind the key's tier (lower tiers first)."""
        tiers = self._tiers
        return rank if tiers is None else (tiers[index], *rank)

    def _by_model(self, model: str) -> dict[int, Refusal]:
        cached = self._models.get(model)
        if cached is None:
            cached = {}
            for index in self._ruled:
                key = self._keys[index]
                why = model_allowed(key, model)
                if why is not None:
                    cached[index] = Refusal(
                        key.label, f"policy {why}", for_this_request=True, policy="models"
                    )
            if len(self._models) >= _MAX_CACHED_MODELS:
                self._models.clear()
            self._models[model] = cached
        return cached
