"""Parking a caller until the pool wakes it or a time passes: one event per waiting request.

The pool calls `wake()` from whichever thread settled an attempt, so both kinds are safe to
wake from any thread. A wake that arrives before the caller parks is not lost (it is an event).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["AsyncWaiter", "SyncWaiter"]


class SyncWaiter:
    """Built for every routed request, so it costs nothing until the request must wait."""

    _event: threading.Event

    def arm(self) -> None:
        """Called once, before the request joins the pool's queue."""
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)


class AsyncWaiter:
    """Built for every routed request, so it costs nothing until the request must wait."""

    _event: asyncio.Event

    def arm(self) -> None:
        """Called once, on the request's event loop, before it joins the pool's queue."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._thread = threading.get_ident()

    def wake(self) -> None:
        if threading.get_ident() == self._thread:
            self._event.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
