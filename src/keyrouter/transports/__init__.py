"""The interceptor that goes inside each SDK's own HTTP transport.

`install` replaces `handle_request` / `handle_async_request` on a transport *instance* (never
its class: anthropic rejects foreign transport classes), so it works for httpx, httpx2 and any
transport the SDK picked. `uninstall` restores the instance exactly.
"""

from keyrouter.transports.interceptor import install, installed_route, uninstall
from keyrouter.transports.route import Route, RouteSettings

__all__ = ["Route", "RouteSettings", "install", "installed_route", "uninstall"]
