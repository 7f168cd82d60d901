"""State shared beyond one process: what a store holds, the protocol it implements, and how
the book adopts it.

The book (`core/state.py`) is one process's state, guarded by one lock and never doing I/O. A
`StateStore` holds the truth several processes share: per quota scope, a token bucket per
dimension (level, as of when, refill rate, limit), a cooldown or exhaustion, and the
reservations in flight; per key, whether it was found invalid or disabled. The transport asks
the store to confirm each lease (outside the book's lock) and reports each answer back; what
the store returns is adopted into the book here. Nothing in this module does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from keyrouter.core.decision import Lease
from keyrouter.core.events import Listeners
from keyrouter.core.health import BreakerSettings, KeyHealth, KeyState
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Dimension, LimitObservation
from keyrouter.core.state import KeyRecord, ScopeRecord
from keyrouter.core.usage import UsageLedger

__all__ = [
    "Grant",
    "SharedDimension",
    "SharedKey",
    "SharedScope",
    "StateStore",
    "adopt_key",
    "adopt_scope",
]


@dataclass(frozen=True, slots=True)
class SharedDimension:
    """One dimension's shared bucket: `level` units at time `as_of`, refilling at `rate`/s."""

    limit: float | None
    level: float
    as_of: float
    rate: float | None


@dataclass(frozen=True, slots=True)
class SharedScope:
    """A quota scope as every process sees it."""

    dimensions: Mapping[str, SharedDimension] = field(default_factory=dict)
    state: KeyState = KeyState.AVAILABLE
    """`COOLING` or `EXHAUSTED` until `until`, else `AVAILABLE`."""
    until: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SharedKey:
    """A key as every process sees it: `INVALID` and `DISABLED` are for good."""

    state: KeyState = KeyState.AVAILABLE
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Grant:
    """A store's answer to a lease: granted or not, and the shared state it was judged on."""

    granted: bool
    scope: SharedScope
    key: SharedKey
    retry_at: float | None = None
    """When refused: when the shared state predicts the scope can take the request."""


@runtime_checkable
class StateStore(Protocol):
    """Where state shared by processes lives (SQLite on one machine, Redis across hosts).

    Every method may do I/O: never call one under `StateBook.lock`. None of them raises for an
    outage: `reserve` returns None (go on with local state) and the store says so once, as a
    `StoreDegraded` event and a warning.
    """

    ledger: UsageLedger
    """Usage records and budget spend, kept in the same store (never raises either)."""
    listeners: Listeners | None
    """Where the store reports `StoreDegraded` / `StoreRecovered` (the book's listeners)."""

    def reserve(self, lease: Lease, now: float) -> Grant | None:
        """Debit the lease's demand from the shared buckets if it fits (atomically across
        processes); None when the store cannot be reached."""
        ...

    def settle(
        self,
        lease: Lease,
        outcome: Outcome | None,
        observations: Sequence[LimitObservation],
        now: float,
    ) -> None:
        """Release the lease's reservation and publish what the answer taught (limits,
        cooldown, exhaustion, an invalid key). `outcome` None: abandoned without an answer.
        May be buffered and sent with the next `reserve`."""
        ...

    def load(
        self, scope_ids: Sequence[str], key_ids: Sequence[str], now: float
    ) -> tuple[dict[str, SharedScope], dict[str, SharedKey]]:
        """What is known about these scopes and keys (state from before a restart, or from
        other processes), for a pool to adopt when it starts."""
        ...

    def close(self) -> None:
        """Send what is buffered and release connections."""
        ...


def adopt_scope(
    record: ScopeRecord, shared: SharedScope, now: float, settings: BreakerSettings
) -> None:
    """Take the shared buckets and cooldown as this process's estimate (call under the lock).

    The shared level already counts every process's reservations (this one's included), so it
    replaces the local level rather than adding to it.
    """
    quota = record.quota
    for name, bucket in shared.dimensions.items():
        dim = quota.dimensions.get(name)
        if dim is None:
            dim = quota.dimensions[name] = Dimension()
        dim.limit, dim.level, dim.as_of, dim.rate = (
            bucket.limit,
            bucket.level,
            bucket.as_of,
            bucket.rate,
        )
        dim.known = True
        dim.limit_announced = dim.limit_announced or bucket.limit is not None
    if shared.dimensions:
        quota.learned = True
    if shared.state is KeyState.AVAILABLE or not shared.until > now:
        return
    kind = OutcomeKind.RATE_LIMITED if shared.state is KeyState.COOLING else None
    if kind is None:
        if record.health.state is KeyState.EXHAUSTED and record.health.until >= shared.until:
            return
        kind = OutcomeKind.QUOTA_EXHAUSTED
    record.health.apply(Outcome(kind, reason=shared.reason, retry_at=shared.until), now, settings)


def adopt_key(record: KeyRecord, shared: SharedKey, now: float, settings: BreakerSettings) -> None:
    """A key another process found invalid or disabled is so here too (call under the lock)."""
    health: KeyHealth = record.health
    if shared.state is KeyState.INVALID and health.state is not KeyState.INVALID:
        health.apply(Outcome(OutcomeKind.INVALID_KEY, reason=shared.reason), now, settings)
    elif shared.state is KeyState.DISABLED and health.state is not KeyState.DISABLED:
        health.apply(Outcome(OutcomeKind.FORBIDDEN, reason=shared.reason), now, settings)
