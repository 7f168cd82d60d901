"""When a successful answer's limit headers are parsed: always where they matter, not on
every answer of a roomy scope (see `ScopeQuota.reads_answer`)."""

from __future__ import annotations

from keyrouter.core.keys import Key
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import (
    READ_INTERVAL,
    Demand,
    LimitObservation,
    ScopeQuota,
)
from keyrouter.core.state import StateBook

SUCCESS = Outcome(OutcomeKind.SUCCESS, 200)
DEMAND = Demand({"requests": 1.0, "tokens": 100.0})


def answer(
    limit: float, remaining: float, now: float, tokens_left: float | None = None
) -> list[LimitObservation]:
    left = limit * 100 if tokens_left is None else tokens_left
    return [
        LimitObservation("requests", limit, remaining, now + 60.0, now),
        LimitObservation("tokens", limit * 100, left, now + 60.0, now),
    ]


def test_a_scope_whose_limits_are_unknown_reads_every_answer() -> None:
    quota = ScopeQuota()
    assert quota.reads_answer(0.0)
    quota.reserve(1, DEMAND, 0.0)
    quota.settle(1, [], 0.0)  # an answer without limit headers
    assert quota.reads_answer(0.001), "nothing learned yet: the next answer may say more"


def test_a_roomy_scope_reads_its_headers_at_most_once_per_interval() -> None:
    quota = ScopeQuota()
    quota.reserve(1, DEMAND, 0.0)
    quota.settle(1, answer(1000, 999, 0.0), 0.0)
    assert not quota.reads_answer(0.0)
    assert not quota.reads_answer(READ_INTERVAL * 0.9)
    assert quota.reads_answer(READ_INTERVAL)


def test_a_scope_with_half_or_less_left_in_any_dimension_reads_every_answer() -> None:
    quota = ScopeQuota()
    quota.reserve(1, DEMAND, 0.0)
    quota.settle(1, answer(1000, 400, 0.0), 0.0)
    assert quota.reads_answer(0.0), "requests at 40%"
    quota.reserve(2, DEMAND, 0.0)
    quota.settle(2, answer(1000, 999, 0.0, tokens_left=30_000), 0.0)
    assert quota.reads_answer(0.0), "requests roomy, but tokens at 30%"


def test_an_unread_answer_settles_the_request_and_keeps_what_was_learned() -> None:
    pool = KeyPool([Key("sk-read-0000000000000000000001")], book=StateBook())
    first = pool.select(DEMAND, 0.0).lease
    assert first is not None
    pool.settle(first, SUCCESS, 0.0, answer(1000, 999, 0.0))
    second = pool.select(DEMAND, 0.01).lease
    assert second is not None
    assert not pool.reads_answer(second, 0.01)
    pool.settle(second, SUCCESS, 0.01, None)
    (snap,) = pool.snapshot(0.01)
    assert snap.in_flight == 0
    assert snap.successes == 2
    assert snap.dimensions["requests"].limit == 1000, "the learned limit stays"
    # The reservation's debit stands in for the unread header: 999 left, one more sent.
    available = snap.dimensions["requests"].available
    assert available is not None
    assert 997.5 < available < 999
    scope = pool.book.scopes[first.scope_id].quota
    assert not scope.headerless, "an unread answer is not an answer without headers"


def test_a_pool_sharing_its_state_through_a_store_reads_every_answer() -> None:
    book = StateBook()
    pool = KeyPool([Key("sk-read-0000000000000000000002")], book=book)
    lease = pool.select(DEMAND, 0.0).lease
    assert lease is not None
    pool.settle(lease, SUCCESS, 0.0, answer(1000, 999, 0.0))
    again = pool.select(DEMAND, 0.01).lease
    assert again is not None
    assert not pool.reads_answer(again, 0.01)
    book.store = object()  # type: ignore[assignment]  # any store: other processes read too
    assert pool.reads_answer(again, 0.01)


def learned_pool(*, roomy: bool) -> KeyPool:
    pool = KeyPool([Key("sk-read-0000000000000000000003")], book=StateBook())
    lease = pool.select(DEMAND, 0.0).lease
    assert lease is not None
    pool.settle(lease, SUCCESS, 0.0, answer(1000, 999 if roomy else 300, 0.0))
    return pool


def test_a_pool_takes_demand_bounds_only_where_its_next_key_has_room_to_spare() -> None:
    fresh = KeyPool([Key("sk-read-0000000000000000000004")], book=StateBook())
    assert not fresh.takes_bounds(), "limits not learned yet"
    assert learned_pool(roomy=True).takes_bounds()
    assert not learned_pool(roomy=False).takes_bounds(), "30% left: estimates only"


def test_a_pool_whose_requests_are_read_by_someone_takes_no_bounds() -> None:
    pool = learned_pool(roomy=True)
    remove = pool.book.listeners.add(lambda event: None)
    assert not pool.takes_bounds(), "per-call events name the request's model"
    remove()
    assert pool.takes_bounds()
    pool.book.store = object()  # type: ignore[assignment]
    assert not pool.takes_bounds(), "a shared store gets the estimate"


def test_a_pool_with_a_model_policy_takes_no_bounds() -> None:
    pool = KeyPool(
        [Key("sk-read-0000000000000000000005", allow_models=["gpt-4o*"])], book=StateBook()
    )
    lease = pool.select(Demand({"requests": 1.0}, "gpt-4o"), 0.0).lease
    assert lease is not None
    pool.settle(lease, SUCCESS, 0.0, answer(1000, 999, 0.0))
    assert not pool.takes_bounds()
