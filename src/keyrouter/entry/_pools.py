"""Turning what a user passed into pools: one helper for patch(), pool() and the clients."""

from __future__ import annotations

import os
import time

from keyrouter.core.keys import normalize_keys
from keyrouter.core.policy import PoolPolicy
from keyrouter.core.pool import KeyPool
from keyrouter.core.registry import default_book
from keyrouter.errors import ConfigError

__all__ = ["PROVIDERS", "build_pool", "keys_from_env", "new_pool", "warm_pool"]

PROVIDERS: dict[str, str] = {
    "openai": "OPENAI_API_KEYS",
    "anthropic": "ANTHROPIC_API_KEYS",
    "gemini": "GEMINI_API_KEYS",
    "azure": "AZURE_OPENAI_API_KEYS",
}
"""Provider name -> the environment variable that may list its keys, comma-separated."""


def build_pool(
    provider: str,
    keys: object,
    *,
    objective: str,
    name: str | None = None,
    policy: PoolPolicy | None = None,
) -> KeyPool:
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown provider {provider!r}; keyrouter knows {sorted(PROVIDERS)}", field=provider
        )
    return new_pool(
        keys, field_name=provider, objective=objective, name=name or provider, policy=policy
    )


def new_pool(
    keys: object,
    *,
    field_name: str,
    objective: str,
    name: str,
    policy: PoolPolicy | None = None,
) -> KeyPool:
    """A pool of `keys` learning into the process-wide state (any API, not only an SDK's)."""
    normalized = normalize_keys(keys, field_name=field_name)
    return KeyPool(normalized, book=default_book(), objective=objective, name=name, policy=policy)


def keys_from_env(provider: str) -> str | None:
    """The comma-separated keys in the provider's `*_API_KEYS` variable, if set and not blank."""
    value = os.environ.get(PROVIDERS[provider], "")
    return value if value.strip() else None


def warm_pool(pool: KeyPool) -> None:
    """Start `pool` from what the shared store knows (limits, cooldowns, invalid keys), if the
    book has one: state from before a restart, or from other processes."""
    store = pool.book.store
    if store is None:
        return
    now = time.time()
    scope_ids = sorted({key.scope_id for key in pool.keys})
    scopes, keys = store.load(scope_ids, [key.id for key in pool.keys], now)
    if scopes or keys:
        pool.adopt_shared(scopes, keys, now)
