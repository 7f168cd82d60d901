"""`keyrouter.pool(...)`: a key pool in force for one block of code.

The pool is held in a `ContextVar`, so it applies to the current thread or asyncio task only
(tasks created inside the block inherit it). It applies to clients that route: those created
after `keyrouter.patch()` and the `KeyRouted*` clients.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType
from typing import Literal, Self

from keyrouter.core.policy import PoolPolicy
from keyrouter.core.pool import KeyPool
from keyrouter.core.registry import current_scoped_pools, scoped_pools
from keyrouter.entry._pools import budgets_for, build_pool
from keyrouter.errors import ConfigError

__all__ = ["pool"]

_Entry = tuple["pool", Token[Mapping[str, KeyPool]]]
_entered: ContextVar[tuple[_Entry, ...]] = ContextVar("keyrouter_entered_pools", default=())
"""The blocks entered in this thread / task, innermost last, each with the token that undoes it.

Kept in a context variable rather than on the `pool` object, so that one `pool` object may be
entered by many threads or tasks at once (one per tenant, shared by a server's workers)."""


class pool:  # noqa: N801 - used like a function: `with keyrouter.pool(openai=[...]):`
    """Scope a key pool to a block: `with keyrouter.pool(openai=["sk-1", "sk-2"]): ...`.

    Works as `with` and `async with`. Nested scopes stack: the innermost pool for a provider
    wins, and pools for other providers are inherited from the outer scope.

    `labels` limits the block to keys carrying one of them (`labels=["team-a"]`);
    `max_wait` / `max_attempts` bound its requests' waiting and attempts (docs/policies.md).
    `keyrouter.pool("team-a")` uses the pool of that name in the config file (docs/config.md).
    `budget=keyrouter.Budget(...)` (or a list, or `{provider: ...}`) caps the scoped pool's
    spend; give the budget a `name` to share it between `pool(...)` blocks.
    """

    def __init__(
        self,
        name: str | None = None,
        /,
        *,
        openai: object | None = None,
        anthropic: object | None = None,
        gemini: object | None = None,
        azure: object | None = None,
        objective: str | Mapping[str, float] = "headroom",
        labels: Collection[str] = (),
        max_wait: float | None = None,
        max_attempts: int | None = None,
        budget: object = None,
        usage: bool | Literal["include"] = False,
    ) -> None:
        self.pools: dict[str, KeyPool] = {}
        given = {"openai": openai, "anthropic": anthropic, "gemini": gemini, "azure": azure}
        if name is not None:
            limits = (max_wait, max_attempts, budget, *given.values())
            if labels or usage or any(v is not None for v in limits):
                raise ConfigError(
                    f"give a config-file pool's name ({name!r}) or keys and options, not both",
                    field="pool",
                )
            self.pools = _configured(name)
            return
        chosen = [labels] if isinstance(labels, str) else labels
        policy = PoolPolicy(frozenset(chosen), max_wait=max_wait, max_attempts=max_attempts)
        self.pools = {
            provider: build_pool(
                provider,
                keys,
                objective=objective,
                name=f"scoped {provider}",
                policy=policy,
                budgets=budgets_for(provider, budget),
                usage=usage,
            )
            for provider, keys in given.items()
            if keys is not None
        }
        if not self.pools:
            raise ConfigError(
                "give keys for at least one provider, e.g. openai=[...]", field="pool"
            )

    def __enter__(self) -> Self:
        merged = {**current_scoped_pools(), **self.pools}
        token = scoped_pools.set(MappingProxyType(merged))
        _entered.set((*_entered.get(), (self, token)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entered = _entered.get()
        for depth in range(len(entered) - 1, -1, -1):
            if entered[depth][0] is self:
                scoped_pools.reset(entered[depth][1])
                _entered.set(entered[:depth])
                return
        raise RuntimeError("keyrouter.pool: exited a block that this thread or task never entered")

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _configured(name: str) -> dict[str, KeyPool]:
    """The config file's pool `name`, built (the file is read each time: keep the pool)."""
    from keyrouter.config import load_config

    config = load_config()
    found = config.pools.get(name) if config is not None else None
    if config is None or found is None:
        where = f"{config.path} has" if config is not None else "no config file found, so"
        raise ConfigError(f"{where} no pool named {name!r}", field="pool")
    return {
        found.provider: build_pool(
            found.provider,
            found.key_list,
            objective=found.objective,
            name=name,
            policy=found.policy,
        )
    }
