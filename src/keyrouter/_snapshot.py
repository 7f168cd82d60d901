"""`keyrouter.snapshot()`: what the pools in force know, as values."""

from __future__ import annotations

import time

from keyrouter.core.pool import KeySnapshot
from keyrouter.core.registry import current_scoped_pools, global_pool
from keyrouter.entry._pools import PROVIDERS

__all__ = ["snapshot"]


def snapshot(provider: str | None = None) -> dict[str, list[KeySnapshot]]:
    """Per provider, every key of the pool in force here (scoped, else global).

    Each `KeySnapshot` has the key's fingerprint (never the secret), state and reason,
    counters, capacity class, headroom and the limits learned per dimension.
    """
    now = time.time()
    result: dict[str, list[KeySnapshot]] = {}
    scoped = current_scoped_pools()
    for name in PROVIDERS if provider is None else (provider,):
        pool = scoped.get(name) or global_pool(name)
        if pool is not None:
            result[name] = pool.snapshot(now)
    return result
