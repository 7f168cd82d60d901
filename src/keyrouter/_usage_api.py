"""`keyrouter.usage_totals()`: what the calls of this process (or a shared store) used and cost."""

from __future__ import annotations

import time

from keyrouter.core.budget import Period, period_bounds
from keyrouter.core.registry import default_book
from keyrouter.core.usage import GroupBy, UsageRecord, UsageTotals
from keyrouter.errors import ConfigError

__all__ = ["usage_records", "usage_totals"]


def usage_totals(
    by: GroupBy = "key",
    *,
    period: Period | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, UsageTotals]:
    """Calls, tokens and cost grouped by `"key"` (fingerprint), `"scope"`, `"model"` or
    `"pool"`; over the current UTC `period` (`"day"`, `"month"`) or `since`/`until` (epoch
    seconds). Only pools that keep usage are counted (budgets, credits, the `cost` objective,
    or `usage=True`)."""
    if by not in ("key", "scope", "model", "pool"):
        raise ConfigError(f"group by 'key', 'scope', 'model' or 'pool', not {by!r}", field="by")
    if period is not None:
        _, since, until = period_bounds(period, time.time())
    return default_book().ledger.totals(by, since=since, until=until)


def usage_records(*, limit: int | None = 100) -> list[UsageRecord]:
    """The newest `limit` usage records, oldest first."""
    return default_book().ledger.records(limit=limit)
