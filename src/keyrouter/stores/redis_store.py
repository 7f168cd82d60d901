"""A store in Redis: state shared by processes on many hosts, each step atomic in Lua.

Every exchange (the buffered settle reports plus one reservation) is a single `EVALSHA` of
`_script.lua`, which runs the same steps as `_docs.py` on JSON documents: one per quota
scope (buckets, cooldown, leases in flight) and one per key that was found invalid or
disabled. Documents carry TTLs (a day for scopes, refreshed on every write and never shorter
than a cooldown; 30 days for key flags) and a lease expires after `lease_ttl`, so nothing a
dead process left behind lingers. Only ids are stored: `key_id` hashes and scope names, never
key material. Timeouts are short and redis-py's own retries are off: an outage costs one
failed call, then the store is skipped for a second at a time (see `_base.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis

from keyrouter.core.usage import DEFAULT_HOLD_TTL
from keyrouter.stores._base import DEFAULT_LEASE_TTL, GuardedLedger, SharedStore
from keyrouter.stores._docs import KEY_FLAG_SECONDS, Doc
from keyrouter.stores._redis_ledger import RedisLedger

__all__ = ["RedisStore"]

_SCOPE_TTL = 86_400
_KEY_TTL = KEY_FLAG_SECONDS
_TIMEOUT = 0.5


class RedisStore(SharedStore):
    """State under `prefix` in the Redis at `url`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "keyrouter:",
        lease_ttl: float = DEFAULT_LEASE_TTL,
        hold_ttl: float = DEFAULT_HOLD_TTL,
        description: str | None = None,
        timeout: float = _TIMEOUT,
    ) -> None:
        super().__init__(description or url, lease_ttl=lease_ttl)
        self.prefix = prefix
        self.client: Any = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
            health_check_interval=0,
        )
        source = resources.files("keyrouter.stores").joinpath("_script.lua").read_text()
        self._script = self.client.register_script(source)
        ledger = RedisLedger(self.client, prefix, hold_ttl=hold_ttl)
        self.ledger = GuardedLedger(ledger, self, hold_ttl=hold_ttl)

    def _scope_key(self, scope_id: str) -> str:
        return f"{self.prefix}scope:{scope_id}"

    def _key_key(self, key_id: str) -> str:
        return f"{self.prefix}key:{key_id}"

    def _exchange(self, batch: list[Doc], request: Doc | None) -> Doc | None:
        names: list[str] = []
        index: dict[str, int] = {}

        def slot(name: str) -> int:
            if name not in index:
                names.append(name)
                index[name] = len(names)
            return index[name]

        settle = []
        for report in batch:
            item = dict(report)
            item["s"] = slot(self._scope_key(report["scope"]))
            item["k"] = slot(self._key_key(report["key"]))
            settle.append(item)
        job: Doc = {
            "settle": settle,
            "scope_ttl": _SCOPE_TTL,
            "key_ttl": _KEY_TTL,
            "now": request["at"] if request is not None else time.time(),
        }
        if request is not None:
            job["reserve"] = {
                **request,
                "s": slot(self._scope_key(request["scope"])),
                "k": slot(self._key_key(request["key"])),
            }
        raw = self._script(keys=names, args=[json.dumps(job)])
        if request is None:
            return None
        reply: Doc = json.loads(raw)
        return reply

    def _load(self, scope_ids: Sequence[str], key_ids: Sequence[str]) -> tuple[Doc, Doc]:
        names = [self._scope_key(s) for s in scope_ids] + [self._key_key(k) for k in key_ids]
        if not names:
            return {}, {}
        values = self.client.mget(names)
        scopes = {s: json.loads(v) for s, v in zip(scope_ids, values, strict=False) if v}
        keys = {
            k: json.loads(v) for k, v in zip(key_ids, values[len(scope_ids) :], strict=True) if v
        }
        return scopes, keys

    def _close(self) -> None:
        self.client.close()
