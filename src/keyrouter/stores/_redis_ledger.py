"""Usage records and budget spend in Redis (the core's `UsageLedger`), atomic across hosts.

Records go to one sorted set scored by time, capped at the newest `max_records`; each budget
period is a hash (`spent`, `reserved`) whose reserve and settle are Lua scripts, so the check
and the debit happen together for every claim of a call. Budget hashes and threshold marks
expire `period_ttl` after their last write (40 days: longer than a month's period).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from keyrouter.core.usage import (
    USD_EPSILON,
    BudgetClaim,
    BudgetSpend,
    GroupBy,
    Usage,
    UsageRecord,
    UsageTotals,
)

__all__ = ["RedisLedger"]

_PERIOD_TTL = 40 * 86_400
_MAX_RECORDS = 100_000

_RESERVE = """
local amount, eps, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
  if spent + reserved + amount > tonumber(ARGV[3 + i]) + eps then
    return {i, tostring(spent), tostring(reserved)}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBYFLOAT', key, 'reserved', amount)
  redis.call('HSETNX', key, 'spent', '0')
  redis.call('EXPIRE', key, ttl)
end
return 0
"""

_SETTLE = """
local reserved, spent, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  local left = tonumber(redis.call('HGET', key, 'reserved') or '0') - reserved
  if left < 0 then left = 0 end
  redis.call('HSET', key, 'reserved', tostring(left))
  redis.call('HINCRBYFLOAT', key, 'spent', spent)
  redis.call('EXPIRE', key, ttl)
end
return 0
"""


class RedisLedger:
    def __init__(self, client: Any, prefix: str, *, max_records: int = _MAX_RECORDS) -> None:
        self._client = client
        self._prefix = prefix
        self._records_key = f"{prefix}usage"
        self._max_records = max_records
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    def _budget(self, budget_id: str, period: str) -> str:
        return f"{self._prefix}budget:{budget_id}:{period}"

    def append(self, record: UsageRecord) -> None:
        self.append_many([record])

    def append_many(self, records: Sequence[UsageRecord]) -> None:
        """One round trip for any number of records."""
        pipe = self._client.pipeline(transaction=True)
        pipe.zadd(self._records_key, {json.dumps(_fields(r)): r.at for r in records})
        pipe.zremrangebyrank(self._records_key, 0, -self._max_records - 1)
        pipe.execute()

    def records(
        self, *, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[UsageRecord]:
        low = "-inf" if since is None else since
        high = "+inf" if until is None else f"({until}"
        if limit is not None and limit >= 0:
            if limit == 0:
                return []
            raw = self._client.zrevrangebyscore(self._records_key, high, low, start=0, num=limit)
            raw.reverse()
        else:
            raw = self._client.zrangebyscore(self._records_key, low, high)
        return [_record(json.loads(item)) for item in raw]

    def totals(
        self, by: GroupBy, *, since: float | None = None, until: float | None = None
    ) -> dict[str, UsageTotals]:
        result: dict[str, UsageTotals] = {}
        for record in self.records(since=since, until=until):
            name = {"key": record.key, "scope": record.scope, "pool": record.pool}.get(
                by, record.model or "unknown"
            )
            result[name] = result.get(name, UsageTotals()).add(record)
        return result

    def spend(self, budget_id: str, period: str) -> BudgetSpend:
        spent, reserved = self._client.hmget(self._budget(budget_id, period), "spent", "reserved")
        return BudgetSpend(budget_id, period, float(spent or 0.0), float(reserved or 0.0))

    def reserve(self, claims: Sequence[BudgetClaim], amount_usd: float) -> BudgetSpend | None:
        if not claims:
            return None
        keys = [self._budget(c.budget_id, c.period) for c in claims]
        args = [amount_usd, USD_EPSILON, _PERIOD_TTL, *(c.limit_usd for c in claims)]
        answer = self._reserve(keys=keys, args=args)
        if answer == 0:
            return None
        index, spent, reserved = int(answer[0]), float(answer[1]), float(answer[2])
        claim = claims[index - 1]
        return BudgetSpend(claim.budget_id, claim.period, spent, reserved)

    def settle(self, claims: Sequence[BudgetClaim], reserved_usd: float, spent_usd: float) -> None:
        if claims:
            keys = [self._budget(c.budget_id, c.period) for c in claims]
            self._settle(keys=keys, args=[reserved_usd, spent_usd, _PERIOD_TTL])

    def mark_crossed(self, budget_id: str, period: str, threshold: float) -> bool:
        mark = f"{self._prefix}mark:{budget_id}:{period}:{threshold!r}"
        return bool(self._client.set(mark, "1", nx=True, ex=_PERIOD_TTL))


def _fields(record: UsageRecord) -> list[Any]:
    u = record.usage
    tokens = [
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cache_creation_tokens,
        u.reasoning_tokens,
    ]
    return [
        secrets.token_hex(4),  # two identical records stay two members of the set
        record.at,
        record.key,
        record.scope,
        record.pool,
        record.model,
        tokens,
        record.cost_usd,
        record.latency_s,
        record.status,
        record.estimated,
    ]


def _record(fields: list[Any]) -> UsageRecord:
    _, at, key, scope, pool, model, tokens, cost, latency, status, estimated = fields
    return UsageRecord(
        at, key, scope, pool, model, Usage(*tokens), cost, latency, status, bool(estimated)
    )
