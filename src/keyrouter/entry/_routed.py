"""What every `KeyRouted*` client adds to its SDK class: its own pool, routed on its transports.

The subclasses themselves (one small module per SDK) only name the SDK class and provider, so
that importing keyrouter never imports an SDK the user does not use.
"""

from __future__ import annotations

from typing import Any

from keyrouter.core.pool import KeyPool
from keyrouter.entry._pools import build_pool, warm_pool
from keyrouter.entry._sdks import SdkBinding, bindings_for, client_transports
from keyrouter.entry.patching import attach
from keyrouter.errors import ConfigError
from keyrouter.transports import RouteSettings, installed_route
from keyrouter.transports.route import PLACEHOLDER_CREDENTIAL

__all__ = ["KeyRouted", "StainlessUserAgent", "route_own_pool"]


def _binding(provider: str, is_async: bool | None) -> SdkBinding:
    return next(b for b in bindings_for(provider) if b.is_async is is_async)


def route_own_pool(
    http_owner: Any,
    provider: str,
    is_async: bool | None,
    keys: object | None,
    objective: str,
    settings: RouteSettings,
) -> KeyPool:
    """Give `http_owner` (the object holding the SDK's HTTP clients) its own routed pool."""
    binding = _binding(provider, is_async)
    if keys is None:
        # `with_options()` / `copy()` rebuild the client on the same HTTP client: keep its pool.
        for transport, _ in client_transports(http_owner, binding):
            route = installed_route(transport)
            if route is not None and route.own_pool is not None:
                return route.own_pool
        raise ConfigError("pass keys=[...] (a list of API keys)", field="keys")
    pool = build_pool(provider, keys, objective=objective)
    warm_pool(pool)
    attach(
        http_owner,
        binding,
        routable=frozenset({PLACEHOLDER_CREDENTIAL}),
        settings=settings,
        own_pool=pool,
    )
    return pool


class KeyRouted:
    """Mixin for SDK client classes: `keys` and routing settings on the constructor."""

    _keyrouter_routed = True
    _keyrouter_provider = ""
    _keyrouter_async: bool | None = False
    """None: the client has both a sync and an async HTTP client (google-genai)."""

    def __init__(
        self,
        *,
        keys: object | None = None,
        objective: str = "headroom",
        max_attempts: int | None = None,
        max_wait: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["api_key"] = PLACEHOLDER_CREDENTIAL
        self._keyrouter_prepare(kwargs)
        super().__init__(**kwargs)
        self.key_pool: KeyPool = route_own_pool(
            self._keyrouter_http_owner(),
            self._keyrouter_provider,
            self._keyrouter_async,
            keys,
            objective,
            RouteSettings(max_attempts, max_wait),
        )
        """This client's pool: `client.key_pool.snapshot()` shows what it learned."""

    def _keyrouter_prepare(self, kwargs: dict[str, Any]) -> None:
        """Adjust the SDK constructor's arguments (nothing to do for most SDKs)."""

    def _keyrouter_http_owner(self) -> Any:
        """The object holding the SDK's HTTP client(s)."""
        return self


class StainlessUserAgent:
    """openai and anthropic name the client class in User-Agent: keep the SDK's own name."""

    _sdk_class_name = ""
    _version: str

    @property
    def user_agent(self) -> str:
        """The SDK's own User-Agent: providers see an ordinary client of the SDK."""
        return f"{self._sdk_class_name}/Python {self._version}"
