from __future__ import annotations

from collections import Counter

import pytest

from keyrouter import ConfigError, Key, KeyState
from keyrouter.core.events import CapacityChanged, Event, KeyStateChanged
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.core.state import StateBook

S = "sk-test-0123456789abcdefghij"


def make_pool(n: int = 3, objective: str = "headroom", **key_args: object) -> KeyPool:
    keys = [Key(f"{S}{i:04d}", **key_args) for i in range(n)]  # type: ignore[arg-type]
    return KeyPool(keys, book=StateBook(), objective=objective)


def grant(pool: KeyPool, now: float = 0.0):  # type: ignore[no-untyped-def]
    decision = pool.select(Demand(), now)
    assert decision.lease is not None, decision.explain(now)
    return decision.lease


def test_headerless_keys_are_spread_evenly() -> None:
    pool = make_pool(3)
    served: Counter[str] = Counter()
    for _ in range(30):
        lease = grant(pool)
        served[lease.key.label] += 1
        pool.settle(lease, Outcome.success(), 0.0)
    assert sorted(served.values()) == [10, 10, 10]


def test_weights_bias_the_share() -> None:
    keys = [Key(S + "heavy", weight=3.0), Key(S + "light")]
    pool = KeyPool(keys, book=StateBook())
    served: Counter[str] = Counter()
    for _ in range(40):
        lease = grant(pool)
        served[lease.key.label] += 1
        pool.settle(lease, Outcome.success(), 0.0)
    assert served[keys[0].label] == 30


def test_round_robin_rotates_in_order() -> None:
    pool = make_pool(3, objective="round_robin")
    order = []
    for _ in range(6):
        lease = grant(pool)
        order.append(lease.key.label)
        pool.settle(lease, Outcome.success(), 0.0)
    assert order[:3] == order[3:]
    assert len(set(order[:3])) == 3


def test_reliability_prefers_the_key_that_fails_least() -> None:
    pool = make_pool(2, objective="reliability")
    flaky = grant(pool)
    pool.settle(flaky, Outcome(OutcomeKind.SERVER_ERROR, 500), 0.0)
    for _ in range(5):
        lease = grant(pool)
        assert lease.key != flaky.key
        pool.settle(lease, Outcome.success(), 0.0)


def test_invalid_key_is_never_chosen_again_and_the_refusal_says_why() -> None:
    pool = make_pool(2)
    bad = grant(pool)
    pool.settle(bad, Outcome(OutcomeKind.INVALID_KEY, 401, "invalid_api_key"), 0.0)
    for _ in range(5):
        decision = pool.select(Demand(), 1.0)
        assert decision.key != bad.key
        assert any("invalid" in r.reason for r in decision.refused)
        assert decision.lease is not None
        pool.settle(decision.lease, Outcome.success(), 1.0)


def test_rate_limit_cools_every_key_of_the_scope() -> None:
    keys = [Key(S + "a", scope="org"), Key(S + "b", scope="org"), Key(S + "c")]
    pool = KeyPool(keys, book=StateBook())
    lease = pool.select(Demand(), 0.0, exclude={keys[2].id}).lease
    assert lease is not None
    pool.settle(lease, Outcome(OutcomeKind.RATE_LIMITED, 429, "rate_limit_exceeded", 10.0), 0.0)
    for _ in range(3):
        decision = pool.select(Demand(), 1.0)
        assert decision.key == keys[2]
        assert decision.lease is not None
        pool.settle(decision.lease, Outcome.success(), 1.0)
    decision = pool.select(Demand(), 1.0, exclude={keys[2].id})
    assert decision.lease is None
    assert decision.retry_at == 10.0


def test_no_key_decision_gives_the_earliest_recovery() -> None:
    pool = make_pool(2)
    for until in (30.0, 12.0):
        lease = grant(pool)
        pool.settle(lease, Outcome(OutcomeKind.RATE_LIMITED, 429, "r", until), 0.0)
    decision = pool.select(Demand(), 1.0)
    assert decision.lease is None
    assert decision.retry_at == 12.0
    assert "no key can serve now" in decision.explain(1.0)
    assert "11.0s" in decision.explain(1.0)


