"""Budgets on a pool: refusals before sending, reservations under concurrency, thresholds
once per period, UTC period rollover (clock injected: every `now` is passed in)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyrouter.core.budget import Budget, Spending, period_bounds
from keyrouter.core.decision import Lease
from keyrouter.core.events import BudgetThresholdCrossed, Event
from keyrouter.core.keys import Key
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.pricing import Price
from keyrouter.core.quota import Demand
from keyrouter.core.state import StateBook
from keyrouter.core.usage import MemoryLedger, Usage
from keyrouter.errors import ConfigError
from keyrouter.stores import attach_store, open_store
from tests.stores.conftest import REDIS_URL, redis_prefix  # noqa: F401 - a fixture

PRICE = Price(input=1.0, output=1.0)  # $1 per million tokens: 1000 tokens cost $0.001
DEMAND = Demand({"requests": 1.0, "tokens": 1000.0}, "m")
NOW = datetime(2026, 12, 31, 23, 0, tzinfo=UTC).timestamp()
KEYS = [Key(f"sk-budget-test-{i:020d}", name=f"k{i}") for i in range(4)]


def _pool(*budgets: Budget, keys: list[Key] = KEYS) -> tuple[KeyPool, list[Event]]:
    book = StateBook()
    events: list[Event] = []
    spending = Spending(
        pool="p",
        keys=keys,
        budgets=budgets,
        ledger=lambda: book.ledger,
        price=lambda model: PRICE if model == "m" else None,
        emit=events.extend,
    )
    pool = KeyPool(keys, book=book, name="p", spending=spending)
    return pool, events


def _answer(pool: KeyPool, lease: Lease, now: float, tokens: int = 1000) -> None:
    """The provider answered 200 and the body (with its usage) was read."""
    pool.settle(lease, Outcome(OutcomeKind.SUCCESS, 200), now)
    assert pool.spending is not None
    pool.spending.finish(
        lease, Usage(input_tokens=tokens), model="m", estimated=False, status=200, now=now
    )


def _call(pool: KeyPool, now: float, tokens: int = 1000) -> bool:
    """One call: refused before sending (False), or sent and charged `tokens` (True)."""
    spending = pool.spending
    assert spending is not None
    if spending.pool_refusal(DEMAND, now) is not None:
        return False
    decision = pool.select(DEMAND, now)
    if decision.lease is None:
        return False
    _answer(pool, decision.lease, now, tokens)
    return True


def test_period_bounds_are_utc_calendar_days_and_months() -> None:
    label, start, end = period_bounds("day", NOW)
    assert label == "day:2026-12-31"
    assert end - start == 86400
    label, start, end = period_bounds("month", NOW)
    assert label == "month:2026-12"
    assert datetime.fromtimestamp(end, UTC) == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_pool_over_budget_refuses_with_which_budget_spent_limit_and_reset() -> None:
    pool, _ = _pool(Budget(usd=0.003, period="day"))
    assert [_call(pool, NOW) for _ in range(4)] == [True, True, True, False]
    spending = pool.spending
    assert spending is not None
    message = spending.pool_refusal(DEMAND, NOW)
    assert message is not None
    assert (
        "the p pool's budget of 0.003000 USD a day has no room for this request (2026-12-31)"
        in message
    )
    assert "0.003000 USD spent of 0.003000 USD" in message
    assert "day" in message
    assert "resets at 2027-01-01T00:00:00Z" in message


def test_the_period_rolls_over_at_utc_midnight() -> None:
    pool, _ = _pool(Budget(usd=0.002, period="day"))
    assert _call(pool, NOW)
    assert _call(pool, NOW)
    assert not _call(pool, NOW + 3599)  # 23:59:59
    assert _call(pool, NOW + 3600)  # 00:00 on the next day: a fresh budget


def test_a_key_over_its_budget_is_skipped_and_the_others_serve() -> None:
    pool, _ = _pool(Budget(usd=0.001, period="month", per="key"), keys=KEYS[:2])
    first = pool.select(DEMAND, NOW)
    assert first.lease is not None
    _answer(pool, first.lease, NOW)
    later = []
    for _ in range(3):
        decision = pool.select(DEMAND, NOW)
        if decision.lease is not None:
            later.append(decision.lease.key)
            _answer(pool, decision.lease, NOW)
        else:
            reasons = [r.reason for r in decision.refused]
    assert later == [k for k in KEYS[:2] if k != first.lease.key]  # the other key, once
    assert len(reasons) == 2
    assert all("monthly budget" in r for r in reasons)


def test_thresholds_fire_once_per_period() -> None:
    pool, events = _pool(Budget(usd=0.004, period="day", thresholds=(0.5, 1.0)))
    for _ in range(6):
        _call(pool, NOW)
    crossed = [e for e in events if isinstance(e, BudgetThresholdCrossed)]
    assert [(e.threshold, e.period) for e in crossed] == [
        (0.5, "day:2026-12-31"),
        (1.0, "day:2026-12-31"),
    ]
    assert crossed[1].spent_usd == pytest.approx(0.004)
    assert crossed[1].limit_usd == 0.004
    _call(pool, NOW + 3600)
    _call(pool, NOW + 3600)
    later = [e for e in events if isinstance(e, BudgetThresholdCrossed)][2:]
    assert [(e.threshold, e.period) for e in later] == [(0.5, "day:2027-01-01")]


def test_64_concurrent_callers_overshoot_by_at_most_one_estimate() -> None:
    limit = 0.05
    pool, _ = _pool(Budget(usd=limit, period="day"))
    spending = pool.spending
    assert spending is not None
    estimate = spending.estimate(DEMAND)
    barrier = threading.Barrier(64)
    served: list[int] = []

    def caller() -> None:
        barrier.wait()
        count = 0
        for _ in range(5):  # bounded: at most 320 calls in all
            # Real usage between half and all of the estimate.
            if _call(pool, NOW, tokens=500 + (count * 97) % 500):
                count += 1
        served.append(count)

    threads = [threading.Thread(target=caller) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    spend = spending.ledger.spend(
        spending._rules[0].claim_for(KEYS[0], NOW)[0].budget_id, "day:2026-12-31"
    )
    assert spend.reserved_usd == pytest.approx(0.0, abs=1e-12)
    assert spend.spent_usd <= limit + estimate
    assert spend.spent_usd > limit - estimate  # the budget was used, not refused early
    assert 0 < sum(served) < 320


def test_a_released_attempt_is_not_charged() -> None:
    pool, _ = _pool(Budget(usd=0.0015, period="day"))
    decision = pool.select(DEMAND, NOW)
    assert decision.lease is not None
    assert pool.spending is not None
    assert pool.spending.pool_refusal(DEMAND, NOW) is not None  # the reservation holds it
    pool.abandon(decision.lease, NOW)
    assert pool.spending.pool_refusal(DEMAND, NOW) is None


def test_cost_objective_prefers_free_credits_then_the_cheapest_key() -> None:
    keys = [
        Key("sk-cost-test-dear-00000000000000", name="dear", price_multiplier=1.0),
        Key("sk-cost-test-cheap-0000000000000", name="cheap", price_multiplier=0.5),
        Key("sk-cost-test-free-00000000000000", name="free", credits_usd=0.0015),
    ]
    book = StateBook()
    spending = Spending(
        pool="p",
        keys=keys,
        budgets=(),
        ledger=lambda: book.ledger,
        price=lambda model: PRICE,
        emit=lambda events: None,
    )
    pool = KeyPool(keys, book=book, objective="cost", spending=spending)
    chosen = []
    for _ in range(4):
        decision = pool.select(DEMAND, NOW)
        assert decision.lease is not None
        chosen.append(decision.lease.key.label)
        _answer(pool, decision.lease, NOW)
    assert chosen == ["free", "free", "cheap", "cheap"]
    assert "price 0.5" in decision.explain()


def test_weighted_objectives_explain_their_scores() -> None:
    keys = [Key("sk-weights-test-a-000000000000", name="a", price_multiplier=2.0), KEYS[0]]
    pool = KeyPool(keys, book=StateBook(), objective={"cost": 0.7, "headroom": 0.3})
    decision = pool.select(DEMAND, NOW)
    assert decision.lease is not None
    assert decision.lease.key.label == "k0"
    assert decision.objective == "cost*0.7+headroom*0.3"
    assert "score 0.35" in decision.explain()


def test_bad_budgets_and_objectives_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"budget\.usd"):
        Budget(usd=-1)
    with pytest.raises(ConfigError, match=r"budget\.period"):
        Budget(usd=1, period="week")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="objective"):
        KeyPool(KEYS, book=StateBook(), objective={"round_robin": 1.0})


def test_spend_by_another_process_is_caught_by_the_atomic_reservation() -> None:
    pool, _ = _pool(Budget(usd=0.001, period="month", per="key"), keys=KEYS[:2])
    spending = pool.spending
    assert spending is not None
    # Another process spent both keys' budgets in the shared ledger; this one has not seen it.
    for key in KEYS[:2]:
        claim = spending._rules[0].claim_for(key, NOW)[0]
        spending.ledger.settle([claim], 0.0, 0.001)
    decision = pool.select(DEMAND, NOW)
    assert decision.lease is None
    assert decision.refused
    assert all("monthly budget" in r.reason for r in decision.refused)
    assert pool.snapshot(NOW)[0].in_flight == 0  # the lease was given back
    assert pool.snapshot(NOW)[1].in_flight == 0


@pytest.fixture(params=["sqlite", "redis"])
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    prefix = request.getfixturevalue("redis_prefix")
    return f"{REDIS_URL}?prefix={prefix}"


def test_two_processes_sharing_a_store_stay_within_one_budget(shared_store_url: str) -> None:
    """Two books over one store stand for two processes: their reservations are atomic in the
    store, so together they never pass the limit when calls cost no more than estimated."""
    limit = 0.02
    budget = Budget(usd=limit, period="day", name="shared")
    pools = []
    for _ in range(2):
        book = StateBook()
        attach_store(book, open_store(shared_store_url))
        spending = Spending(
            pool="p",
            keys=KEYS,
            budgets=(budget,),
            ledger=lambda book=book: book.ledger,
            price=lambda model: PRICE,
            emit=lambda events: None,
        )
        pools.append(KeyPool(KEYS, book=book, name="p", spending=spending))
    barrier = threading.Barrier(16)

    def caller(pool: KeyPool) -> None:
        barrier.wait()
        for _ in range(4):  # bounded: 64 calls at most, room for about 20
            _call(pool, NOW, tokens=700)

    threads = [threading.Thread(target=caller, args=(pools[i % 2],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for pool in pools:
        assert pool.book.store is not None
        pool.book.store.close()  # usage records are written in batches: send what is buffered
    first = pools[0].spending
    assert first is not None
    spend = first.ledger.spend("budget:shared:day", "day:2026-12-31")
    assert spend.reserved_usd == pytest.approx(0.0, abs=1e-12)
    assert limit - first.estimate(DEMAND) < spend.spent_usd <= limit
    for pool in pools:  # each "process" writes its buffered records
        assert pool.spending is not None
        pool.spending.ledger.totals("pool")
    calls = first.ledger.totals("pool")["p"].calls
    assert calls == round(spend.spent_usd / 0.0007)  # every call recorded, from both


def test_free_credits_drawn_by_another_process_are_seen_on_the_next_draw() -> None:
    key = Key("sk-credits-shared-000000000000001", credits_usd=0.0015)
    book = StateBook()

    def spending() -> Spending:
        return Spending(
            pool="p",
            keys=[key],
            budgets=(),
            ledger=lambda: book.ledger,
            price=lambda model: PRICE,
            emit=lambda events: None,
        )

    here, there = spending(), spending()  # two processes over one shared ledger
    pool_here = KeyPool([key], book=book, spending=here)
    pool_there = KeyPool([key], book=StateBook(), spending=there)
    for pool in (pool_there, pool_here):  # 0.001 each: more than the credits together
        lease = pool.select(DEMAND, NOW).lease
        assert lease is not None
        _answer(pool, lease, NOW)
    assert here.credits_left(key) == 0.0
    assert here.effective_price(key) == 1.0


def _spending(ledger: MemoryLedger, budget: Budget) -> Spending:
    return Spending(
        pool="p",
        keys=KEYS[:1],
        budgets=[budget],
        ledger=lambda: ledger,
        price=lambda model: PRICE,
        emit=lambda events: None,
    )


def test_a_key_budget_held_by_a_dead_process_is_tried_again_once_its_hold_expires() -> None:
    """The per-key check reads this process's mirror, never the ledger: the reserved amount
    it saw counts only for `hold_ttl`, so a dead process's holds do not block the key here
    for the rest of the period."""
    now = [NOW]
    ledger = MemoryLedger(hold_ttl=60.0, clock=lambda: now[0])
    budget = Budget(usd=0.0015, period="day", per="key")
    dead, alive = _spending(ledger, budget), _spending(ledger, budget)
    key = KEYS[0]
    assert dead.reserve(Lease(key, key.scope_id, 1, DEMAND, NOW), NOW) is None  # never settled
    refused = alive.reserve(Lease(key, key.scope_id, 1, DEMAND, NOW), NOW)
    assert refused is not None  # (the same seq, another pool's hold: told apart)
    refusal, pool_wide = refused
    assert refusal.for_this_request
    assert not pool_wide
    assert alive.key_refusal(key, DEMAND, NOW + 59) is not None
    now[0] = NOW + 60
    assert alive.key_refusal(key, DEMAND, NOW + 60) is None
    assert alive.reserve(Lease(key, key.scope_id, 2, DEMAND, NOW + 60), NOW + 60) is None


def test_a_pools_release_frees_its_own_hold_only() -> None:
    ledger = MemoryLedger()
    budget = Budget(usd=1.0, period="day", name="shared")
    one, two = _spending(ledger, budget), _spending(ledger, budget)
    key = KEYS[0]
    first, second = (Lease(key, key.scope_id, 7, DEMAND, NOW) for _ in range(2))
    assert one.reserve(first, NOW) is None
    assert two.reserve(second, NOW) is None  # the same seq in another pool of the process
    claim = one._rules[0].claim_for(key, NOW)[0]
    assert ledger.spend(claim.budget_id, claim.period).reserved_usd == pytest.approx(0.002)
    one.release(first)
    one.release(first)  # twice: nothing more
    assert ledger.spend(claim.budget_id, claim.period).reserved_usd == pytest.approx(0.001)
    two.finish(second, Usage(input_tokens=500), model="m", estimated=False, status=200, now=NOW)
    spend = ledger.spend(claim.budget_id, claim.period)
    assert (spend.spent_usd, spend.reserved_usd) == (pytest.approx(0.0005), 0.0)
