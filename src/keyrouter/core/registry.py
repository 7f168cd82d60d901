"""Which pool serves a provider right now: the scoped one, the client's own, or the global one.

Scoped pools live in a `ContextVar`, so a `with keyrouter.pool(...)` block affects only its own
thread or asyncio task (tasks inherit the scope they were created in). Global pools are set by
`keyrouter.patch()`. All pools share one `StateBook` so a key learned bad anywhere is bad
everywhere in the process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar
from types import MappingProxyType

from keyrouter.core.pool import KeyPool
from keyrouter.core.state import StateBook

__all__ = [
    "current_scoped_pools",
    "default_book",
    "global_pool",
    "scoped_pools",
    "set_global_pool",
]

_book = StateBook()
_global: dict[str, KeyPool] = {}
_global_lock = threading.Lock()
_EMPTY: Mapping[str, KeyPool] = MappingProxyType({})

scoped_pools: ContextVar[Mapping[str, KeyPool]] = ContextVar(
    "keyrouter_scoped_pools", default=_EMPTY
)


def default_book() -> StateBook:
    """The process-wide state every pool learns into."""
    return _book


def global_pool(provider: str) -> KeyPool | None:
    return _global.get(provider)


def set_global_pool(provider: str, pool: KeyPool | None) -> None:
    with _global_lock:
        if pool is None:
            _global.pop(provider, None)
        else:
            _global[provider] = pool


def current_scoped_pools() -> Mapping[str, KeyPool]:
    return scoped_pools.get()
