"""The in-memory usage ledger: records, totals, atomic budget reservations."""

from __future__ import annotations

import threading

from keyrouter.core.usage import (
    BudgetClaim,
    MemoryLedger,
    Usage,
    UsageLedger,
    UsageRecord,
)


def _record(
    at: float, key: str = "sk-…aaaa", model: str | None = "gpt-4o", cost: float | None = 1.0
) -> UsageRecord:
    return UsageRecord(
        at=at,
        key=key,
        scope="scope:a",
        pool="pool",
        model=model,
        usage=Usage(input_tokens=10, output_tokens=5, cached_input_tokens=4),
        cost_usd=cost,
        latency_s=0.1,
        status=200,
    )


def test_memory_ledger_is_a_usage_ledger() -> None:
    assert isinstance(MemoryLedger(), UsageLedger)


def test_usage_adds_and_splits_input() -> None:
    total = Usage(10, 5, 4, 1, 2) + Usage(1, 1, 0, 0, 0)
    assert total == Usage(11, 6, 4, 1, 2)
    assert total.uncached_input_tokens == 6
    assert total.total_tokens == 17


def test_totals_group_and_filter_by_time() -> None:
    ledger = MemoryLedger()
    ledger.append(_record(1.0, key="k1"))
    ledger.append(_record(2.0, key="k2", model=None, cost=None))
    ledger.append(_record(3.0, key="k1"))
    by_key = ledger.totals("key")
    assert by_key["k1"].calls == 2
    assert by_key["k1"].cost_usd == 2.0
    assert by_key["k2"].unpriced_calls == 1
    assert by_key["k2"].cost_usd == 0.0
    assert set(ledger.totals("model")) == {"gpt-4o", "unknown"}
    assert ledger.totals("key", since=2.0, until=3.0) == {"k2": by_key["k2"]}
    assert by_key["k1"].usage.input_tokens == 20
    assert [r.at for r in ledger.records(limit=2)] == [2.0, 3.0]


def test_records_are_bounded() -> None:
    ledger = MemoryLedger(max_records=3)
    for i in range(10):
        ledger.append(_record(float(i)))
    assert [r.at for r in ledger.records()] == [7.0, 8.0, 9.0]


def test_reserve_is_all_or_nothing_and_settle_replaces_the_reservation() -> None:
    ledger = MemoryLedger()
    day = BudgetClaim("pool:p", "day:2026-12-01", 1.0)
    key = BudgetClaim("key:k", "day:2026-12-01", 0.5)
    assert ledger.reserve([day, key], 0.4) is None
    refused = ledger.reserve([day, key], 0.2)
    assert refused is not None
    assert refused.budget_id == "key:k"
    assert refused.reserved_usd == 0.4
    assert ledger.spend("pool:p", "day:2026-12-01").reserved_usd == 0.4  # nothing reserved
    ledger.settle([day, key], 0.4, 0.1)
    spend = ledger.spend("key:k", "day:2026-12-01")
    assert (spend.spent_usd, spend.reserved_usd) == (0.1, 0.0)
    assert ledger.spend("key:k", "day:2026-12-02").committed_usd == 0.0


def test_concurrent_reservations_never_pass_the_limit() -> None:
    ledger = MemoryLedger()
    claim = BudgetClaim("pool:p", "all", 1.0)
    granted: list[bool] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            granted.append(ledger.reserve([claim], 0.01) is None)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


def test_threshold_marks_fire_once_per_period() -> None:
    ledger = MemoryLedger()
    assert ledger.mark_crossed("b", "month:2026-12", 0.5)
    assert not ledger.mark_crossed("b", "month:2026-12", 0.5)
    assert ledger.mark_crossed("b", "month:2026-12", 0.8)
    assert ledger.mark_crossed("b", "month:2027-01", 0.5)
