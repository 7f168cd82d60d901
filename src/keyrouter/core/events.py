"""Events the core emits, and the tiny registry that delivers them.

Listeners are plain callables. A listener that raises or is slow is the listener's problem:
the error is logged and swallowed, never passed into a caller's request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from keyrouter.core.health import KeyState
from keyrouter.core.quota import Capacity

__all__ = ["CapacityChanged", "Event", "KeyStateChanged", "Listeners"]

_log = logging.getLogger("keyrouter")


@dataclass(frozen=True, slots=True)
class KeyStateChanged:
    key: str
    scope: str
    old: KeyState
    new: KeyState
    reason: str
    until: float | None
    at: float


@dataclass(frozen=True, slots=True)
class CapacityChanged:
    scope: str
    old: Capacity
    new: Capacity
    seconds_to_exhaustion: float
    at: float


Event = KeyStateChanged | CapacityChanged


class Listeners:
    """A list of callbacks; `emit` never raises."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Event], None]] = []

    def add(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Register `callback`; returns a function that unregisters it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def emit(self, events: list[Event]) -> None:
        for event in events:
            for callback in tuple(self._callbacks):
                try:
                    callback(event)
                except Exception:
                    _log.warning("keyrouter event listener %r failed", callback, exc_info=True)

    def __bool__(self) -> bool:
        return bool(self._callbacks)
