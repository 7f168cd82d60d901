"""An async transport that keeps one inner transport per event loop.

Pooled connections belong to the event loop that opened them. google-genai's async client
uses aiohttp when it is installed, and some versions build one inner HTTP client per running
loop, lazily: either way out of keyrouter's reach. Given this transport instead (through the
SDK's public `HttpOptions.async_client_args`), the SDK sends every async request through one
object keyrouter can route, while connections stay per loop. Known limit: a transport given
this way does not read proxy settings from the environment.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from keyrouter.transports._flavor import package_of

__all__ = ["per_loop_transport"]


def per_loop_transport(package: Any) -> Any:
    """An instance of `package.AsyncBaseTransport` delegating to one inner transport per loop.

    Each inner transport is an `AsyncHTTPTransport` of the package the requests come from
    (google-genai 2.x sends httpx requests while it also imports httpx2).
    """

    class PerLoopAsyncTransport(package.AsyncBaseTransport):  # type: ignore[misc]
        """Delegates each request to the running loop's own inner transport."""

        def __init__(self) -> None:
            self._inner: dict[asyncio.AbstractEventLoop, Any] = {}
            self._lock = threading.Lock()

        def _for_running_loop(self, request: Any) -> Any:
            loop = asyncio.get_running_loop()
            with self._lock:
                inner = self._inner.get(loop)
                if inner is None:
                    # A closed loop's connections can never be used again (nor closed): drop
                    # them, so an app that calls asyncio.run() repeatedly does not leak.
                    for old in [old for old in self._inner if old.is_closed()]:
                        del self._inner[old]
                    inner = self._inner[loop] = package_of(request).AsyncHTTPTransport()
            return inner

        async def handle_async_request(self, request: Any) -> Any:
            return await self._for_running_loop(request).handle_async_request(request)

        async def aclose(self) -> None:
            loop = asyncio.get_running_loop()
            with self._lock:
                inner = self._inner.pop(loop, None)
            if inner is not None:
                await inner.aclose()

    return PerLoopAsyncTransport()
