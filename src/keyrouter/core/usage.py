"""What each call consumed and cost, and the ledger that keeps it (usage records, budget spend).

A provider module turns a response into a `Usage` (tokens by kind, one normalised shape for
every provider); the transport adds who sent it and what it cost and hands a `UsageRecord` to
the pool's `UsageLedger`. The ledger also keeps budget spend per budget and period, with an
atomic reserve-then-settle pair, so that concurrent callers (threads here; processes with a
shared store) cannot together spend past a limit.

A reservation is a *hold*: it has an id (unique per process and call) and expires
`hold_ttl` seconds after it was made, so the holds of a process that died (kill -9, OOM) stop
counting against a shared budget by then instead of blocking it until the period ends.
Settling names the hold, so it releases exactly that one, once; a late settle of an expired
hold only adds the spend.

The ledger protocol is deliberately small so a store (SQLite, Redis) can implement it with a
table or a few hashes and one Lua script per atomic step. `MemoryLedger` is the in-process one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_HOLD_TTL",
    "BudgetClaim",
    "BudgetSpend",
    "GroupBy",
    "MemoryLedger",
    "Usage",
    "UsageLedger",
    "UsageRecord",
    "UsageTotals",
]

GroupBy = Literal["key", "scope", "model", "pool"]

_DEFAULT_MAX_RECORDS = 100_000
USD_EPSILON = 1e-9
"""Sums of float dollars drift; a reservation within this of its limit still fits."""
DEFAULT_HOLD_TTL = 900.0
"""Seconds an unsettled budget hold counts: past the SDKs' default 600 s timeout, so a live
call (a long stream included) is normally settled first; a call outlasting it is no longer
counted in flight (the accepted trade-off for a budget a dead process cannot block)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed, normalised across providers.

    `input_tokens` counts every token the model read, cached or not (OpenAI's
    `prompt_tokens`; Anthropic's `input_tokens + cache_read + cache_creation`; Gemini's
    `promptTokenCount`). `cached_input_tokens` and `cache_creation_tokens` are parts of it.
    `output_tokens` counts every generated token, reasoning included (Gemini's candidates +
    thoughts); `reasoning_tokens` is the part of it the model spent thinking.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input billed at the full input price."""
        return max(0, self.input_tokens - self.cached_input_tokens - self.cache_creation_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One call as the ledger keeps it. Keys appear by fingerprint only."""

    at: float
    """When the call finished (epoch seconds)."""
    key: str
    """Fingerprint of the key that served the call."""
    scope: str
    """Quota scope id of that key (`scope:<name>` or `key:<id>`)."""
    pool: str
    model: str | None
    usage: Usage
    cost_usd: float | None
    """What the call cost at list price times the key's multiplier; None when unknown
    (a model missing from the price table), never a made-up zero."""
    latency_s: float
    status: int | None
    """HTTP status of the response (None when none arrived)."""
    estimated: bool = False
    """The usage was estimated from the content (the provider did not report it)."""


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over a set of records."""

    calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    """Sum of the known costs (see `unpriced_calls`)."""
    unpriced_calls: int = 0
    """Calls whose cost is unknown, so `cost_usd` is a lower bound when this is non-zero."""
    estimated_calls: int = 0

    def add(self, record: UsageRecord) -> UsageTotals:
        return UsageTotals(
            self.calls + 1,
            self.usage + record.usage,
            self.cost_usd + (record.cost_usd or 0.0),
            self.unpriced_calls + (record.cost_usd is None),
            self.estimated_calls + record.estimated,
        )


@dataclass(frozen=True, slots=True)
class BudgetClaim:
    """One budget a call must fit under: its id, the period it counts in, and its limit.

    `period` is an opaque label (`day:2026-12-01`, `month:2026-12`, `all`); the ledger only
    keeps one counter per (budget_id, period) and never interprets it.
    """

    budget_id: str
    period: str
    limit_usd: float


@dataclass(frozen=True, slots=True)
class BudgetSpend:
    """A budget's counter in one period: settled spend and reservations still in flight."""

    budget_id: str
    period: str
    spent_usd: float
    reserved_usd: float

    @property
    def committed_usd(self) -> float:
        return self.spent_usd + self.reserved_usd


