"""The interceptor that goes inside each SDK's own HTTP transport.

`install` replaces `handle_request` / `handle_async_request` on a transport *instance* (never
its class: anthropic rejects foreign transport classes), so it works for httpx, httpx2 and any
transport the SDK picked. `uninstall` restores the instance exactly. The interceptor module
loads on first use (the first routed client), not with `patch()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyrouter.transports.route import Route, RouteSettings

if TYPE_CHECKING:
    from keyrouter.transports.interceptor import install, installed_route, uninstall

__all__ = ["Route", "RouteSettings", "install", "installed_route", "uninstall"]

_LAZY = {"install", "installed_route", "uninstall"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from keyrouter.transports import interceptor

        return getattr(interceptor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
