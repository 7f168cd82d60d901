"""Usage records and budget spend in Redis (the core's `UsageLedger`), atomic across hosts.

Records go to one sorted set scored by time, capped at the newest `max_records`; each budget
period is a hash (`spent`, plain `reserved`, `held`: the sum of its holds, and `h:<id>` per
hold) with a sorted set of its hold ids scored by expiry; reserve, settle and spend are Lua
scripts, so the check and the debit happen together for every claim of a call. A hold's
expiry is read off the Redis server's clock (`TIME`), so hosts with skewed clocks agree on
it; expired holds are purged by the script that next reserves on or reads the budget. Budget
hashes and threshold marks expire `period_ttl` after their last write (40 days: longer than a
month's period).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
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

__all__ = ["RedisLedger"]

_PERIOD_TTL = 40 * 86_400
_MAX_RECORDS = 100_000

_COMMON = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: TIME, then writes
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function drop(hash, holds, ids)
  local fields = {}
  for i, id in ipairs(ids) do fields[i] = 'h:' .. id end
  local held = tonumber(redis.call('HGET', hash, 'held') or '0')
  for _, amount in ipairs(redis.call('HMGET', hash, unpack(fields))) do
    if amount then held = held - tonumber(amount) end
  end
  redis.call('HDEL', hash, unpack(fields))
  redis.call('ZREM', holds, unpack(ids))
  if held < 0 or redis.call('ZCARD', holds) == 0 then held = 0 end  -- no drift once empty
  redis.call('HSET', hash, 'held', tostring(held))
end
local function purge(hash, holds, now)
  local gone
  repeat  -- in chunks: unpack() has a stack limit, a dead process may have left many
    gone = redis.call('ZRANGEBYSCORE', holds, '-inf', now, 'LIMIT', 0, 500)
    if #gone > 0 then drop(hash, holds, gone) end
  until #gone < 500
end
local function counter(hash)
  local v = redis.call('HMGET', hash, 'spent', 'reserved', 'held')
  return tonumber(v[1] or '0'), tonumber(v[2] or '0') + tonumber(v[3] or '0')
end
"""

_RESERVE = (
    _COMMON
    + """
local now, amount, eps = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, hold_ttl, hold = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
for i = 1, #KEYS / 2 do
  local hash, holds = KEYS[2 * i - 1], KEYS[2 * i]
  purge(hash, holds, now)
  local spent, held = counter(hash)
  if spent + held + amount > tonumber(ARGV[6 + i]) + eps then
    return {i, tostring(spent), tostring(held)}
  end
end
for i = 1, #KEYS / 2 do
  local hash, holds = KEYS[2 * i - 1], KEYS[2 * i]
  if hold == '' then
    redis.call('HINCRBYFLOAT', hash, 'reserved', amount)
  else
    if redis.call('HEXISTS', hash, 'h:' .. hold) == 1 then drop(hash, holds, {hold}) end
    if amount > 0 then
      redis.call('HSET', hash, 'h:' .. hold, tostring(amount))
      redis.call('ZADD', holds, now + hold_ttl, hold)
      redis.call('HINCRBYFLOAT', hash, 'held', amount)
      redis.call('EXPIRE', holds, ttl)
    end
  end
  redis.call('HSETNX', hash, 'spent', '0')
  redis.call('EXPIRE', hash, ttl)
end
return 0
"""
)

_SETTLE = (
    _COMMON
    + """
local reserved, spent, ttl, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for i = 1, #KEYS / 2 do
  local hash, holds = KEYS[2 * i - 1], KEYS[2 * i]
  if hold ~= '' then
    local amount = redis.call('HGET', hash, 'h:' .. hold)
    if amount then
      redis.call('HDEL', hash, 'h:' .. hold)
      redis.call('ZREM', holds, hold)
      local held = tonumber(redis.call('HINCRBYFLOAT', hash, 'held', -tonumber(amount)))
      if held < 0 or redis.call('ZCARD', holds) == 0 then redis.call('HSET', hash, 'held', '0') end
    end
    if spent ~= 0 then redis.call('HINCRBYFLOAT', hash, 'spent', spent) end
  else
    if reserved ~= 0 then
      local left = tonumber(redis.call('HGET', hash, 'reserved') or '0') - reserved
      if left < 0 then left = 0 end
      redis.call('HSET', hash, 'reserved', tostring(left))
    end
    redis.call('HINCRBYFLOAT', hash, 'spent', spent)
  end
  redis.call('EXPIRE', hash, ttl)
end
return 0
"""
)

_SPEND = (
    _COMMON
    + """
purge(KEYS[1], KEYS[2], clock(ARGV[1]))
local spent, held = counter(KEYS[1])
return {tostring(spent), tostring(held)}
"""
)


class RedisLedger:
    """`clock` (epoch seconds) replaces the server's clock, for tests only."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        max_records: int = _MAX_RECORDS,
        hold_ttl: float = DEFAULT_HOLD_TTL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._records_key = f"{prefix}usage"
        self._max_records = max_records
        self.hold_ttl = hold_ttl
        self.clock = clock
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._spend = client.register_script(_SPEND)

    def _budget(self, budget_id: str, period: str) -> str:
        return f"{self._prefix}budget:{budget_id}:{period}"

    def _keys(self, claims: Sequence[BudgetClaim]) -> list[str]:
        """Each claim's budget hash and the sorted set of its holds."""
        keys = []
        for claim in claims:
            budget = self._budget(claim.budget_id, claim.period)
            keys += [budget, f"{budget}:holds"]
        return keys

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

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
        keys = self._keys([BudgetClaim(budget_id, period, 0.0)])
        spent, reserved = self._spend(keys=keys, args=[self._now()])
        return BudgetSpend(budget_id, period, float(spent), float(reserved))

    def reserve(
        self, claims: Sequence[BudgetClaim], amount_usd: float, hold: str | None = None
    ) -> BudgetSpend | None:
        if not claims:
            return None
        args = [self._now(), amount_usd, USD_EPSILON, _PERIOD_TTL, self.hold_ttl, hold or ""]
        args += [c.limit_usd for c in claims]
        answer = self._reserve(keys=self._keys(claims), args=args)
        if answer == 0:
            return None
        index, spent, reserved = int(answer[0]), float(answer[1]), float(answer[2])
        claim = claims[index - 1]
        return BudgetSpend(claim.budget_id, claim.period, spent, reserved)

    def settle(
        self,
        claims: Sequence[BudgetClaim],
        reserved_usd: float,
        spent_usd: float,
        hold: str | None = None,
    ) -> None:
        if claims:
            args = [reserved_usd, spent_usd, _PERIOD_TTL, hold or ""]
            self._settle(keys=self._keys(claims), args=args)

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
