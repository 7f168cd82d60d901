"""Usage records and budget spend in the SQLite store's file (the core's `UsageLedger`).

Each method is one transaction, so a budget reservation is atomic across every process that
opens the file: `BEGIN IMMEDIATE` serialises the check and the debit. A hold is one row per
budget in `keyrouter_holds` with its expiry (this machine's wall clock: every process sharing
the file shares it); a budget's reserved amount is its plain `reserved` column plus the sum of
its holds, expired ones deleted first whenever the budget is reserved on or read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from keyrouter.core.usage import (
    DEFAULT_HOLD_TTL,
    USD_EPSILON,
    BudgetClaim,
    BudgetSpend,
    GroupBy,
    Usage,
    UsageRecord,
    UsageTotals,
)

__all__ = ["LEDGER_SCHEMA", "SQLiteLedger"]

LEDGER_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keyrouter_usage (at REAL NOT NULL, key TEXT NOT NULL, "
    "scope TEXT NOT NULL, pool TEXT NOT NULL, model TEXT, input_tokens INTEGER, "
    "output_tokens INTEGER, cached_input_tokens INTEGER, cache_creation_tokens INTEGER, "
    "reasoning_tokens INTEGER, cost_usd REAL, latency_s REAL, status INTEGER, "
    "estimated INTEGER)",
    "CREATE INDEX IF NOT EXISTS keyrouter_usage_at ON keyrouter_usage (at)",
    "CREATE TABLE IF NOT EXISTS keyrouter_budgets (budget_id TEXT NOT NULL, period TEXT NOT "
    "NULL, spent REAL NOT NULL, reserved REAL NOT NULL, PRIMARY KEY (budget_id, period))",
    "CREATE TABLE IF NOT EXISTS keyrouter_holds (budget_id TEXT NOT NULL, period TEXT NOT NULL, "
    "hold TEXT NOT NULL, amount REAL NOT NULL, expires REAL NOT NULL, "
    "PRIMARY KEY (budget_id, period, hold))",
    "CREATE INDEX IF NOT EXISTS keyrouter_holds_expires ON keyrouter_holds "
    "(budget_id, period, expires)",
    "CREATE TABLE IF NOT EXISTS keyrouter_marks (budget_id TEXT NOT NULL, period TEXT NOT NULL,"
    " threshold REAL NOT NULL, PRIMARY KEY (budget_id, period, threshold))",
)

_COLUMNS = (
    "at, key, scope, pool, model, input_tokens, output_tokens, cached_input_tokens, "
    "cache_creation_tokens, reasoning_tokens, cost_usd, latency_s, status, estimated"
)
_INSERT = f"INSERT INTO keyrouter_usage ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"  # noqa: S608
_GROUP_COLUMN = {"key": "key", "scope": "scope", "pool": "pool", "model": "model"}

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]


class SQLiteLedger:
    """`clock` (epoch seconds) is for tests."""

    def __init__(
        self,
        transaction: Transaction,
        *,
        hold_ttl: float = DEFAULT_HOLD_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transaction = transaction
        self.hold_ttl = hold_ttl
        self.clock = clock

    def append(self, record: UsageRecord) -> None:
        self.append_many([record])

    def append_many(self, records: Sequence[UsageRecord]) -> None:
        with self._transaction() as conn:
            conn.executemany(_INSERT, [_row(record) for record in records])

    def totals(
        self, by: GroupBy, *, since: float | None = None, until: float | None = None
    ) -> dict[str, UsageTotals]:
        column = _GROUP_COLUMN[by]
        where, params = _window(since, until)
        query = (
            f"SELECT {column}, count(*), sum(input_tokens), sum(output_tokens), "  # noqa: S608
            "sum(cached_input_tokens), sum(cache_creation_tokens), sum(reasoning_tokens), "
            "total(cost_usd), sum(cost_usd IS NULL), sum(estimated) "
            f"FROM keyrouter_usage {where} GROUP BY {column}"
        )
        with self._transaction() as conn:
            rows = conn.execute(query, params).fetchall()
        return {
            (name if name is not None else "unknown"): UsageTotals(
                calls, Usage(*(int(v or 0) for v in tokens)), float(cost), int(unpriced), int(est)
            )
            for name, calls, *tokens, cost, unpriced, est in rows
        }

    def records(
        self, *, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[UsageRecord]:
        where, params = _window(since, until)
        query = f"SELECT {_COLUMNS} FROM keyrouter_usage {where} ORDER BY at DESC, rowid DESC"  # noqa: S608
        if limit is not None and limit >= 0:
            query += f" LIMIT {int(limit)}"
        with self._transaction() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_record(row) for row in reversed(rows)]

    def spend(self, budget_id: str, period: str) -> BudgetSpend:
        with self._transaction() as conn:
            return _spend(conn, budget_id, period, self.clock())

    def reserve(
        self, claims: Sequence[BudgetClaim], amount_usd: float, hold: str | None = None
    ) -> BudgetSpend | None:
        with self._transaction() as conn:
            now = self.clock()
            for claim in claims:
                counter = _spend(conn, claim.budget_id, claim.period, now)
                if counter.committed_usd + amount_usd > claim.limit_usd + USD_EPSILON:
                    return counter
            for claim in claims:
                if hold is None:
                    _add(conn, claim, 0.0, amount_usd)
                elif amount_usd > 0:  # the same id again replaces it
                    conn.execute(
                        "INSERT OR REPLACE INTO keyrouter_holds VALUES (?, ?, ?, ?, ?)",
                        (claim.budget_id, claim.period, hold, amount_usd, now + self.hold_ttl),
                    )
        return None

    def settle(
        self,
        claims: Sequence[BudgetClaim],
        reserved_usd: float,
        spent_usd: float,
        hold: str | None = None,
    ) -> None:
        with self._transaction() as conn:
            for claim in claims:
                if hold is not None:
                    conn.execute(
                        "DELETE FROM keyrouter_holds WHERE budget_id = ? AND period = ? "
                        "AND hold = ?",
                        (claim.budget_id, claim.period, hold),
                    )
                if hold is None or spent_usd:
                    _add(conn, claim, spent_usd, 0.0 if hold is not None else -reserved_usd)

    def mark_crossed(self, budget_id: str, period: str, threshold: float) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO keyrouter_marks VALUES (?, ?, ?)",
                (budget_id, period, threshold),
            )
            return cursor.rowcount == 1


def _window(since: float | None, until: float | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("at < ?")
        params.append(until)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _row(record: UsageRecord) -> tuple[Any, ...]:
    u = record.usage
    return (
        record.at,
        record.key,
        record.scope,
        record.pool,
        record.model,
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cache_creation_tokens,
        u.reasoning_tokens,
        record.cost_usd,
        record.latency_s,
        record.status,
        int(record.estimated),
    )


def _record(row: tuple[Any, ...]) -> UsageRecord:
    at, key, scope, pool, model, i, o, c, cc, r, cost, latency, status, estimated = row
    return UsageRecord(
        at, key, scope, pool, model, Usage(i, o, c, cc, r), cost, latency, status, bool(estimated)
    )


def _spend(conn: sqlite3.Connection, budget_id: str, period: str, now: float) -> BudgetSpend:
    """The budget's counter, counting its unexpired holds; expired ones are deleted (the
    caller is in a write transaction) when there are any."""
    slot = (budget_id, period)
    row = conn.execute(
        "SELECT b.spent, b.reserved, h.held, h.expired FROM (SELECT 1) "
        "LEFT JOIN keyrouter_budgets b ON b.budget_id = ? AND b.period = ? "
        "LEFT JOIN (SELECT total(CASE WHEN expires > ? THEN amount END) AS held, "
        "sum(expires <= ?) AS expired FROM keyrouter_holds WHERE budget_id = ? AND period = ?) h",
        (*slot, now, now, *slot),
    ).fetchone()
    spent, reserved, held, expired = row
    if expired:
        conn.execute(
            "DELETE FROM keyrouter_holds WHERE budget_id = ? AND period = ? AND expires <= ?",
            (*slot, now),
        )
    return BudgetSpend(budget_id, period, spent or 0.0, (reserved or 0.0) + (held or 0.0))


def _add(conn: sqlite3.Connection, claim: BudgetClaim, spent: float, reserved: float) -> None:
    conn.execute(
        "INSERT INTO keyrouter_budgets VALUES (?, ?, ?, max(0.0, ?)) "
        "ON CONFLICT (budget_id, period) DO UPDATE SET spent = spent + excluded.spent, "
        "reserved = max(0.0, reserved + ?)",
        (claim.budget_id, claim.period, spent, reserved, reserved),
    )
