"""One suite, three stores: memory, SQLite and Redis keep the same shared state the same way.

Two handles on one backend stand for two processes. Times are passed in explicitly, so
nothing here depends on the wall clock.
"""

from __future__ import annotations

import threading

import pytest

from keyrouter.core.decision import Lease
from keyrouter.core.health import KeyState
from keyrouter.core.keys import Key
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.core.usage import BudgetClaim, Usage, UsageRecord
from keyrouter.stores._base import GuardedLedger, SharedStore
from tests.stores.conftest import Opener

KEY = Key("sk-contract-0000000000000000000001", scope="org-a")
OTHER = Key("sk-contract-0000000000000000000002", scope="org-a")
NOW = 1_000_000.0
_seq = iter(range(1, 1_000_000))


def lease(key: Key = KEY, units: float = 1.0, now: float = NOW) -> Lease:
    return Lease(key, key.scope_id, next(_seq), Demand({"requests": units}), now)


def observed(remaining: float, *, limit: float = 10, now: float = NOW) -> list[LimitObservation]:
    return [LimitObservation("requests", limit, remaining, now + 60, now)]


def teach(store: object, remaining: float, *, limit: float = 10, now: float = NOW) -> None:
    """One answer that says the scope has `remaining` of `limit` left."""
    first = lease(now=now)
    assert store.reserve(first, now) is not None  # type: ignore[attr-defined]
    store.settle(first, Outcome.success(), observed(remaining, limit=limit, now=now), now)  # type: ignore[attr-defined]
    store.flush()  # type: ignore[attr-defined]


def test_nothing_known_grants_and_says_so(open_store: Opener) -> None:
    grant = open_store().reserve(lease(), NOW)
    assert grant is not None
    assert grant.granted
    assert grant.scope.dimensions == {}
    assert grant.scope.state is KeyState.AVAILABLE


