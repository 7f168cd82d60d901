"""Events the core emits, and the tiny registry that delivers them.

Listeners are plain callables. A listener that raises or is slow is the listener's problem:
the error is logged and swallowed, never passed into a caller's request. Every event is also
logged under the `keyrouter` logger (see `keyrouter.core._log_events`). Per-call events
(`RequestRouted`) are only built when `Listeners.routine()` says someone wants them, so a
process where nobody listens pays one check per attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from keyrouter.core._log_events import log_event
from keyrouter.core.decision import Decision
from keyrouter.core.health import KeyState
from keyrouter.core.quota import Capacity

if TYPE_CHECKING:  # core.usage loads only for pools that meter usage
    from keyrouter.core.usage import Usage

__all__ = [
    "BudgetThresholdCrossed",
    "CapacityChanged",
    "Event",
    "Failover",
    "KeyStateChanged",
    "Listeners",
    "RequestRouted",
    "StoreDegraded",
    "StoreRecovered",
    "UsageRecorded",
]

_log = logging.getLogger("keyrouter")


@dataclass(frozen=True, slots=True)
class KeyStateChanged:
    """A key (or its quota scope) changed state. Every event names keys by label and scopes
    as `KeySnapshot.scope` does: the scope's name, else the key's label; never a secret."""

    key: str
    scope: str
    old: KeyState
    new: KeyState
    reason: str
    until: float | None
    at: float


@dataclass(frozen=True, slots=True)
class CapacityChanged:
    scope: str
    old: Capacity
    new: Capacity
    seconds_to_exhaustion: float
    at: float


@dataclass(frozen=True, slots=True)
class RequestRouted:
    """An attempt of a request was given a key: `decision` says why it, and why not the others.

    `key` is the key's label (its name, else its fingerprint); `attempt` counts from 1.
    """

    provider: str
    key: str
    scope: str
    model: str | None
    attempt: int
    decision: Decision
    at: float


@dataclass(frozen=True, slots=True)
class Failover:
    """An attempt failed and the request went on to another key (or the same one, after a wait).

    `kind` is the outcome class of the failed attempt (`rate_limited`, `invalid_key`,
    `quota_exhausted`, `forbidden`, `server_error`); `reason` the provider's word for it.
    A `rate_limited` failover is a 429 the caller never saw.
    """

    provider: str
    from_key: str
    to_key: str
    kind: str
    reason: str
    status: int | None
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class StoreDegraded:
    """The shared store stopped answering: this process routes on its own state meanwhile.

    Emitted (and logged as a warning) once per outage; `StoreRecovered` ends it.
    """

    log_level: ClassVar[int] = logging.WARNING
    store: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """The shared store answers again after `seconds_down`."""

    store: str
    seconds_down: float
    at: float


@dataclass(frozen=True, slots=True)
class BudgetThresholdCrossed:
    """A budget's spend reached `threshold` (a fraction of its limit) in `period`; fired once
    per budget, period and threshold (`threshold >= 1.0`: the budget is spent)."""

    log_level: ClassVar[int] = logging.WARNING
    budget: str
    period: str
    threshold: float
    spent_usd: float
    limit_usd: float
    resets_at: float
    at: float


@dataclass(frozen=True, slots=True)
class UsageRecorded:
    """A response ended and its usage was recorded (pools that keep usage: budgets, credits,
    the `cost` objective, `usage=True`). `cost_usd` is None when the model has no price."""

    log_level: ClassVar[int] = logging.DEBUG
    provider: str
    key: str
    scope: str
    model: str | None
    usage: Usage
    cost_usd: float | None
    estimated: bool
    latency_s: float
    at: float


Event = (
    KeyStateChanged
    | CapacityChanged
    | RequestRouted
    | Failover
    | StoreDegraded
    | StoreRecovered
    | BudgetThresholdCrossed
    | UsageRecorded
)


class Listeners:
    """A list of callbacks; `emit` never raises."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Event], None]] = []

    def add(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Register `callback`; returns a function that unregisters it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def emit(self, events: list[Event]) -> None:
        for event in events:
            log_event(event)
            for callback in tuple(self._callbacks):
                try:
                    callback(event)
                except Exception:
                    _log.warning("keyrouter event listener %r failed", callback, exc_info=True)

    def routine(self) -> bool:
        """Whether per-call events are wanted: a callback is registered, or the `keyrouter`
        logger is enabled for DEBUG (where per-call events are logged)."""
        return bool(self._callbacks) or _log.isEnabledFor(logging.DEBUG)

    def __bool__(self) -> bool:
        return bool(self._callbacks)
