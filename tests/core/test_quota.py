from __future__ import annotations

import math

import pytest

from keyrouter.core.quota import Capacity, Demand, Dimension, LimitObservation, ScopeQuota


def obs(
    dimension: str, limit: float, remaining: float, reset_in: float, now: float
) -> LimitObservation:
    return LimitObservation(dimension, limit, remaining, now + reset_in, now)


def test_refill_rate_is_learned_from_limit_remaining_and_reset() -> None:
    dim = Dimension()
    dim.observe(obs("requests", 60, 30, 30.0, 0.0), unsettled=0, now=0.0)
    assert dim.rate == pytest.approx(1.0)
    assert dim.available(10.0) == pytest.approx(40.0)
    assert dim.available(1000.0) == 60


def test_prediction_says_how_long_until_a_request_fits() -> None:
    dim = Dimension()
    dim.observe(obs("tokens", 1000, 100, 9.0, 0.0), unsettled=0, now=0.0)
    assert dim.rate == pytest.approx(100.0)
    assert dim.seconds_until(100, 0.0) == 0.0
    assert dim.seconds_until(300, 0.0) == pytest.approx(2.0)
    assert dim.seconds_until(2000, 0.0) == math.inf, "more than the limit never fits"


def test_unknown_dimension_admits_anything() -> None:
    assert Dimension().seconds_until(1e9, 0.0) == 0.0
    assert Dimension().headroom(0.0) == 1.0


def test_first_request_probes_and_others_wait_for_its_answer() -> None:
    quota = ScopeQuota()
    assert quota.admits(Demand(), 0.0) == 0.0
    quota.reserve(1, Demand(), 0.0)
    assert math.isnan(quota.admits(Demand(), 0.0))
    quota.settle(1, [obs("requests", 60, 59, 1.0, 0.1)], 0.1)
    assert quota.admits(Demand(), 0.1) == 0.0


def test_headerless_scope_is_not_gated() -> None:
    quota = ScopeQuota()
    quota.reserve(1, Demand(), 0.0)
    quota.settle(1, [], 0.1)
    quota.mark_headerless()
    for seq in range(2, 50):
        assert quota.admits(Demand(), 0.2) == 0.0
        quota.reserve(seq, Demand(), 0.2)


def test_requests_still_in_flight_are_subtracted_from_an_answer() -> None:
    quota = ScopeQuota()
    quota.reserve(1, Demand(), 0.0)
    quota.settle(1, [obs("requests", 10, 9, 6.0, 0.0)], 0.0)
    for seq in (2, 3, 4):
        quota.reserve(seq, Demand(), 0.0)
    assert quota.dimensions["requests"].available(0.0) == pytest.approx(6.0)
    # The answer to request 3 may not count 2 and 4 yet (requests overtake each other).
    quota.settle(3, [obs("requests", 10, 8, 12.0, 0.0)], 0.0)
    assert quota.dimensions["requests"].available(0.0) == pytest.approx(6.0)
    quota.settle(2, [obs("requests", 10, 6, 24.0, 0.0)], 0.0)
    assert quota.dimensions["requests"].available(0.0) == pytest.approx(5.0)


def test_a_late_answer_to_an_earlier_request_never_raises_the_estimate() -> None:
    quota = ScopeQuota()
    quota.reserve(1, Demand(), 0.0)
    quota.settle(1, [obs("requests", 10, 9, 6.0, 0.0)], 0.0)
    quota.reserve(2, Demand(), 0.0)
    quota.reserve(3, Demand(), 0.0)
    # The provider counts 2 then 3; 3's answer (7 left) comes back first, 2's (8 left) last.
    quota.settle(3, [obs("requests", 10, 7, 18.0, 0.0)], 0.0)
    quota.settle(2, [obs("requests", 10, 8, 12.0, 0.0)], 0.0)
    assert quota.dimensions["requests"].available(0.0) <= 7.0  # 8 would invite a 429
    quota.reserve(4, Demand(), 0.0)
    quota.settle(4, [obs("requests", 10, 6, 24.0, 0.0)], 0.0)  # newer news is adopted
    assert quota.dimensions["requests"].available(0.0) == pytest.approx(6.0)


