from __future__ import annotations

import math

import pytest

from keyrouter.core.health import BreakerSettings, KeyHealth, KeyState, ScopeHealth
from keyrouter.core.outcome import Outcome, OutcomeKind

SETTINGS = BreakerSettings(failure_threshold=3, open_seconds=5.0, max_open_seconds=40.0)
FAIL = Outcome(OutcomeKind.SERVER_ERROR, 500, "http_500")
OK = Outcome.success()


def test_circuit_opens_after_threshold_then_half_opens_and_closes_on_success() -> None:
    health = KeyHealth()
    health.apply(FAIL, 0.0, SETTINGS)
    health.apply(FAIL, 0.0, SETTINGS)
    assert health.usable(0.0)
    health.apply(FAIL, 1.0, SETTINGS)
    assert health.effective_state(1.0) is KeyState.CIRCUIT_OPEN
    assert not health.usable(5.9)
    assert health.effective_state(6.0) is KeyState.HALF_OPEN
    assert health.usable(6.0)
    health.on_pick(6.0)
    assert not health.usable(6.0), "only one probe at a time"
    health.apply(OK, 6.1, SETTINGS)
    assert health.effective_state(6.1) is KeyState.AVAILABLE
    assert health.consecutive_failures == 0


def test_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    health = KeyHealth()
    for _ in range(3):
        health.apply(FAIL, 0.0, SETTINGS)
    opened = []
    now = 0.0
    for _ in range(5):
        now = health.until
        health.on_pick(now)
        health.apply(FAIL, now, SETTINGS)
        opened.append(health.until - now)
    assert opened == [10.0, 20.0, 40.0, 40.0, 40.0]


def test_abandoned_probe_frees_the_half_open_slot() -> None:
    health = KeyHealth()
    for _ in range(3):
        health.apply(FAIL, 0.0, SETTINGS)
    health.on_pick(5.0)
    assert not health.usable(5.0)
    health.on_abandon()
    assert health.usable(5.0)


@pytest.mark.parametrize(
    ("kind", "state"),
    [(OutcomeKind.INVALID_KEY, KeyState.INVALID), (OutcomeKind.FORBIDDEN, KeyState.DISABLED)],
)
def test_invalid_and_forbidden_are_permanent(kind: OutcomeKind, state: KeyState) -> None:
    health = KeyHealth()
    health.apply(Outcome(kind, 401), 0.0, SETTINGS)
    health.apply(OK, 1.0, SETTINGS)
    assert health.effective_state(1e12) is state
    assert not health.usable(1e12)


def test_request_errors_do_not_count_against_the_key() -> None:
    health = KeyHealth()
    for _ in range(10):
        health.apply(Outcome(OutcomeKind.REQUEST_ERROR, 400), 0.0, SETTINGS)
    assert health.usable(0.0)


def test_scope_cools_until_retry_at_and_never_shortens() -> None:
    scope = ScopeHealth()
    scope.apply(Outcome(OutcomeKind.RATE_LIMITED, 429, "r", retry_at=10.0), 0.0, SETTINGS)
    scope.apply(Outcome(OutcomeKind.RATE_LIMITED, 429, "r", retry_at=3.0), 1.0, SETTINGS)
    assert scope.effective_state(9.9) is KeyState.COOLING
    assert scope.effective_state(10.0) is KeyState.AVAILABLE


def test_rate_limit_without_retry_after_uses_the_default_cooldown() -> None:
    scope = ScopeHealth()
    scope.apply(Outcome(OutcomeKind.RATE_LIMITED, 429), 5.0, SETTINGS)
    assert scope.until == 5.0 + SETTINGS.default_cooldown_seconds


def test_exhausted_scope_is_not_shortened_by_a_later_rate_limit() -> None:
    scope = ScopeHealth()
    scope.apply(Outcome(OutcomeKind.QUOTA_EXHAUSTED, 429, "insufficient_quota"), 0.0, SETTINGS)
    scope.apply(Outcome(OutcomeKind.RATE_LIMITED, 429, retry_at=1.0), 0.5, SETTINGS)
    assert scope.effective_state(2.0) is KeyState.EXHAUSTED
    assert math.isclose(scope.until, SETTINGS.default_exhausted_seconds)
