"""Budgets: spend limits per pool, key or scope, per UTC day or month, enforced before sending.

A `Budget` says how much may be spent; a pool's `Spending` applies its budgets to each call:
it refuses a key (or the whole pool) whose budget cannot take the request's estimated cost,
reserves that estimate on every budget the chosen key counts against (atomically, in the
ledger, so concurrent callers cannot together overshoot), and when the response ends settles
the reservation with the real cost, records the call and fires `BudgetThresholdCrossed` once
per period for each threshold crossed. Free credits on a key (`Key.credits_usd`) are drawn
down by the same settlement.

Each reservation is a hold named by this process's token and the lease's sequence number, so
settling it releases exactly it, and a hold never settled (its process died) expires after
the ledger's `hold_ttl` instead of blocking a shared budget until its period ends.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from keyrouter.core.decision import Lease, Refusal
from keyrouter.core.events import BudgetThresholdCrossed, Event
from keyrouter.core.keys import Key
from keyrouter.core.pricing import Price, cost_of
from keyrouter.core.quota import Demand
from keyrouter.core.usage import (
    DEFAULT_HOLD_TTL,
    USD_EPSILON,
    BudgetClaim,
    BudgetSpend,
    Usage,
    UsageLedger,
    UsageRecord,
)
from keyrouter.errors import ConfigError

__all__ = ["Budget", "Period", "Spending", "period_bounds"]

Period = Literal["day", "month"]
Per = Literal["pool", "key", "scope"]
_UNLIMITED = math.inf
_MAX_MIRRORED = 100_000
_ADJECTIVE = {"day": "daily", "month": "monthly"}
_serials = itertools.count(1)
_token = secrets.token_hex(6)
"""Names this process's holds; a forked child draws its own (it copies the counters)."""


def _new_token() -> None:
    global _token  # one per process: reset in a forked child
    _token = secrets.token_hex(6)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_token)


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `usd` per UTC calendar `period`, counted over the whole pool, or for each key
    or each quota scope of it (`per`). `thresholds` (fractions of `usd`) fire a
    `BudgetThresholdCrossed` event the first time spend reaches them in a period.

    `name` identifies the budget's counter: pools (or processes sharing a store) that give the
    same name share one budget. Without one, the counter is named after the pool and its keys.
    """

    usd: float
    period: Period = "month"
    per: Per = "pool"
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    name: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.usd, int | float) and 0 <= self.usd < math.inf):
            raise ConfigError(f"must be USD >= 0, got {self.usd!r}", field="budget.usd")
        if self.period not in ("day", "month"):
            raise ConfigError(f"'day' or 'month', not {self.period!r}", field="budget.period")
        if self.per not in ("pool", "key", "scope"):
            raise ConfigError(f"'pool', 'key' or 'scope', not {self.per!r}", field="budget.per")
        if any(not 0 < t <= 10 for t in self.thresholds):
            raise ConfigError("fractions of the budget in (0, 10]", field="budget.thresholds")
        object.__setattr__(self, "thresholds", tuple(sorted(set(self.thresholds))))


def period_bounds(period: Period | Literal["all"], now: float) -> tuple[str, float, float]:
    """(label, start, end) of the UTC calendar period holding `now` (epoch seconds)."""
    if period == "all":
        return "all", -math.inf, math.inf
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        label = f"day:{start:%Y-%m-%d}"
        end = start.timestamp() + 86400.0
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        label = f"month:{start:%Y-%m}"
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = start.replace(year=year, month=month).timestamp()
    return label, start.timestamp(), end


def _usd(amount: float) -> str:
    digits = 2 if amount >= 1 else 4 if amount >= 0.01 or amount == 0 else 6
    return f"{amount:.{digits}f} USD"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Rule:
    budget: Budget
    base_id: str
    label: str
    """How messages name the budget: its name, else the pool's."""

    def claim_for(self, key: Key, now: float) -> tuple[BudgetClaim, float]:
        """The counter `key` draws on under this rule, and when its period ends."""
        suffix = (
            ""
            if self.budget.per == "pool"
            else f"/key:{key.id}"
            if self.budget.per == "key"
            else f"/{key.scope_id}"
        )
        label, _, end = period_bounds(self.budget.period, now)
        return BudgetClaim(self.base_id + suffix, label, float(self.budget.usd)), end