@runtime_checkable
class UsageLedger(Protocol):
    """Where usage records and budget spend live (memory, SQLite, Redis).

    Every method is safe to call from many threads (and, for a shared store, processes).
    `reserve` and `settle` must each be atomic over all the claims they are given.
    """

    def append(self, record: UsageRecord) -> None:
        """Keep one call's record."""
        ...

    def totals(
        self, by: GroupBy, *, since: float | None = None, until: float | None = None
    ) -> dict[str, UsageTotals]:
        """Sums of the records with `since <= at < until`, grouped by key fingerprint, scope
        id, model (`"unknown"` for none) or pool name."""
        ...

    def records(
        self, *, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[UsageRecord]:
        """The records with `since <= at < until`, oldest first (the newest `limit` of them)."""
        ...

    def spend(self, budget_id: str, period: str) -> BudgetSpend:
        """A budget's counter in one period (zeros if it never spent)."""
        ...

    def reserve(
        self, claims: Sequence[BudgetClaim], amount_usd: float, hold: str | None = None
    ) -> BudgetSpend | None:
        """Atomically reserve `amount_usd` on every claim if each stays within its limit
        (`spent + reserved + amount <= limit`, to within `USD_EPSILON`).

        With a `hold` id (unique per process and call) the reservation is that hold: it stops
        counting `hold_ttl` seconds later unless settled first (expired holds are purged
        whenever a budget is reserved on or read). Without one it is a plain amount that
        only `settle` takes back. Returns None when reserved; otherwise reserves nothing and
        returns the counter of the first claim that would go over.
        """
        ...

    def settle(
        self,
        claims: Sequence[BudgetClaim],
        reserved_usd: float,
        spent_usd: float,
        hold: str | None = None,
    ) -> None:
        """Replace a reservation by what the call really cost (0.0 to just release it).

        With `hold`, releases exactly that hold (what it reserved; `reserved_usd` is not
        used): an unknown, expired or already settled hold releases nothing, so a late
        settle only adds `spent_usd`. Without one, takes `reserved_usd` off the plain
        reservations (never below zero); credit draws settle 0.0 reserved this way.
        """
        ...

    def mark_crossed(self, budget_id: str, period: str, threshold: float) -> bool:
        """Record that a budget crossed `threshold` in `period`; True only the first time, so
        an alert fires once per period even with many processes."""
        ...


_Slot = tuple[str, str]


class MemoryLedger:
    """The in-process ledger: the newest `max_records` records and every budget counter.

    Its holds die with the process, so expiry matters less here than in a shared store; it
    keeps them the same way (one protocol, one contract suite). `clock` (epoch seconds) is
    for tests. A slot's holds are kept in the order they were made, which is the order they
    expire in while the clock does not go back, so purging looks at the oldest only.
    """

    def __init__(
        self,
        *,
        max_records: int = _DEFAULT_MAX_RECORDS,
        hold_ttl: float = DEFAULT_HOLD_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hold_ttl = hold_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._records: deque[UsageRecord] = deque(maxlen=max_records)
        self._spent: dict[_Slot, float] = {}
        self._reserved: dict[_Slot, float] = {}
        """Plain reservations (made without a hold id)."""
        self._holds: dict[_Slot, dict[str, tuple[float, float]]] = {}
        """Live holds per slot: id -> (amount, expires), oldest first."""
        self._held: dict[_Slot, float] = {}
        """Sum of each slot's live holds."""
        self._crossed: set[tuple[str, str, float]] = set()

    def append(self, record: UsageRecord) -> None:
        with self._lock:
            self._records.append(record)

    def totals(
        self, by: GroupBy, *, since: float | None = None, until: float | None = None
    ) -> dict[str, UsageTotals]:
        result: dict[str, UsageTotals] = {}
        for record in self._select(since, until):
            name = _group(record, by)
            result[name] = result.get(name, UsageTotals()).add(record)
        return result

    def records(
        self, *, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[UsageRecord]:
        selected = list(self._select(since, until))
        return selected[-limit:] if limit is not None and limit >= 0 else selected

    def _select(self, since: float | None, until: float | None) -> Iterator[UsageRecord]:
        with self._lock:
            snapshot = tuple(self._records)
        low = -float("inf") if since is None else since
        high = float("inf") if until is None else until
        return (r for r in snapshot if low <= r.at < high)

    def spend(self, budget_id: str, period: str) -> BudgetSpend:
        slot = (budget_id, period)
        with self._lock:
            self._purge(slot, self.clock())
            return self._spend(slot)

    def _spend(self, slot: _Slot) -> BudgetSpend:
        reserved = self._reserved.get(slot, 0.0) + self._held.get(slot, 0.0)
        return BudgetSpend(slot[0], slot[1], self._spent.get(slot, 0.0), reserved)

    def _purge(self, slot: _Slot, now: float) -> None:
        """Drop the slot's expired holds (the oldest first; see the class docstring)."""
        holds = self._holds.get(slot)
        while holds:
            hold = next(iter(holds))
            if holds[hold][1] > now:
                return
            self._unhold(slot, holds, hold)

    def _unhold(self, slot: _Slot, holds: dict[str, tuple[float, float]], hold: str) -> None:
        amount, _ = holds.pop(hold)
        if holds:
            self._held[slot] = max(0.0, self._held[slot] - amount)
        else:  # exactly zero once nothing is held: float sums do not drift
            del self._holds[slot], self._held[slot]

    def reserve(
        self, claims: Sequence[BudgetClaim], amount_usd: float, hold: str | None = None
    ) -> BudgetSpend | None:
        with self._lock:
            now = self.clock()
            for claim in claims:
                slot = (claim.budget_id, claim.period)
                self._purge(slot, now)
                counter = self._spend(slot)
                if counter.committed_usd + amount_usd > claim.limit_usd + USD_EPSILON:
                    return counter
            for claim in claims:
                slot = (claim.budget_id, claim.period)
                if hold is None:
                    self._reserved[slot] = self._reserved.get(slot, 0.0) + amount_usd
                    continue
                holds = self._holds.get(slot)
                if holds is not None and hold in holds:  # the same id again replaces it
                    self._unhold(slot, holds, hold)
                if amount_usd > 0:
                    self._holds.setdefault(slot, {})[hold] = (amount_usd, now + self.hold_ttl)
                    self._held[slot] = self._held.get(slot, 0.0) + amount_usd
        return None

    def settle(
        self,
        claims: Sequence[BudgetClaim],
        reserved_usd: float,
        spent_usd: float,
        hold: str | None = None,
    ) -> None:
        with self._lock:
            for claim in claims:
                slot = (claim.budget_id, claim.period)
                if hold is None:
                    if reserved_usd:
                        left = self._reserved.get(slot, 0.0) - reserved_usd
                        self._reserved[slot] = max(0.0, left)
                else:
                    holds = self._holds.get(slot)
                    if holds is not None and hold in holds:
                        self._unhold(slot, holds, hold)
                if spent_usd:
                    self._spent[slot] = self._spent.get(slot, 0.0) + spent_usd

    def mark_crossed(self, budget_id: str, period: str, threshold: float) -> bool:
        mark = (budget_id, period, threshold)
        with self._lock:
            if mark in self._crossed:
                return False
            self._crossed.add(mark)
            return True


def _group(record: UsageRecord, by: GroupBy) -> str:
    if by == "key":
        return record.key
    if by == "scope":
        return record.scope
    if by == "pool":
        return record.pool
    return record.model or "unknown"
