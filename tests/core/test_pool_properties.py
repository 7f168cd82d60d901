"""Property: whatever happened before, the pool never grants an ineligible key."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from keyrouter import Key, KeyState
from keyrouter.core.decision import Lease
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.core.state import StateBook

S = "sk-prop-0123456789abcdefghij"

outcomes = st.builds(
    Outcome,
    kind=st.sampled_from(list(OutcomeKind)),
    status=st.sampled_from([200, 400, 401, 403, 429, 500, 503, None]),
    reason=st.sampled_from(["", "rate_limit_exceeded", "insufficient_quota"]),
    retry_at=st.one_of(st.none(), st.floats(min_value=0, max_value=200)),
)
observations = st.lists(
    st.builds(
        LimitObservation,
        dimension=st.sampled_from(["requests", "tokens"]),
        limit=st.one_of(st.none(), st.floats(min_value=1, max_value=1e5)),
        remaining=st.one_of(st.none(), st.floats(min_value=0, max_value=1e5)),
        reset_at=st.one_of(st.none(), st.floats(min_value=0, max_value=500)),
        observed_at=st.just(0.0),
    ),
    max_size=2,
)
steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5),  # time advance
        st.integers(min_value=1, max_value=3000),  # token demand
        st.booleans(),  # settle the oldest lease now?
        outcomes,
        observations,
        st.sets(st.integers(min_value=0, max_value=4), max_size=3),  # excluded indices
    ),
    max_size=40,
)


def eligible(pool: KeyPool, index: int, demand: Demand, now: float) -> bool:
    key = pool.keys[index]
    record = pool.book.keys[key.id]
    scope = pool.book.scopes[key.scope_id]
    state = record.health.effective_state(now)
    if state is KeyState.HALF_OPEN and record.health.probe_in_flight:
        return False
    if state not in (KeyState.AVAILABLE, KeyState.HALF_OPEN):
        return False
    if scope.health.effective_state(now) is not KeyState.AVAILABLE:
        return False
    return scope.quota.admits(demand, now) == 0.0


@settings(max_examples=150, deadline=None)
@given(
    steps=steps,
    scopes=st.lists(st.sampled_from([None, "a", "b"]), min_size=5, max_size=5),
    objective=st.sampled_from(["headroom", "round_robin", "reliability"]),
)
def test_never_grants_an_ineligible_or_excluded_key(
    steps: list[tuple[float, int, bool, Outcome, list[LimitObservation], set[int]]],
    scopes: list[str | None],
    objective: str,
) -> None:
    keys = [Key(f"{S}{i}", scope=scope) for i, scope in enumerate(scopes)]
    pool = KeyPool(keys, book=StateBook(), objective=objective)
    now = 0.0
    open_leases: list[Lease] = []
    for advance, tokens, settle_now, outcome, observed, excluded_idx in steps:
        now += advance
        demand = Demand({"requests": 1, "tokens": tokens})
        excluded = {keys[i].id for i in excluded_idx}
        allowed = [
            i
            for i in range(len(keys))
            if keys[i].id not in excluded and eligible(pool, i, demand, now)
        ]
        decision = pool.select(demand, now, exclude=excluded)
        if decision.lease is None:
            assert not allowed, decision.explain(now)
            if decision.retry_at is not None:
                assert decision.retry_at > now
        else:
            chosen = keys.index(decision.lease.key)
            assert chosen in allowed
            open_leases.append(decision.lease)
        if settle_now and open_leases:
            lease = open_leases.pop(0)
            obs = [
                LimitObservation(o.dimension, o.limit, o.remaining, o.reset_at, now)
                for o in observed
            ]
            pool.settle(lease, outcome, now, obs)
    for lease in open_leases:
        pool.abandon(lease, now)
    assert all(pool.book.keys[k.id].stats.in_flight == 0 for k in keys)
    assert all(not pool.book.scopes[k.scope_id].quota.in_flight for k in keys)
