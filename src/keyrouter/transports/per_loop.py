"""An async transport that keeps one inner transport per event loop.

Pooled connections belong to the event loop that opened them. google-genai's own async client
therefore builds one inner HTTP client per running loop, lazily, out of keyrouter's reach. Given
this transport instead (through the SDK's public `HttpOptions.async_client_args`), the SDK
sends every async request through one object keyrouter can route, while connections stay
per loop as before.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
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
            self._inner: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
                weakref.WeakKeyDictionary()
            )
            self._lock = threading.Lock()

        def _for_running_loop(self, request: Any) -> Any:
            loop = asyncio.get_running_loop()
            with self._lock:
                inner = self._inner.get(loop)
                if inner is None:
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
