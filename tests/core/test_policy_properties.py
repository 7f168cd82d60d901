"""Property: whatever happened before, the pool never grants a key a policy forbids."""

from __future__ import annotations

import calendar

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keyrouter import ConfigError, Key
from keyrouter.core.decision import Lease
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.policy import PoolPolicy
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand
from keyrouter.core.rules import Schedule, model_allowed
from keyrouter.core.state import StateBook

START = float(calendar.timegm((2026, 11, 30, 0, 0, 0)))  # a Monday, 00:00 UTC
MODELS = ["gpt-4o", "gpt-4o-mini", "o1-preview", "claude-haiku", None]
SCHEDULES = [None, Schedule(hours="22-06"), Schedule(days="mon-fri"), Schedule(hours="9-17")]

key_policies = st.fixed_dictionaries(
    {
        "labels": st.sets(st.sampled_from(["a", "b", "c"]), max_size=2),
        "tier": st.integers(min_value=0, max_value=2),
        "allow_models": st.one_of(
            st.none(), st.lists(st.sampled_from(["gpt-4o*", "claude-*", "o1-*"]), max_size=2)
        ),
        "deny_models": st.lists(st.sampled_from(["*-mini", "*-preview"]), max_size=1),
        "max_in_flight": st.one_of(st.none(), st.integers(min_value=1, max_value=2)),
        "schedule": st.sampled_from(SCHEDULES),
        "scope": st.sampled_from([None, "org-1"]),
    }
)
steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=4 * 3600),  # time advance: crosses schedule windows
        st.sampled_from(MODELS),
        st.booleans(),  # settle the oldest lease now?
        st.sampled_from([OutcomeKind.SUCCESS, OutcomeKind.RATE_LIMITED, OutcomeKind.SERVER_ERROR]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    policies=st.lists(key_policies, min_size=1, max_size=5),
    pool_labels=st.sets(st.sampled_from(["a", "b", "c"]), max_size=2),
    script=steps,
)
def test_a_forbidden_key_is_never_chosen(
    policies: list[dict[str, object]], pool_labels: set[str], script: list[tuple]
) -> None:
    keys = [
        Key(f"sk-prop-policy-{i:016d}", name=f"k{i}", **p)  # type: ignore[arg-type]
        for i, p in enumerate(policies)
    ]
    try:
        pool = KeyPool(keys, book=StateBook(), policy=PoolPolicy(labels=frozenset(pool_labels)))
    except ConfigError:
        assume(False)
        return
    now = START
    held: list[Lease] = []
    for advance, model, settle_now, kind in script:
        now += advance
        decision = pool.select(Demand({"requests": 1.0}, model), now)
        lease = decision.lease
        if lease is not None:
            chosen = lease.key
            if pool_labels:
                assert chosen.labels & pool_labels
            if model is not None:
                assert model_allowed(chosen, model) is None
            if chosen.schedule is not None:
                assert chosen.schedule.is_open(now)
            if chosen.max_in_flight is not None:
                outstanding = sum(1 for h in held if h.key == chosen)
                assert outstanding < chosen.max_in_flight
            # A higher tier only when every lower-tier key was refused for a reason.
            refused = {r.key for r in decision.refused}
            assert all(k.label in refused for k in keys if k.tier < chosen.tier)
            held.append(lease)
        if settle_now and held:
            done = held.pop(0)
            retry_at = now + 5.0 if kind is OutcomeKind.RATE_LIMITED else None
            pool.settle(done, Outcome(kind, None, "", retry_at), now)