@dataclass(slots=True)
class _Open:
    claims: tuple[BudgetClaim, ...]
    amount: float
    started: float
    hold: str


class Spending:
    """Usage, cost and budgets of one pool (see the module docstring).

    `ledger` returns the ledger in force (the state book's); `price` maps a model name to
    its price (None if unknown); `emit` delivers events.
    """

    def __init__(
        self,
        *,
        pool: str,
        keys: Sequence[Key],
        budgets: Sequence[Budget],
        ledger: Callable[[], UsageLedger],
        price: Callable[[str | None], Price | None],
        emit: Callable[[list[Event]], None],
        include_usage: bool = False,
    ) -> None:
        self.pool = pool
        self.include_usage = include_usage
        """Make OpenAI chat streams report their usage (`stream_options.include_usage`)."""
        self._ledger = ledger
        self._price = price
        self._emit = emit
        keyset = "+".join(sorted(k.id[:8] for k in keys))
        default_base = f"pool:{pool}:{keyset}" if len(keys) <= 8 else f"pool:{pool}"
        self._rules = tuple(
            _Rule(
                b,
                (f"budget:{b.name}" if b.name else default_base) + f":{b.period}",
                f"budget {b.name!r}" if b.name else f"the {pool} pool's budget",
            )
            for b in budgets
        )
        self._pool_rules = tuple(r for r in self._rules if r.budget.per == "pool")
        self._key_rules = tuple(r for r in self._rules if r.budget.per != "pool")
        self._open: dict[int, _Open] = {}
        self._lock = threading.Lock()
        self._serial = next(_serials)
        """Tells this pool's holds from other pools' in the process (each has its own seqs)."""
        self._credits_left: dict[str, float] = {}
        self._credits_pending: dict[str, float] = {}
        """Estimates of calls in flight on keys with credits (they may use the rest up)."""
        self._mirror: dict[tuple[str, str], tuple[float, float, float]] = {}
        """(spent, reserved, when) per budget counter as this process last saw it: the
        reserved part is all holds, gone `hold_ttl` after `when` at the latest."""
        for key in keys:
            credits = getattr(key, "credits_usd", None)
            if credits:
                spent = ledger().spend(_credit_id(key), "all").committed_usd
                self._credits_left[key.id] = max(0.0, float(credits) - spent)

    @property
    def ledger(self) -> UsageLedger:
        return self._ledger()

    @property
    def has_budgets(self) -> bool:
        return bool(self._rules)

    # -- estimates ---------------------------------------------------------------------------

    def estimate(self, demand: Demand, key: Key | None = None) -> float:
        """An upper bound of what the request may cost in USD (0.0 when its price is unknown).

        Anthropic's demand splits input and output; for the others every token the rate
        limiter would charge (prompt plus the output cap) is priced at the higher rate.
        """
        price = self._price(demand.model)
        if price is None:
            return 0.0
        output = demand.get("output_tokens")
        if output:
            usage = Usage(
                input_tokens=round(demand.get("input_tokens")), output_tokens=round(output)
            )
            amount = cost_of(usage, price)
        else:
            amount = demand.get("tokens") * max(price.input, price.output) * 1e-6
        return amount * _multiplier(key)

    def effective_price(self, key: Key) -> float:
        """What a unit of list price costs on `key`: 0 while it has free credits left."""
        left = self._credits_left.get(key.id, 0.0) - self._credits_pending.get(key.id, 0.0)
        return 0.0 if left > USD_EPSILON else _multiplier(key)

    # -- before sending -----------------------------------------------------------------------

    def pool_refusal(self, demand: Demand, now: float) -> str | None:
        """Why the whole pool must refuse this request (a pool budget is spent), else None."""
        if not self._pool_rules:
            return None
        amount = self.estimate(demand)
        for rule in self._pool_rules:
            claim, end = rule.claim_for(_ANY_KEY, now)
            counter = self.ledger.spend(claim.budget_id, claim.period)
            if counter.committed_usd + amount > claim.limit_usd + USD_EPSILON:
                return _spent_message(rule, counter, claim, end, amount)
        return None

    def key_refusal(self, key: Key, demand: Demand, now: float) -> Refusal | None:
        """A refusal of `key` when one of its per-key or per-scope budgets cannot take it.

        Called under the pool's lock, so it reads this process's mirror of the counters
        (kept by `reserve`, `release` and `finish`), never the ledger itself.
        """
        if not self._key_rules:
            return None
        amount = self.estimate(demand, key)
        for rule in self._key_rules:
            claim, end = rule.claim_for(key, now)
            spent, reserved = self._mirrored(claim, now)
            if spent + reserved + amount > claim.limit_usd + USD_EPSILON:
                return self._over(rule, claim, end, spent, reserved, key, amount)
        return None

    def _over(
        self,
        rule: _Rule,
        claim: BudgetClaim,
        end: float,
        spent: float,
        reserved: float,
        key: Key,
        amount: float,
    ) -> Refusal:
        reason = (
            f"over its {_ADJECTIVE[rule.budget.period]} budget ({_usd(spent + reserved)} "
            f"of {_usd(claim.limit_usd)} used, this request up to {_usd(amount)}; "
            f"resets {_when(end)})"
        )
        # Spent: out until the period ends. Room left but not for this request (or held by
        # calls in flight): refused for this request only.
        done = spent >= claim.limit_usd - USD_EPSILON
        return Refusal(key.label, reason, end, for_this_request=not done)

    def hold_credits(self, lease: Lease) -> None:
        """Count the call's estimate against the key's free credits (under the pool's lock,
        before the key is ranked again: it may use the rest of them up)."""
        if lease.key.id in self._credits_left:
            amount = self.estimate(lease.demand, lease.key)
            with self._lock:
                pending = self._credits_pending.get(lease.key.id, 0.0)
                self._credits_pending[lease.key.id] = pending + amount

    def reserve(self, lease: Lease, now: float) -> tuple[Refusal, bool] | None:
        """Atomically hold the request's estimate on every budget the leased key counts
        against (outside the pool's lock: a shared ledger may do I/O).

        None when held; else (why, whether a pool-wide budget is the one spent), with nothing
        held: another caller (or process) took the room since the key was checked.
        """
        claims = tuple(rule.claim_for(lease.key, now)[0] for rule in self._rules)
        amount = self.estimate(lease.demand, lease.key)
        hold = f"{_token}:{self._serial}:{lease.seq}"
        if claims:
            counter = self.ledger.reserve(claims, amount, hold)
            if counter is not None:
                self._remember(counter, now)
                index = next(i for i, c in enumerate(claims) if c.budget_id == counter.budget_id)
                rule, claim = self._rules[index], claims[index]
                _, _, end = period_bounds(rule.budget.period, now)
                refusal = self._over(
                    rule, claim, end, counter.spent_usd, counter.reserved_usd, lease.key, amount
                )
                self._close(lease, amount)
                return refusal, rule.budget.per == "pool"
        with self._lock:
            self._open[lease.seq] = _Open(claims, amount, now, hold)
            for claim in claims:
                slot = (claim.budget_id, claim.period)
                spent, reserved = self._mirrored(claim, now)
                seen = self._mirror[slot][2] if reserved else now  # (none, or all expired)
                self._mirror[slot] = (spent, reserved + amount, seen)
        return None

    def _mirrored(self, claim: BudgetClaim, now: float) -> tuple[float, float]:
        """(spent, reserved) as last seen; the reserved part only while the holds it counts
        may still be live: a budget blocked by a dead process's holds is tried again (on the
        ledger) once they expired, even if this process never reads it meanwhile."""
        spent, reserved, seen = self._mirror.get((claim.budget_id, claim.period), (0.0, 0.0, 0.0))
        return spent, (reserved if now < seen + self._hold_ttl() else 0.0)

    def _hold_ttl(self) -> float:
        return float(getattr(self.ledger, "hold_ttl", DEFAULT_HOLD_TTL))

    def _remember(self, counter: BudgetSpend, now: float) -> None:
        with self._lock:
            if len(self._mirror) > _MAX_MIRRORED:
                self._mirror.clear()
            self._mirror[(counter.budget_id, counter.period)] = (
                counter.spent_usd,
                counter.reserved_usd,
                now,
            )

    def release(self, lease: Lease) -> None:
        """The attempt will not be charged (failed over, abandoned): free its hold."""
        held = self._close(lease)
        if held is not None and held.claims:
            self.ledger.settle(held.claims, held.amount, 0.0, held.hold)
            self._refresh(held.claims, held.started)

    def _close(self, lease: Lease, credits: float | None = None) -> _Open | None:
        """Forget the attempt's reservation here (and its hold on free credits)."""
        with self._lock:
            held = self._open.pop(lease.seq, None)
            amount = held.amount if held is not None else credits
            if amount is not None and lease.key.id in self._credits_pending:
                left = self._credits_pending[lease.key.id] - amount
                self._credits_pending[lease.key.id] = max(0.0, left)
        return held

    def _refresh(self, claims: Sequence[BudgetClaim], now: float) -> None:
        """Read the counters again (`now`: at the latest when the holds they count were seen)."""
        for claim in claims:
            self._remember(self.ledger.spend(claim.budget_id, claim.period), now)

    # -- after the response ---------------------------------------------------------------------

    def finish(
        self,
        lease: Lease,
        usage: Usage,
        *,
        model: str | None,
        estimated: bool,
        status: int | None,
        now: float,
    ) -> UsageRecord:
        """The response ended: charge what it cost, record it, fire threshold events."""
        model = model or lease.demand.model
        price = self._price(model)
        cost = None if price is None else cost_of(usage, price, _multiplier(lease.key))
        held = self._close(lease)
        if held is not None and held.claims:
            self.ledger.settle(held.claims, held.amount, cost or 0.0, held.hold)
            self._refresh(held.claims, now)
        record = UsageRecord(
            at=now,
            key=lease.key.fingerprint,
            scope=lease.scope_id,
            pool=self.pool,
            model=model,
            usage=usage,
            cost_usd=cost,
            latency_s=max(0.0, now - lease.picked_at),
            status=status,
            estimated=estimated,
        )
        self.ledger.append(record)
        if cost:
            self._draw_credits(lease.key, cost)
        if held is not None and held.claims and cost:
            events = self._crossings(held.claims, now)
            if events:
                self._emit(events)
        return record

    def _draw_credits(self, key: Key, cost: float) -> None:
        with self._lock:
            left = self._credits_left.get(key.id)
            if left is None or left <= 0:
                return
            drawn = min(left, cost)
            self._credits_left[key.id] = left - drawn
        self.ledger.settle((BudgetClaim(_credit_id(key), "all", _UNLIMITED),), 0.0, drawn)
        # Other processes sharing the ledger draw on the same credits: adopt the shared total.
        spent = self.ledger.spend(_credit_id(key), "all").spent_usd
        with self._lock:
            self._credits_left[key.id] = max(0.0, float(key.credits_usd or 0.0) - spent)

    def credits_left(self, key: Key) -> float | None:
        return self._credits_left.get(key.id)

    def _crossings(self, claims: Sequence[BudgetClaim], now: float) -> list[Event]:
        events: list[Event] = []
        for rule, claim in zip(self._rules, claims, strict=True):
            if claim.limit_usd <= 0:
                continue
            spent = self.ledger.spend(claim.budget_id, claim.period).spent_usd
            _, _, end = period_bounds(rule.budget.period, now)
            for threshold in rule.budget.thresholds:
                if spent + USD_EPSILON >= threshold * claim.limit_usd and self.ledger.mark_crossed(
                    claim.budget_id, claim.period, threshold
                ):
                    events.append(
                        BudgetThresholdCrossed(
                            claim.budget_id,
                            claim.period,
                            threshold,
                            spent,
                            claim.limit_usd,
                            end,
                            now,
                        )
                    )
        return events


def _multiplier(key: Key | None) -> float:
    return float(getattr(key, "price_multiplier", 1.0)) if key is not None else 1.0


def _credit_id(key: Key) -> str:
    return f"credits:{key.id}"


def _spent_message(
    rule: _Rule, counter: BudgetSpend, claim: BudgetClaim, end: float, amount: float
) -> str:
    return (
        f"keyrouter: {rule.label} of {_usd(claim.limit_usd)} a {rule.budget.period} has no room "
        f"for this request ({claim.period.partition(':')[2]}): {_usd(counter.spent_usd)} spent"
        + (f" + {_usd(counter.reserved_usd)} in flight" if counter.reserved_usd > 0 else "")
        + f" of {_usd(claim.limit_usd)}; this request may cost up to {_usd(amount)}; "
        f"the budget resets at {_when(end)}"
    )


_ANY_KEY = Key("keyrouter-budget-placeholder-key-0000")
"""Pool-wide rules name no key; this stands in where `claim_for` wants one."""
