"""`keyrouter.patch()`: every SDK client created afterwards routes through a key pool.

A wrapt wrapper around each client class's `__init__` does two things: before, it hands the
SDK a placeholder credential when the pool will supply keys (so the SDK does not refuse to be
built without one); after, it installs the interceptor on the client's transports.
`unpatch()` puts the original `__init__`s back exactly.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import wrapt

from keyrouter.core.pool import KeyPool
from keyrouter.core.registry import default_book, global_pool, set_global_pool
from keyrouter.entry._pools import (
    PROVIDERS,
    budgets_for,
    build_pool,
    keys_from_env,
    warm_pool,
)
from keyrouter.entry._sdks import (
    BINDINGS,
    SdkBinding,
    client_base_path,
    client_host,
    client_transports,
)
from keyrouter.stores import STORE_ENV, attach_store, open_store
from keyrouter.transports.route import PLACEHOLDER_CREDENTIAL, Route, RouteSettings

if TYPE_CHECKING:
    from keyrouter.core.store import StateStore

__all__ = ["patch", "unpatch"]

_lock = threading.RLock()  # an import hook may run while `patch()` holds it
_patched: dict[type[Any], SdkBinding] = {}
_settings = RouteSettings()
_active = False
_hooked: set[str] = set()


def patch(
    *,
    openai: object | None = None,
    anthropic: object | None = None,
    gemini: object | None = None,
    azure: object | None = None,
    objective: str | Mapping[str, float] | None = None,
    max_attempts: int | None = None,
    max_wait: float | None = None,
    store: str | None = None,
    budgets: object = None,
    usage: bool | Literal["include"] = False,
) -> None:
    """Route every SDK client created from now on through a pool of keys.

    Keys for a provider come from the argument (a list of strings / `keyrouter.Key`, or a
    comma-separated string), else from `OPENAI_API_KEYS` / `ANTHROPIC_API_KEYS` /
    `GEMINI_API_KEYS` / `AZURE_OPENAI_API_KEYS`. Called with no keys at all, it reads the
    config file (`keyrouter.toml`, `[tool.keyrouter]` in `pyproject.toml`, or
    `$KEYROUTER_CONFIG`; docs/config.md) when there is one: its pools, policies and defaults,
    with `*_API_KEYS` still serving providers the file has no pool for; arguments given here
    win over the file. Azure keys of other resources than the client's endpoint are given as
    `keyrouter.azure_key(secret, endpoint, deployment=...)`.
    A provider with no keys still gets its clients hooked, so `keyrouter.pool(...)` scopes
    apply to them. Calling `patch()` again replaces the pools and settings; the hooks are
    installed once. An SDK that is not imported yet is not imported here (that would cost
    the app a second or so per SDK it never uses): its classes are hooked when the app
    imports it.

    `store` shares what the pools learn beyond this process: `"sqlite:///keyrouter.db"`
    (survives restarts, shared by processes on one machine) or `"redis://host:6379/0"` (shared
    across hosts); default `KEYROUTER_STORE`, else memory. See docs/stores.md.
    `objective` orders the keys: `"headroom"` (default), `"round_robin"`, `"reliability"`,
    `"cost"`, or weights such as `{"cost": 0.7, "headroom": 0.3}`. `budgets` (a
    `keyrouter.Budget`, a list, or `{provider: ...}`) caps spend; `usage=True` records every
    call's usage and cost without a budget; `usage="include"` also makes OpenAI chat streams
    report their usage (see docs/cost.md).
    """
    global _settings, _active
    given = {"openai": openai, "anthropic": anthropic, "gemini": gemini, "azure": azure}
    pools: dict[str, KeyPool] = {}
    config = None
    if all(keys is None for keys in given.values()):
        from keyrouter.config import load_config

        config = load_config()
        if config is not None:  # an argument given to patch() wins over the file
            max_attempts = max_attempts if max_attempts is not None else config.max_attempts
            max_wait = max_wait if max_wait is not None else config.max_wait
            for provider, found in config.provider_pools().items():
                pools[provider] = build_pool(
                    provider,
                    found.key_list,
                    objective=objective or found.objective,
                    policy=found.policy,
                    budgets=budgets_for(provider, budgets),
                    usage=usage,
                )
    for provider, keys in given.items():
        source = keys if keys is not None else keys_from_env(provider)
        if source is not None and provider not in pools:
            default = config.objective if config is not None else "headroom"
            pools[provider] = build_pool(
                provider,
                source,
                objective=objective or default,
                budgets=budgets_for(provider, budgets),
                usage=usage,
            )
    settings = RouteSettings(max_attempts=max_attempts, max_wait=max_wait)  # checks them
    if store is None and config is not None and not os.environ.get(STORE_ENV):
        store = config.store  # the argument, then KEYROUTER_STORE, then the file
    shared = _open_store(store)
    with _lock:
        _settings = settings
        attach_store(default_book(), shared)
        for provider in PROVIDERS:
            set_global_pool(provider, pools.get(provider))
        _active = True
        for binding in BINDINGS:
            if binding.module in sys.modules:
                _hook_class(binding)
            if binding.module not in _hooked:
                _hooked.add(binding.module)
                wrapt.register_post_import_hook(_on_import, binding.module)
    for built in pools.values():
        warm_pool(built)


def _on_import(module: Any) -> None:
    """An SDK was imported after `patch()`: hook its client classes (unless unpatched since)."""
    with _lock:
        if not _active:
            return
        for binding in BINDINGS:
            if binding.module == module.__name__:
                _hook_class(binding)


def _hook_class(binding: SdkBinding) -> None:
    cls = binding.load()
    if cls is not None and cls not in _patched:
        wrapt.wrap_function_wrapper(cls, "__init__", _init_wrapper(binding))
        _patched[cls] = binding


def unpatch() -> None:
    """Undo `patch()`: restore every SDK class exactly and forget the global pools.

    Clients created while patched keep their interceptor; with no pool in force they answer
    with a clear error instead of sending a placeholder to the provider.
    """
    global _active
    with _lock:
        _active = False
        for cls in list(_patched):
            wrapper = cls.__dict__.get("__init__")
            if isinstance(wrapper, wrapt.FunctionWrapper):
                setattr(cls, "__init__", wrapper.__wrapped__)  # noqa: B010
            del _patched[cls]
        for provider in PROVIDERS:
            set_global_pool(provider, None)
        attach_store(default_book(), None)


def _open_store(url: str | None) -> StateStore | None:
    """The store `url` (or `KEYROUTER_STORE`) names; the one in use if it is the same URL."""
    url = url if url is not None else os.environ.get(STORE_ENV) or "memory://"
    current = default_book().store
    if current is not None and getattr(current, "url", None) == url:
        return current
    return open_store(url)


def _init_wrapper(binding: SdkBinding) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if getattr(type(instance), "_keyrouter_routed", False) or _skipped(binding, instance):
            return wrapped(*args, **kwargs)  # routes itself, or speaks another wire format
        routable = _prepare_credential(binding, kwargs)
        if routable is not None and binding.prepare is not None:
            binding.prepare(kwargs)
        result = wrapped(*args, **kwargs)
        if routable:
            attach(instance, binding, routable=routable, settings=_settings)
        return result

    return wrapper


def _skipped(binding: SdkBinding, instance: Any) -> bool:
    return any(cls.__name__ in binding.skipped_subclasses for cls in type(instance).__mro__)


def _prepare_credential(binding: SdkBinding, kwargs: dict[str, Any]) -> frozenset[str] | None:
    """Which credentials of this client mean "use the pool" (None or empty: leave it alone).

    No key given: the pool supplies it (the SDK gets a placeholder unless an ambient key from
    the environment is there for when no pool is in force). A pool key given: routed. Any
    other explicit key (or a key callable): the user's own, never replaced.
    """
    if any(kwargs.get(name) for name in binding.foreign_credentials):
        return None  # OAuth, workload identity, Vertex AI...: not ours to replace
    if binding.vertex_env and os.environ.get(binding.vertex_env, "").lower() in ("1", "true"):
        return None  # Vertex AI chosen through the environment: Gemini keys never go there
    explicit = kwargs.get(binding.key_kwarg)
    if explicit is None:
        no_pool = global_pool(binding.provider) is None
        if no_pool and any(os.environ.get(name) for name in binding.foreign_env):
            return None  # the SDK will find an OAuth token or profile of the user's own
        ambient = next((v for name in binding.env_vars if (v := os.environ.get(name))), None)
        if ambient and no_pool:
            return frozenset({ambient, PLACEHOLDER_CREDENTIAL})
        kwargs[binding.key_kwarg] = PLACEHOLDER_CREDENTIAL
        return frozenset({PLACEHOLDER_CREDENTIAL})
    if isinstance(explicit, str):
        if explicit == PLACEHOLDER_CREDENTIAL:
            return frozenset({PLACEHOLDER_CREDENTIAL})
        pool = global_pool(binding.provider)
        if pool is not None and pool.owns(explicit):
            return frozenset({explicit})
        return frozenset()
    return None


def attach(
    client: Any,
    binding: SdkBinding,
    *,
    routable: frozenset[str],
    settings: RouteSettings,
    own_pool: Any = None,
) -> Route:
    """Install a route for `client` on every transport its HTTP client(s) use."""
    host = client_host(client)
    wire = binding.wire()
    hosts = frozenset({host}) if host else wire.default_hosts
    from keyrouter.transports.interceptor import install  # with the first routed client

    route = Route(wire, hosts, routable, own_pool, settings, base_path=client_base_path(client))
    for transport, is_async in client_transports(client, binding):
        install(transport, route, is_async=is_async)
    return route
