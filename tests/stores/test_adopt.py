"""The pool's side of a shared store: adopting the shared state, withdrawing a refused lease."""

from __future__ import annotations

from keyrouter.core.budget import Budget, Spending, period_bounds
from keyrouter.core.health import KeyState
from keyrouter.core.keys import Key
from keyrouter.core.pool import KeyPool
from keyrouter.core.pricing import Price
from keyrouter.core.quota import Demand
from keyrouter.core.state import StateBook
from keyrouter.core.store import Grant, SharedDimension, SharedKey, SharedScope

NOW = 1_800_000_000.0
A = Key("sk-adopt-a-00000000000000000001")
B = Key("sk-adopt-b-00000000000000000002")
DEMAND = Demand({"requests": 1.0, "tokens": 1000.0}, "m")


def test_a_refused_lease_is_withdrawn_and_its_scope_waits() -> None:
    pool = KeyPool([A, B], book=StateBook())
    lease = pool.select(DEMAND, NOW).lease
    assert lease is not None
    empty = SharedScope({"requests": SharedDimension(10, 0.0, NOW, 1.0)})
    pool.apply_grant(lease, Grant(False, empty, SharedKey(), NOW + 1), NOW)
    mine = {s.key: s for s in pool.snapshot(NOW)}[lease.key.label]
    assert (mine.in_flight, mine.attempts) == (0, 0)
    again = pool.select(DEMAND, NOW).lease
    assert again is not None
    assert again.key != lease.key  # the refused key's scope has no room until NOW + 1


def test_shared_cooldowns_and_flags_are_adopted() -> None:
    pool = KeyPool([A, B], book=StateBook())
    cooling = SharedScope(state=KeyState.COOLING, until=NOW + 30, reason="rate_limit_exceeded")
    pool.adopt_shared({A.scope_id: cooling}, {B.id: SharedKey(KeyState.INVALID, "gone")}, NOW)
    states = {s.key: (s.state, s.reason) for s in pool.snapshot(NOW)}
    assert states[A.label] == (KeyState.COOLING, "rate_limit_exceeded")
    assert states[B.label] == (KeyState.INVALID, "gone")
    decision = pool.select(DEMAND, NOW)
    assert decision.lease is None
    assert decision.retry_at == NOW + 30


def test_a_refused_lease_frees_its_budget_hold() -> None:
    book = StateBook()
    spending = Spending(
        pool="p",
        keys=[A, B],
        budgets=(Budget(usd=1.0, period="day", name="b"),),
        ledger=lambda: book.ledger,
        price=lambda model: Price(input=1.0, output=1.0),
        emit=lambda events: None,
    )
    pool = KeyPool([A, B], book=book, spending=spending)
    lease = pool.select(DEMAND, NOW).lease
    assert lease is not None
    period = ("budget:b:day", period_bounds("day", NOW)[0])
    assert book.ledger.spend(*period).reserved_usd > 0
    refused = Grant(False, SharedScope(state=KeyState.COOLING, until=NOW + 5), SharedKey())
    pool.apply_grant(lease, refused, NOW)
    assert book.ledger.spend(*period).reserved_usd == 0.0
