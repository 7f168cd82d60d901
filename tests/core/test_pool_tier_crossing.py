"""Re-ranking driven by the quota model: a key is re-filed when its scope refills across a
headroom tier floor, and at no other time than its rank can change."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from keyrouter import Key
from keyrouter.core._crossing import CROSSING_PAD, seconds_to_share, tier_of
from keyrouter.core.decision import Lease
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand, LimitObservation, ScopeQuota
from keyrouter.core.state import StateBook

SECRETS = [f"sk-tier-{i:04d}-0123456789abcdefghij" for i in range(10)]
OK = Outcome(OutcomeKind.SUCCESS, 200)
ONE = Demand({"requests": 1.0})
SECRETS_ID = [Key(s).id for s in SECRETS]


def _answer(remaining: float, now: float, reset_in: float) -> list[LimitObservation]:
    return [LimitObservation("requests", 1000.0, remaining, now + reset_in, now)]


def _learn(pool: KeyPool, key: Key, remaining: float, now: float, reset_in: float) -> None:
    """Grant `key` (excluding the others) once and answer with `remaining` of 1,000 left."""
    others = {k.id for k in pool.keys if k is not key}
    decision = pool.select(ONE, now, exclude=others)
    assert decision.lease is not None
    assert decision.key is key
    pool.settle(decision.lease, OK, now, _answer(remaining, now, reset_in))


def test_a_scope_that_refills_into_a_better_tier_is_preferred_again_with_no_grant_on_it() -> None:
    low, mid = Key(SECRETS[0]), Key(SECRETS[1])
    pool = KeyPool([low, mid], book=StateBook())
    # `low`: 100 of 1,000 left, full in 90 s (10 a second): tier 2, at 20% (tier 1) 10 s on.
    _learn(pool, low, 100.0, 0.0, 90.0)
    # `mid`: 300 left, refilling at 0.1 a second: tier 1 for the whole test.
    _learn(pool, mid, 300.0, 0.0, 7000.0)
    assert math.isclose(pool._due_of[low.scope_id][0], 10.0, abs_tol=1e-3)
    attempts = pool.book.key(low.id, low.label, low.scope_id).stats.attempts
    for step in range(1, 10):
        decision = pool.select(ONE, float(step))
        assert decision.key is mid  # a better tier than `low`'s, however often it served
        assert decision.lease is not None
        pool.settle(decision.lease, OK, float(step), None)  # unread: nothing about `low`
    assert pool.book.key(low.id, low.label, low.scope_id).stats.attempts == attempts
    # Past the crossing `low` shares `mid`'s tier and has served far less: its turn.
    decision = pool.select(ONE, 10.5)
    assert decision.key is low
    assert decision.rank[0] == 1


def test_the_next_crossing_follows_the_scope_from_tier_to_tier() -> None:
    key = Key(SECRETS[0])
    pool = KeyPool([key], book=StateBook())
    _learn(pool, key, 0.0, 0.0, 100.0)  # empty, 10 a second: 5% at 5 s, 20% at 20, 50% at 50
    for crossing, tier in ((5.0, 3), (20.0, 2), (50.0, 1)):
        due = pool._due_of[key.scope_id][0]
        assert math.isclose(due, crossing, abs_tol=1e-3)
        assert pool._filed[0] is not None
        assert pool._filed[0][0] == tier
        pool.earliest_recovery(ONE, due)  # takes the due re-filing up, grants nothing
        assert pool._filed[0] is not None
        assert pool._filed[0][0] == tier - 1
    assert key.scope_id not in pool._due_of  # the best tier: nothing more to schedule


def test_a_scope_with_no_refill_rate_schedules_nothing() -> None:
    quota = ScopeQuota()
    quota.settle(0, [LimitObservation("requests", 1000.0, 100.0, None, 0.0)], 0.0)
    quota.dimensions["requests"].rate = None
    assert seconds_to_share(quota, 0.5, 0.0) == math.inf
    assert seconds_to_share(quota, 0.05, 0.0) == 0.0


def test_a_grant_that_moves_a_shared_scope_s_tier_re_files_its_other_keys() -> None:
    keys = [Key(s, scope="shared") for s in SECRETS[:3]]
    pool = KeyPool(keys, book=StateBook())
    decision = pool.select(ONE, 0.0)
    assert decision.lease is not None
    # 501 of 1,000 left, refilling slowly: the next grant takes the scope below half.
    pool.settle(decision.lease, OK, 0.0, _answer(501.0, 0.0, 1e6))
    assert all(entry is not None and entry[0] == 0 for entry in pool._filed)
    decision = pool.select(Demand({"requests": 2.0}), 0.0)
    assert decision.lease is not None
    assert all(entry is not None and entry[0] == 1 for entry in pool._filed)


def test_round_robin_and_weighted_objectives() -> None:
    rotation = KeyPool([Key(s) for s in SECRETS[:3]], book=StateBook(), objective="round_robin")
    assert rotation._tier_at is None
    assert not rotation._drifts
    weighted = KeyPool([Key(s) for s in SECRETS[:3]], book=StateBook(), objective={"headroom": 1})
    assert weighted._tier_at is None
    assert weighted._drifts
    reliable = KeyPool([Key(s) for s in SECRETS[:3]], book=StateBook(), objective="reliability")
    assert reliable._tier_at == 1
    assert not reliable._drifts


outcomes = st.sampled_from(
    [
        OK,
        OK,
        OK,
        OK,
        Outcome(OutcomeKind.RATE_LIMITED, 429, "rate_limit_exceeded"),
        Outcome(OutcomeKind.SERVER_ERROR, 503, "http_503"),
        Outcome(OutcomeKind.REQUEST_ERROR, 400),
    ]
)
steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=30),  # time advance
        st.integers(min_value=1, max_value=40),  # requests demanded
        st.integers(min_value=0, max_value=3),  # how many open leases to settle first
        outcomes,
        st.integers(min_value=0, max_value=1000),  # requests remaining in the answer
        st.sampled_from([0, 1, 2]),  # no headers, headers, unread
    ),
    max_size=50,
)


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=8),
    scopes=st.integers(min_value=0, max_value=3),
    objective=st.sampled_from(["headroom", "reliability", "cost", "round_robin"]),
    history=steps,
)
def test_every_ready_key_is_filed_by_the_rank_it_has_now(
    count: int,
    scopes: int,
    objective: str,
    history: list[tuple[float, int, int, Outcome, int, int]],
) -> None:
    """After each decision, every key in `_ready` is filed by the rank it would get now (no
    round-robin refresh makes up for a missed change), but for a crossing due within the
    padding of its prediction."""
    keys = [
        Key(s, scope=f"s{i % scopes}" if scopes else None) for i, s in enumerate(SECRETS[:count])
    ]
    pool = KeyPool(keys, book=StateBook(), objective=objective)
    leases: list[Lease] = []
    now = 0.0
    for advance, requests, settle_count, outcome, remaining, headers in history:
        now += advance
        for _ in range(min(settle_count, len(leases))):
            observed = (
                None
                if headers == 2
                else [
                    LimitObservation("requests", 1000.0, float(remaining), now + 60.0, now),
                    LimitObservation("tokens", 1e5, remaining * 100.0, now + 30.0, now),
                ]
                if headers
                else []
            )
            pool.settle(leases.pop(0), outcome, now, observed)
        decision = pool.select(Demand({"requests": float(requests), "tokens": 50.0}), now)
        if decision.lease is not None:
            leases.append(decision.lease)
        for index, key in enumerate(pool.keys):
            entry = pool._filed[index]
            if entry is None or index in pool._out:
                continue
            fresh = pool._entry(index, now)
            if entry != fresh:
                due = pool._due_of.get(key.scope_id)
                assert pool._tier_at is not None
                assert entry[pool._tier_at] > fresh[pool._tier_at], (entry, fresh)
                assert due is not None
                assert due[0] <= now + 2 * CROSSING_PAD
        assert len(pool._due) <= 2 * len(pool._due_of) + 17


def test_tier_of_matches_the_objectives_tiers() -> None:
    from keyrouter.core.objectives import _headroom_tier

    for share in (0.0, 0.04999, 0.05, 0.1999, 0.2, 0.4999, 0.5, 1.0):
        assert tier_of(share) == _headroom_tier(share)


def test_a_reliability_rank_follows_the_failure_rate_a_success_lowers() -> None:
    pool = KeyPool([Key(s) for s in SECRETS[:2]], book=StateBook(), objective="reliability")
    first = pool.select(ONE, 0.0)
    assert first.lease is not None
    pool.settle(first.lease, OK, 0.0, [])  # headerless: no probing from here on
    leases = []
    for _ in range(3):
        decision = pool.select(ONE, 1.0, exclude={SECRETS_ID[1]})
        assert decision.lease is not None
        leases.append(decision.lease)
    pool.settle(leases[0], Outcome(OutcomeKind.SERVER_ERROR, 503, "http_503"), 1.0, [])
    for lease in leases[1:]:
        pool.settle(lease, OK, 1.0, [])
        assert pool._filed[0] == pool._entry(0, 1.0)


def test_an_answer_that_finds_a_scope_roomy_again_puts_its_keys_back_in_the_best_tier() -> None:
    low, mid = Key(SECRETS[0]), Key(SECRETS[1])
    pool = KeyPool([low, mid], book=StateBook())
    _learn(pool, low, 100.0, 0.0, 1e6)  # tier 2, refilling too slowly to matter
    _learn(pool, mid, 300.0, 0.0, 1e6)  # tier 1
    late = pool.select(ONE, 1.0, exclude={mid.id})
    assert late.lease is not None
    pool.settle(late.lease, OK, 1.0, _answer(900.0, 1.0, 1e6))  # roomy again
    decision = pool.select(ONE, 1.0)
    assert decision.key is low
    assert decision.rank[0] == 0


def test_a_scope_leaves_the_tiers_below_alone_when_another_returns_to_the_best() -> None:
    first, second, third = (Key(s) for s in SECRETS[:3])
    pool = KeyPool([first, second, third], book=StateBook())
    _learn(pool, first, 100.0, 0.0, 1e6)  # tier 2
    _learn(pool, second, 100.0, 0.0, 1e6)  # tier 2
    _learn(pool, third, 300.0, 0.0, 1e6)  # tier 1
    later = pool.select(ONE, 1.0, exclude={first.id, third.id})
    back = pool.select(ONE, 1.0, exclude={second.id, third.id})
    assert later.lease is not None
    assert back.lease is not None
    pool.settle(back.lease, OK, 1.0, _answer(900.0, 1.0, 1e6))  # `first` is roomy again
    pool.settle(later.lease, OK, 1.0, _answer(900.0, 1.0, 1e6))  # and then `second`
    ranks = {pool.keys[entry[-1]].id: entry[0] for entry in pool._filed if entry is not None}
    assert ranks[second.id] == 0