def test_refund_returns_a_reservation_that_the_provider_never_counted() -> None:
    quota = ScopeQuota()
    quota.reserve(1, Demand(), 0.0)
    quota.settle(1, [obs("requests", 10, 9, 6.0, 0.0)], 0.0)
    quota.reserve(2, Demand({"requests": 1, "tokens": 50}), 0.0)
    quota.settle(2, [], 0.0, refund=True)
    assert quota.dimensions["requests"].available(0.0) == pytest.approx(9.0)
    assert not quota.in_flight


def test_capacity_classes_follow_headroom() -> None:
    quota = ScopeQuota()
    quota.reserve(1, Demand(), 0.0)
    quota.settle(1, [obs("requests", 100, 90, 6.0, 0.0)], 0.0)
    assert quota.capacity(0.0) is Capacity.ABUNDANT
    quota.settle(2, [obs("requests", 100, 30, 42.0, 0.0)], 0.0)
    assert quota.capacity(0.0) is Capacity.CONSTRAINED
    quota.settle(3, [obs("requests", 100, 5, 57.0, 0.0)], 0.0)
    assert quota.capacity(0.0) is Capacity.CRITICAL
    quota.settle(4, [obs("requests", 100, 0, 60.0, 0.0)], 0.0)
    assert quota.capacity(0.0) is Capacity.EXHAUSTED


def test_time_to_exhaustion_follows_the_consumption_rate() -> None:
    dim = Dimension()
    dim.observe(obs("requests", 1000, 1000, 0.0, 0.0), unsettled=0, now=0.0)
    dim.rate = 1.0
    for step in range(1, 101):
        dim.debit(10, step * 0.1)  # 100 units/s against 1 unit/s of refill
    tte = dim.seconds_to_exhaustion(10.0)
    assert 0 < tte < 30


def test_headerless_scope_learns_a_pace_from_its_first_429() -> None:
    quota = ScopeQuota()
    for second in range(30):  # 2 successes a second, no headers
        for half in (0.0, 0.5):
            seq = second * 2 + int(half * 2) + 1
            quota.reserve(seq, Demand(), second + half)
            quota.settle(seq, [], second + half)
            quota.mark_headerless()
            quota.note_headerless_success(second + half)
    assert quota.admits(Demand(), 30.0) == 0.0, "ungated until the provider objects"
    quota.note_headerless_rate_limit(30.0)
    dim = quota.dimensions["requests"]
    assert dim.rate == pytest.approx(2.0 * 0.9, rel=0.05)
    assert quota.admits(Demand(), 30.0) > 0, "paced right after the 429"
    assert quota.admits(Demand(), 31.0) == 0.0


def test_a_first_429_with_nothing_served_yet_sets_no_pace() -> None:
    quota = ScopeQuota()
    quota.note_headerless_rate_limit(0.0)
    assert not quota.throttled
    assert quota.admits(Demand(), 0.0) == 0.0


def test_headerless_pace_halves_on_each_429_and_creeps_up_on_success() -> None:
    quota = ScopeQuota()
    quota.mark_headerless()
    for step in range(10):
        quota.note_headerless_success(step * 0.1)
    quota.note_headerless_rate_limit(1.0)
    first = quota.dimensions["requests"].rate
    assert first is not None
    quota.note_headerless_rate_limit(1.5)
    halved = quota.dimensions["requests"].rate
    assert halved == pytest.approx(max(first / 2, 1 / 60))
    for _ in range(60):
        quota.note_headerless_success(2.0)
    assert quota.dimensions["requests"].rate == pytest.approx(halved + 1.0)


def test_a_scope_that_sends_headers_ignores_the_headerless_rules() -> None:
    quota = ScopeQuota()
    quota.reserve(1, Demand(), 0.0)
    quota.settle(1, [obs("requests", 10, 9, 6.0, 0.0)], 0.0)
    quota.note_headerless_rate_limit(1.0)
    assert not quota.throttled
    assert quota.dimensions["requests"].limit == 10


def test_remaining_without_a_limit_still_refills() -> None:
    """Azure sends x-ratelimit-remaining-* only: the estimate must not stall at zero."""
    dim = Dimension()
    dim.observe(LimitObservation("requests", None, 30, None, 0.0), unsettled=0, now=0.0)
    dim.observe(LimitObservation("requests", None, 0, None, 1.0), unsettled=0, now=1.0)
    assert dim.limit == 30
    assert dim.seconds_until(1, 1.0) == pytest.approx(2.0, rel=0.01)
