"""`keyrouter.snapshot()`: what the pools in force know, as values."""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

from keyrouter.core.budget import period_bounds
from keyrouter.core.pool import KeySnapshot
from keyrouter.core.registry import current_scoped_pools, global_pool
from keyrouter.core.usage import UsageLedger, UsageTotals
from keyrouter.entry._pools import PROVIDERS

__all__ = ["snapshot", "with_usage"]


def snapshot(
    provider: str | None = None, *, period: Literal["day", "month"] = "month"
) -> dict[str, list[KeySnapshot]]:
    """Per provider, every key of the pool in force here (scoped, else global).

    Each `KeySnapshot` has the key's label and fingerprint (never the secret), state and
    reason, counters, capacity class, headroom, the limits learned per dimension, and, when
    its pool keeps usage (budgets, credits, the `cost` objective, `usage=True`), its calls,
    tokens and cost in the current UTC `period` ("day" or "month").
    """
    now = time.time()
    result: dict[str, list[KeySnapshot]] = {}
    scoped = current_scoped_pools()
    for name in PROVIDERS if provider is None else (provider,):
        pool = scoped.get(name) or global_pool(name)
        if pool is None:
            continue
        snaps = pool.snapshot(now)
        if pool.spending is not None:
            snaps = with_usage(snaps, pool.book.ledger, period, now)
        result[name] = snaps
    return result


def with_usage(
    snaps: list[KeySnapshot], ledger: UsageLedger, period: Literal["day", "month"], now: float
) -> list[KeySnapshot]:
    """`snaps` with each key's usage in the UTC `period` holding `now`, from `ledger`."""
    label, start, end = period_bounds(period, now)
    totals = ledger.totals("key", since=start, until=end)
    return [
        dataclasses.replace(
            snap, period=label, period_usage=totals.get(snap.fingerprint, UsageTotals())
        )
        for snap in snaps
    ]