def test_a_learned_limit_binds_every_process(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    teach(a, remaining=2)
    grants = [b.reserve(lease(OTHER), NOW) for _ in range(3)]
    assert [g.granted for g in grants if g] == [True, True, False]
    refused = grants[2]
    assert refused is not None
    bucket = refused.scope.dimensions["requests"]
    assert bucket.limit == 10
    assert bucket.level == pytest.approx(0.0)
    assert bucket.rate == pytest.approx(8 / 60)
    assert refused.retry_at == pytest.approx(NOW + 60 / 8, abs=1e-3)
    later = b.reserve(lease(OTHER, now=NOW + 7.6), NOW + 7.6)
    assert later is not None
    assert later.granted


def test_requests_in_flight_elsewhere_count_against_an_answer(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    teach(a, remaining=9)
    in_flight = [b.reserve(lease(), NOW) for _ in range(3)]
    assert all(g and g.granted for g in in_flight)
    teach(a, remaining=9)  # the provider has not counted b's three yet
    grant = b.reserve(lease(), NOW)
    assert grant is not None
    assert grant.scope.dimensions["requests"].level == pytest.approx(9 - 3 - 1 - 1 + 1)


def test_a_cooldown_is_shared_and_lapses(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    first = lease()
    a.reserve(first, NOW)
    a.settle(first, Outcome(OutcomeKind.RATE_LIMITED, 429, "rate_limit_exceeded", NOW + 5), [], NOW)
    a.flush()
    grant = b.reserve(lease(OTHER), NOW + 1)
    assert grant is not None
    assert not grant.granted
    assert grant.retry_at == pytest.approx(NOW + 5)
    assert grant.scope.state is KeyState.COOLING
    assert grant.scope.reason == "rate_limit_exceeded"
    after = b.reserve(lease(OTHER, now=NOW + 5.1), NOW + 5.1)
    assert after is not None
    assert after.granted


def test_a_cooldown_never_shortens(open_store: Opener) -> None:
    store = open_store()
    for until in (NOW + 30, NOW + 2):
        item = lease()
        store.reserve(item, NOW)
        store.settle(item, Outcome(OutcomeKind.RATE_LIMITED, 429, "rl", until), [], NOW)
    store.flush()
    grant = store.reserve(lease(now=NOW + 3), NOW + 3)
    assert grant is not None
    assert grant.retry_at == pytest.approx(NOW + 30)


def test_exhaustion_is_shared(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    item = lease()
    a.reserve(item, NOW)
    a.settle(item, Outcome(OutcomeKind.QUOTA_EXHAUSTED, 429, "insufficient_quota"), [], NOW)
    a.flush()
    grant = b.reserve(lease(OTHER), NOW)
    assert grant is not None
    assert grant.scope.state is KeyState.EXHAUSTED
    assert grant.retry_at == pytest.approx(NOW + 3600)


def test_an_invalid_key_is_invalid_everywhere_but_its_scope_is_not(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    item = lease()
    a.reserve(item, NOW)
    a.settle(item, Outcome(OutcomeKind.INVALID_KEY, 401, "invalid_api_key"), [], NOW)
    a.flush()
    grant = b.reserve(lease(), NOW)
    assert grant is not None
    assert not grant.granted
    assert grant.key.state is KeyState.INVALID
    assert grant.key.reason == "invalid_api_key"
    other = b.reserve(lease(OTHER), NOW)
    assert other is not None
    assert other.granted
    _, keys = b.load([KEY.scope_id], [KEY.id, OTHER.id], NOW)
    assert keys[KEY.id].state is KeyState.INVALID
    assert OTHER.id not in keys


def test_a_key_flag_lapses_after_thirty_days(open_store: Opener) -> None:
    store = open_store()
    item = lease()
    store.reserve(item, NOW)
    store.settle(item, Outcome(OutcomeKind.FORBIDDEN, 403, "forbidden"), [], NOW)
    store.flush()
    month = NOW + 31 * 86_400
    grant = store.reserve(lease(now=month), month)
    assert grant is not None
    assert grant.granted  # re-enabled upstream meanwhile? it is tried again
    assert grant.key.state is KeyState.AVAILABLE
    _, keys = store.load([], [KEY.id], month)
    assert keys == {}


def test_a_refused_request_is_refunded_once_even_if_reported_twice(open_store: Opener) -> None:
    store = open_store()
    teach(store, remaining=5)
    item = lease()
    store.reserve(item, NOW)
    rate_limited = Outcome(OutcomeKind.RATE_LIMITED, 429, "rl", NOW)
    store.settle(item, rate_limited, [], NOW)
    store.settle(item, rate_limited, [], NOW)  # a batch resent after a lost reply
    store.flush()
    grant = store.reserve(lease(), NOW)
    assert grant is not None
    assert grant.scope.dimensions["requests"].level == pytest.approx(4.0)


def test_a_dead_process_leases_expire(open_store: Opener) -> None:
    dead, alive = open_store(lease_ttl=10.0), open_store()
    teach(alive, remaining=9)
    for _ in range(4):
        dead.reserve(lease(), NOW)  # never settled: the process was killed
    teach(alive, remaining=9)
    before = alive.reserve(lease(), NOW)
    assert before is not None
    assert before.scope.dimensions["requests"].level == pytest.approx(9 - 4 - 1)
    teach(alive, remaining=9, now=NOW + 11)
    after = alive.reserve(lease(now=NOW + 11), NOW + 11)
    assert after is not None
    assert after.scope.dimensions["requests"].level == pytest.approx(9 - 1 - 1)


def test_an_older_answer_does_not_overwrite_a_newer_one(open_store: Opener) -> None:
    store = open_store()
    teach(store, remaining=3, now=NOW + 1)
    late = lease()
    store.reserve(late, NOW + 1)
    store.settle(late, Outcome.success(), observed(9, now=NOW), NOW + 1)
    store.flush()
    grant = store.reserve(lease(now=NOW + 1), NOW + 1)
    assert grant is not None
    assert grant.scope.dimensions["requests"].level == pytest.approx(1.0)  # 3, late, this


def test_reservations_are_atomic_across_handles_and_threads(open_store: Opener) -> None:
    handles = [open_store(), open_store()]
    teach(handles[0], remaining=40, limit=1000)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        store = handles[index % 2]
        for _ in range(15):
            grant = store.reserve(lease(), NOW)
            with lock:
                granted.append(bool(grant and grant.granted))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(granted) == 60
    assert sum(granted) == 40


def test_what_was_learned_is_there_for_the_next_process(open_store: Opener) -> None:
    first = open_store()
    teach(first, remaining=4)
    first.close()
    scopes, _ = open_store().load([KEY.scope_id, "scope:never-seen"], [], NOW)
    assert set(scopes) == {KEY.scope_id}
    assert scopes[KEY.scope_id].dimensions["requests"].limit == 10


# -- the usage ledger kept in the same store ------------------------------------------------


def record(at: float, model: str | None, cost: float | None) -> UsageRecord:
    return UsageRecord(at, "sk-…0001", KEY.scope_id, "openai", model, Usage(10, 5), cost, 0.1, 200)


def test_ledger_records_and_totals(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.ledger.append(record(NOW, "gpt-4o", 0.5))
    b.ledger.append(record(NOW + 1, "gpt-4o", None))
    b.ledger.append(record(NOW + 2, None, 0.25))
    b.flush()  # records are written in batches, off the call's path
    assert [r.at for r in a.ledger.records()] == [NOW, NOW + 1, NOW + 2]
    assert [r.at for r in a.ledger.records(limit=2)] == [NOW + 1, NOW + 2]
    assert a.ledger.records(since=NOW + 1, until=NOW + 2)[0].usage == Usage(10, 5)
    totals = a.ledger.totals("model")
    assert totals["gpt-4o"].calls == 2
    assert totals["gpt-4o"].cost_usd == pytest.approx(0.5)
    assert totals["gpt-4o"].unpriced_calls == 1
    assert totals["unknown"].usage.total_tokens == 15


def test_budget_reservations_are_atomic_and_marks_fire_once(open_store: Opener) -> None:
    handles = [open_store(), open_store()]
    claim = BudgetClaim("team-a", "day:2026-12-01", 1.0)
    results: list[bool] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        for _ in range(10):
            over = handles[index % 2].ledger.reserve([claim], 0.1)
            with lock:
                results.append(over is None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(results) == 10
    handles[0].ledger.settle([claim], 0.1, 0.05)
    spend = handles[1].ledger.spend("team-a", "day:2026-12-01")
    assert spend.spent_usd == pytest.approx(0.05)
    assert spend.reserved_usd == pytest.approx(0.9)
    assert handles[0].ledger.mark_crossed("team-a", "day:2026-12-01", 0.8)
    assert not handles[1].ledger.mark_crossed("team-a", "day:2026-12-01", 0.8)


class Clock:
    """The ledgers' clock, moved by hand (Redis then takes it instead of its own)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def set_clock(store: SharedStore, clock: Clock) -> None:
    ledger = store.ledger
    inner = ledger.inner if isinstance(ledger, GuardedLedger) else ledger
    inner.clock = clock  # type: ignore[attr-defined]


def test_an_unsettled_budget_hold_stops_counting_when_it_expires(open_store: Opener) -> None:
    dead, alive = open_store(hold_ttl=10.0), open_store(hold_ttl=10.0)
    clock = Clock(NOW)
    set_clock(dead, clock)
    set_clock(alive, clock)
    claim = BudgetClaim("team-h", "day:2026-12-01", 1.0)
    assert dead.ledger.reserve([claim], 0.6, "dead:1") is None  # never settled: killed
    refused = alive.ledger.reserve([claim], 0.6, "alive:1")
    assert refused is not None
    assert refused.reserved_usd == pytest.approx(0.6)
    clock.now = NOW + 9.9
    assert alive.ledger.spend("team-h", "day:2026-12-01").reserved_usd == pytest.approx(0.6)
    clock.now = NOW + 10.0  # expired: the next reservation purges it
    assert alive.ledger.reserve([claim], 0.6, "alive:2") is None
    assert alive.ledger.spend("team-h", "day:2026-12-01").reserved_usd == pytest.approx(0.6)
    clock.now = NOW + 20.0  # and so does a read, with nothing reserved
    assert alive.ledger.spend("team-h", "day:2026-12-01").reserved_usd == 0.0


def test_a_late_or_unknown_settle_releases_no_other_hold(open_store: Opener) -> None:
    a, b = open_store(hold_ttl=10.0), open_store(hold_ttl=10.0)
    clock = Clock(NOW)
    set_clock(a, clock)
    set_clock(b, clock)
    claims = [BudgetClaim("team-l", "day:2026-12-01", 1.0), BudgetClaim("key-l", "all", 5.0)]
    assert a.ledger.reserve(claims, 0.5, "a:1") is None
    clock.now = NOW + 11.0  # a:1 expired, unsettled
    assert b.ledger.reserve(claims, 0.3, "b:1") is None
    a.ledger.settle(claims, 0.5, 0.25, "a:1")  # late: only its spend counts
    b.ledger.settle(claims, 0.3, 0.0, "b:9")  # a hold nobody made
    for claim in claims:
        spend = b.ledger.spend(claim.budget_id, claim.period)
        assert spend.spent_usd == pytest.approx(0.25)
        assert spend.reserved_usd == pytest.approx(0.3)  # b:1 untouched
    b.ledger.settle(claims, 0.3, 0.1, "b:1")
    b.ledger.settle(claims, 0.3, 0.0, "b:1")  # twice: released once, never below zero
    spend = a.ledger.spend("team-l", "day:2026-12-01")
    assert (spend.spent_usd, spend.reserved_usd) == (pytest.approx(0.35), 0.0)
    assert a.ledger.reserve(claims, 0.65, "a:2") is None  # exactly the room left


def test_a_hold_is_atomic_over_its_claims(open_store: Opener) -> None:
    store = open_store()
    roomy, tight = BudgetClaim("roomy", "all", 10.0), BudgetClaim("tight", "all", 0.5)
    over = store.ledger.reserve([roomy, tight], 0.6, "h:1")
    assert over is not None
    assert over.budget_id == "tight"
    assert store.ledger.spend("roomy", "all").reserved_usd == 0.0
    assert store.ledger.reserve([roomy, tight], 0.4, "h:2") is None
    assert store.ledger.spend("roomy", "all").reserved_usd == pytest.approx(0.4)
    store.ledger.settle([roomy, tight], 0.4, 0.0, "h:2")
    assert store.ledger.spend("tight", "all").reserved_usd == 0.0
