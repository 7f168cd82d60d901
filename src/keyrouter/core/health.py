"""The state machine of one key's health, and of one quota scope's availability.

A key is `AVAILABLE`, `COOLING` until a time, `EXHAUSTED` until a time (or unknown reset),
`INVALID`, `DISABLED`, or its circuit is `CIRCUIT_OPEN` / `HALF_OPEN`. Transitions are pure
functions of (state, outcome, now) so they can be tested exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from keyrouter.core.outcome import Outcome, OutcomeKind

__all__ = ["BreakerSettings", "KeyHealth", "KeyState", "ScopeHealth"]


class KeyState(Enum):
    AVAILABLE = "available"
    COOLING = "cooling"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"
    DISABLED = "disabled"
    CIRCUIT_OPEN = "circuit_open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a key's circuit opens and how long before it is probed again.

    `failure_threshold` consecutive server/connection failures open the circuit for
    `open_seconds`; then one probe request is let through (half-open): success closes it,
    failure reopens it for twice as long, up to `max_open_seconds`.
    """

    failure_threshold: int = 3
    open_seconds: float = 5.0
    max_open_seconds: float = 300.0
    default_cooldown_seconds: float = 1.0
    """Cooldown after a rate limit that did not say when to retry."""
    default_exhausted_seconds: float = 3600.0
    """How long a scope stays exhausted when the provider did not say when it resets."""


_PERMANENT = (KeyState.INVALID, KeyState.DISABLED)


@dataclass(slots=True)
class KeyHealth:
    """Mutable health of one key. Only `apply` and `usable` encode the rules."""

    state: KeyState = KeyState.AVAILABLE
    until: float = 0.0
    consecutive_failures: int = 0
    open_seconds: float = 0.0
    probe_in_flight: bool = False
    reason: str = ""

    def effective_state(self, now: float) -> KeyState:
        """The state as of `now`: timed states lapse by themselves."""
        if self.state is KeyState.AVAILABLE:
            return KeyState.AVAILABLE  # nearly always: answered first
        if self.state is KeyState.CIRCUIT_OPEN and now >= self.until:
            return KeyState.HALF_OPEN
        if self.state in (KeyState.COOLING, KeyState.EXHAUSTED) and now >= self.until:
            return KeyState.AVAILABLE
        return self.state

    def usable(self, now: float) -> bool:
        state = self.effective_state(now)
        if state is KeyState.HALF_OPEN:
            return not self.probe_in_flight
        return state is KeyState.AVAILABLE

    def on_pick(self, now: float) -> None:
        """Note that a request goes out on this key (a half-open key lets one probe through)."""
        if self.effective_state(now) is KeyState.HALF_OPEN:
            self.state = KeyState.HALF_OPEN
            self.probe_in_flight = True

    def on_abandon(self) -> None:
        """The attempt ended without an answer that says anything about the key."""
        self.probe_in_flight = False

    def apply(self, outcome: Outcome, now: float, settings: BreakerSettings) -> None:
        """Move to the state `outcome` implies. Permanent states are never left."""
        self.probe_in_flight = False
        if self.state in _PERMANENT:
            return
        kind = outcome.kind
        if kind is OutcomeKind.SUCCESS or kind is OutcomeKind.REQUEST_ERROR:
            self._close_circuit()
        elif kind is OutcomeKind.INVALID_KEY:
            self._set(KeyState.INVALID, float("inf"), outcome.reason or "invalid_api_key")
        elif kind is OutcomeKind.FORBIDDEN:
            self._set(KeyState.DISABLED, float("inf"), outcome.reason or "forbidden")
        elif kind is OutcomeKind.SERVER_ERROR:
            self._on_server_failure(now, settings, outcome.reason)
        # RATE_LIMITED, QUOTA_EXHAUSTED and OVERLOADED are about the scope, not the key.

    def _on_server_failure(self, now: float, settings: BreakerSettings, reason: str) -> None:
        self.consecutive_failures += 1
        was_probing = self.effective_state(now) is KeyState.HALF_OPEN
        if was_probing or self.consecutive_failures >= settings.failure_threshold:
            base = self.open_seconds * 2 if was_probing else settings.open_seconds
            self.open_seconds = min(max(base, settings.open_seconds), settings.max_open_seconds)
            self._set(KeyState.CIRCUIT_OPEN, now + self.open_seconds, reason or "server_error")

    def _close_circuit(self) -> None:
        self.consecutive_failures = 0
        self.open_seconds = 0.0
        if self.state in (KeyState.CIRCUIT_OPEN, KeyState.HALF_OPEN):
            self._set(KeyState.AVAILABLE, 0.0, "")

    def _set(self, state: KeyState, until: float, reason: str) -> None:
        self.state, self.until, self.reason = state, until, reason


@dataclass(slots=True)
class ScopeHealth:
    """Availability of one quota scope (shared by every key of that scope).

    A rate limit cools the whole scope; spent credit exhausts it. Both lapse at `until`.
    """

    state: KeyState = KeyState.AVAILABLE
    until: float = 0.0
    reason: str = ""

    def effective_state(self, now: float) -> KeyState:
        if self.state is not KeyState.AVAILABLE and now >= self.until:
            return KeyState.AVAILABLE
        return self.state

    def apply(self, outcome: Outcome, now: float, settings: BreakerSettings) -> None:
        if outcome.kind is OutcomeKind.RATE_LIMITED:
            until = outcome.retry_at or now + settings.default_cooldown_seconds
            # Never shorten an existing cooldown: a late, stale answer must not reopen early.
            self._extend(KeyState.COOLING, until, outcome.reason or "rate_limited")
        elif outcome.kind is OutcomeKind.QUOTA_EXHAUSTED:
            until = outcome.retry_at or now + settings.default_exhausted_seconds
            self.state, self.until, self.reason = KeyState.EXHAUSTED, until, outcome.reason

    def _extend(self, state: KeyState, until: float, reason: str) -> None:
        if self.state is KeyState.EXHAUSTED and self.until > until:
            return
        if self.state is state and self.until >= until:
            return
        self.state, self.until, self.reason = state, until, reason