def test_quota_prediction_refuses_a_scope_that_cannot_take_the_request() -> None:
    pool = make_pool(1)
    lease = grant(pool)
    observed = [LimitObservation("tokens", 1000, 100, 9.0, 0.0)]
    pool.settle(lease, Outcome.success(), 0.0, observed)
    big = Demand({"requests": 1, "tokens": 500})
    decision = pool.select(big, 0.0)
    assert decision.lease is None
    assert decision.retry_at == pytest.approx(4.0)
    assert "tokens" in decision.refused[0].reason
    assert pool.select(big, decision.retry_at - 0.01).lease is None
    assert pool.select(big, decision.retry_at).lease is not None, "fits at the predicted time"


def test_fifo_queue_lets_no_newcomer_overtake_a_waiter() -> None:
    pool = make_pool(1)
    first, second = pool.enqueue(lambda: None), pool.enqueue(lambda: None)
    assert pool.select(Demand(), 0.0).queued
    assert pool.select(Demand(), 0.0, ticket=second).queued
    assert pool.select(Demand(), 0.0, ticket=first).lease is not None
    pool.dequeue(first)
    assert pool.select(Demand(), 0.0, ticket=second).lease is None  # probing: one in flight
    pool.dequeue(second)
    pool.dequeue(second)  # twice is harmless


def test_abandon_releases_in_flight_and_reservation() -> None:
    pool = make_pool(1)
    lease = grant(pool)
    pool.abandon(lease, 0.0)
    record = pool.book.keys[lease.key.id]
    assert record.stats.in_flight == 0
    assert not pool.book.scopes[lease.scope_id].quota.in_flight
    assert pool.select(Demand(), 0.0).lease is not None


def test_state_is_shared_between_pools_of_one_book() -> None:
    book = StateBook()
    keys = [Key(S + "x"), Key(S + "y")]
    first = KeyPool(keys, book=book)
    second = KeyPool(list(reversed(keys)), book=book)
    lease = first.select(Demand(), 0.0, exclude={keys[1].id}).lease
    assert lease is not None
    first.settle(lease, Outcome(OutcomeKind.INVALID_KEY, 401), 0.0)
    snap = {s.key: s.state for s in second.snapshot(0.0)}
    assert snap[keys[0].label] is KeyState.INVALID


def test_events_report_state_and_capacity_changes_and_listener_errors_are_contained() -> None:
    pool = make_pool(1)
    events: list[Event] = []

    def broken(_: Event) -> None:
        raise RuntimeError("listener bug")

    pool.book.listeners.add(broken)
    pool.book.listeners.add(events.append)
    lease = grant(pool)
    observed = [LimitObservation("requests", 10, 0, 60.0, 0.0)]
    pool.settle(lease, Outcome(OutcomeKind.RATE_LIMITED, 429, "r", 6.0), 0.0, observed)
    kinds = {type(e) for e in events}
    assert kinds == {KeyStateChanged, CapacityChanged}
    change = next(e for e in events if isinstance(e, KeyStateChanged))
    assert change.new is KeyState.COOLING


def test_snapshot_reports_learned_limits() -> None:
    pool = make_pool(1)
    lease = grant(pool)
    observed = [LimitObservation("requests", 60, 30, 30.0, 0.0)]
    pool.settle(lease, Outcome.success(), 0.0, observed)
    (snap,) = pool.snapshot(0.0)
    assert snap.dimensions["requests"].limit == 60
    assert snap.dimensions["requests"].refill_per_second == pytest.approx(1.0)
    assert snap.attempts == 1
    assert snap.successes == 1
    assert S not in repr(snap)


def test_unknown_objective_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="objective"):
        make_pool(1, objective="cheapest")


def test_a_long_run_keeps_every_key_filed_and_its_index_bounded() -> None:
    """However long a pool runs, every key stays filed and the stale entries re-filing
    leaves are swept (a few heap slots per upkeep, no pause to compact)."""
    pool = make_pool(300)
    ok = Outcome(OutcomeKind.SUCCESS, 200)
    for step in range(3_000):
        decision = pool.select(Demand({"requests": 1.0}), float(step))
        assert decision.lease is not None
        pool.settle(decision.lease, ok, float(step))
    assert len(pool._ready) <= 2 * len(pool.keys)
    assert len({entry[-1] for entry in pool._ready}) == len(pool.keys)  # every key filed
