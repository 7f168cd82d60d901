"""Turning what a user passed into pools: one helper for patch(), pool() and the clients."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from keyrouter.core.keys import Key, foreign_issuer, normalize_keys
from keyrouter.core.pool import KeyPool
from keyrouter.core.registry import default_book
from keyrouter.errors import ConfigError, KeyPrefixWarning

if TYPE_CHECKING:  # core.budget loads only for pools that meter usage or have budgets
    from keyrouter.core.budget import Budget, Spending
    from keyrouter.core.policy import PoolPolicy

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
    objective: str | Mapping[str, float],
    name: str | None = None,
    policy: PoolPolicy | None = None,
    budgets: Sequence[Budget] = (),
    usage: bool | Literal["include"] = False,
) -> KeyPool:
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown provider {provider!r}; keyrouter knows {sorted(PROVIDERS)}", field=provider
        )
    pool = new_pool(
        keys,
        field_name=provider,
        objective=objective,
        name=name or provider,
        policy=policy,
        budgets=budgets,
        usage=usage,
    )
    _warn_foreign_keys(provider, pool.keys)
    return pool


def _warn_foreign_keys(provider: str, keys: Sequence[Key]) -> None:
    """Warn (by field and fingerprint) about keys whose prefix names another provider."""
    for index, key in enumerate(keys):
        issuer = foreign_issuer(key.secret, provider) if key.base_url is None else None
        if issuer is not None:
            warnings.warn(
                f"{provider}[{index}]: key {key.fingerprint} is given for {provider} but has "
                f"the prefix of {issuer} keys; it only works if the client's base_url points "
                "at a server that takes it",
                KeyPrefixWarning,
                stacklevel=_outside_keyrouter(),
            )


def _outside_keyrouter() -> int:
    """The `stacklevel` of the first caller outside keyrouter (patch, a client, a pool...)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def budgets_for(provider: str, budgets: object) -> tuple[Budget, ...]:
    """What `budget=`/`budgets=` says for one provider: a Budget, a list of them, or a mapping
    of provider name to either."""
    if budgets is None:
        return ()
    if isinstance(budgets, Mapping):
        unknown = set(budgets) - set(PROVIDERS)
        if unknown:
            raise ConfigError(f"unknown provider(s) {sorted(unknown)}", field="budgets")
        return budgets_for(provider, budgets.get(provider))
    from keyrouter.core.budget import Budget

    items = [budgets] if isinstance(budgets, Budget) else budgets
    if not isinstance(items, list | tuple) or not all(isinstance(b, Budget) for b in items):
        raise ConfigError(
            "expected a keyrouter.Budget, a list of them, or {provider: Budget}", field="budgets"
        )
    return tuple(items)


def configured_budgets(given: Sequence[object]) -> tuple[Budget, ...]:
    """Budgets from the config file (tables with Budget's fields) or already built."""
    from keyrouter.core.budget import Budget

    built = []
    for index, item in enumerate(given):
        if isinstance(item, Budget):
            built.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError("a budget is a table of usd, period, per...", field="budgets")
        fields = dict(item)
        if "thresholds" in fields:
            fields["thresholds"] = tuple(fields["thresholds"])
        try:
            built.append(Budget(**fields))
        except TypeError as exc:
            raise ConfigError(f"bad budget: {exc}", field=f"budgets[{index}]") from None
        except ConfigError as exc:
            where = f"budgets[{index}]" + (exc.field or "").removeprefix("budget")
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise ConfigError(message, field=where) from None
    return tuple(built)


def _wants_cost(keys: Sequence[Key], objective: object) -> bool:
    weighs_cost = objective == "cost" or (isinstance(objective, Mapping) and "cost" in objective)
    return weighs_cost or any(k.credits_usd for k in keys)


def _spending(
    name: str, keys: Sequence[Key], budgets: Sequence[Budget], *, include_usage: bool
) -> Spending:
    from keyrouter._pricing import price_of
    from keyrouter.core.budget import Spending

    book = default_book()
    return Spending(
        pool=name,
        keys=keys,
        budgets=budgets,
        ledger=lambda: book.ledger,
        price=price_of,
        emit=book.listeners.emit,
        include_usage=include_usage,
    )


def new_pool(
    keys: object,
    *,
    field_name: str,
    objective: str | Mapping[str, float],
    name: str,
    policy: PoolPolicy | None = None,
    budgets: Sequence[Budget] = (),
    usage: bool | Literal["include"] = False,
) -> KeyPool:
    """A pool of `keys` learning into the process-wide state (any API, not only an SDK's).

    It keeps usage and cost (`spending`) when asked to (`usage`), when it has budgets (given
    or from its policy), free credits on a key, or an objective that weighs cost.
    """
    normalized = normalize_keys(keys, field_name=field_name)
    spending = None
    if policy is not None and policy.budgets:
        budgets = (*budgets, *configured_budgets(policy.budgets))
    if usage not in (True, False, "include"):
        raise ConfigError(f"True, False or 'include', not {usage!r}", field="usage")
    if usage or budgets or _wants_cost(normalized, objective):
        spending = _spending(name, normalized, budgets, include_usage=usage == "include")
    return KeyPool(
        normalized,
        book=default_book(),
        objective=objective,
        name=name,
        policy=policy,
        spending=spending,
    )


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
