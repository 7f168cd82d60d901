"""`KeyRoutedOpenAI` / `KeyRoutedAsyncOpenAI`: real `openai` clients with their own key pool.

They are the SDK's classes with one more constructor argument, `keys`; everything else
(resources, return types, exceptions, `with_options`) is the SDK's own. No `patch()` needed.
"""

from __future__ import annotations

from typing import Any

import openai

from keyrouter.core.pool import KeyPool
from keyrouter.entry._pools import build_pool
from keyrouter.entry._sdks import SdkBinding, bindings_for, http_transports
from keyrouter.entry.patching import attach
from keyrouter.errors import ConfigError
from keyrouter.transports import RouteSettings, installed_route
from keyrouter.transports.route import PLACEHOLDER_CREDENTIAL

__all__ = ["KeyRoutedAsyncOpenAI", "KeyRoutedOpenAI"]


def _binding(is_async: bool) -> SdkBinding:
    return next(b for b in bindings_for("openai") if b.is_async is is_async)


def _route_client(
    client: Any,
    is_async: bool,
    keys: object | None,
    objective: str,
    settings: RouteSettings,
) -> KeyPool:
    if keys is None:
        # `with_options()` / `copy()` rebuild the client on the same HTTP client: keep its pool.
        for transport in http_transports(client):
            route = installed_route(transport)
            if route is not None and route.own_pool is not None:
                return route.own_pool
        raise ConfigError("pass keys=[...] (a list of API keys)", field="keys")
    pool = build_pool("openai", keys, objective=objective)
    attach(
        client,
        _binding(is_async),
        routable=frozenset({PLACEHOLDER_CREDENTIAL}),
        settings=settings,
        own_pool=pool,
    )
    return pool


class _KeyRouted:
    """What both client subclasses add to the SDK's class: `keys` and routing settings."""

    _keyrouter_routed = True
    _keyrouter_async = False
    _sdk_class_name = ""
    _version: str

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
        super().__init__(**kwargs)
        self.key_pool: KeyPool = _route_client(
            self, self._keyrouter_async, keys, objective, RouteSettings(max_attempts, max_wait)
        )
        """This client's pool: `client.key_pool.snapshot()` shows what it learned."""

    @property
    def user_agent(self) -> str:
        """The SDK's own User-Agent: providers see an ordinary client of the SDK."""
        return f"{self._sdk_class_name}/Python {self._version}"


class KeyRoutedOpenAI(_KeyRouted, openai.OpenAI):
    """`openai.OpenAI` whose every request is spread over `keys` with failover."""

    _sdk_class_name = "OpenAI"


class KeyRoutedAsyncOpenAI(_KeyRouted, openai.AsyncOpenAI):
    """`openai.AsyncOpenAI` whose every request is spread over `keys` with failover."""

    _keyrouter_async = True
    _sdk_class_name = "AsyncOpenAI"
