"""`keyrouter.on_event(callback)`: be told when a key's state or a scope's capacity changes."""

from __future__ import annotations

from collections.abc import Callable

from keyrouter.core.events import Event
from keyrouter.core.registry import default_book

__all__ = ["on_event"]


def on_event(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Call `callback` with every `KeyStateChanged` and `CapacityChanged` event.

    Returns a function that unregisters it. A callback that raises is logged and ignored: it
    never breaks the call that produced the event. Callbacks run on the thread that settled the
    attempt, after keyrouter's lock is released; keep them quick.
    """
    return default_book().listeners.add(callback)
