"""Property: the pool's shortcuts (the usual decision without a scan, the default objective's
rank computed in place) decide exactly as the general path does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from keyrouter import Key
from keyrouter.core.decision import Lease
from keyrouter.core.objectives import _by_headroom
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.core.state import StateBook

SECRETS = [f"sk-fast-{i:04d}-0123456789abcdefghij" for i in range(12)]


class _GeneralPool(KeyPool):
    """A pool that always takes the general path: every decision scans, every rank is
    computed through `Candidate` and the objective."""

    def __init__(self, keys: list[Key], *, book: StateBook) -> None:
        super().__init__(keys, book=book)
        self._plain = False

    def _fits(self, index: int, demand: Demand, now: float) -> bool:
        return False


outcomes = st.sampled_from(
    [
        Outcome(OutcomeKind.SUCCESS, 200),
        Outcome(OutcomeKind.SUCCESS, 200),
        Outcome(OutcomeKind.SUCCESS, 200),
        Outcome(OutcomeKind.RATE_LIMITED, 429, "rate_limit_exceeded"),
        Outcome(OutcomeKind.SERVER_ERROR, 503, "http_503"),
        Outcome(OutcomeKind.SERVER_ERROR, None, "connect_error"),
        Outcome(OutcomeKind.INVALID_KEY, 401, "invalid_api_key"),
        Outcome(OutcomeKind.QUOTA_EXHAUSTED, 429, "insufficient_quota"),
        Outcome(OutcomeKind.REQUEST_ERROR, 400),
    ]
)
steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3),  # time advance
        st.integers(min_value=1, max_value=400),  # token demand
        st.integers(min_value=0, max_value=3),  # how many open leases to settle first
        outcomes,
        st.integers(min_value=0, max_value=1000),  # requests remaining in the answer
        st.booleans(),  # answer with headers?
    ),
    max_size=60,
)


def _keys(count: int, scopes: int) -> list[Key]:
    return [
        Key(s, scope=f"s{i % scopes}" if scopes else None) for i, s in enumerate(SECRETS[:count])
    ]


@settings(max_examples=120, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=12),
    scopes=st.integers(min_value=0, max_value=3),
    history=steps,
)
def test_the_shortcuts_decide_as_the_general_path_does(
    count: int,
    scopes: int,
    history: list[tuple[float, int, int, Outcome, int, bool]],
) -> None:
    fast = KeyPool(_keys(count, scopes), book=StateBook())
    general = _GeneralPool(_keys(count, scopes), book=StateBook())
    assert fast._plain
    open_leases: dict[KeyPool, list[Lease]] = {fast: [], general: []}
    now = 0.0
    for advance, tokens, settle_count, outcome, remaining, headers in history:
        now += advance
        observed = (
            [
                LimitObservation("requests", 1000.0, float(remaining), now + 60.0, now),
                LimitObservation("tokens", 100_000.0, remaining * 100.0, now + 60.0, now),
            ]
            if headers
            else []
        )
        demand = Demand({"requests": 1.0, "tokens": float(tokens)})
        answers = []
        for pool in (fast, general):
            leases = open_leases[pool]
            for _ in range(min(settle_count, len(leases))):
                pool.settle(leases.pop(0), outcome, now, observed)
            decision = pool.select(demand, now)
            if decision.lease is not None:
                leases.append(decision.lease)
            answers.append(
                (
                    decision.key.id if decision.key else None,
                    decision.refused,
                    decision.retry_at,
                    decision.waiting_for_probe,
                    decision.rank,
                )
            )
        assert answers[0] == answers[1]
        for index in range(count):
            expected = (*_by_headroom(fast._candidate(index, now)), index)
            assert fast._entry(index, now) == expected
