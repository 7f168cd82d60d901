"""`keyrouter.on_event(callback)`: be told what the pool does (routing, failover, key states)."""

from __future__ import annotations

from collections.abc import Callable

from keyrouter.core.events import Event
from keyrouter.core.registry import default_book

__all__ = ["on_event"]


def on_event(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Call `callback` with every event: `RequestRouted` (each attempt's key and the decision's
    reasons), `Failover`, `KeyStateChanged`, `CapacityChanged`, and the events of budgets and
    stores. Match on the type (`isinstance` or `match`); new event types may be added.

    Returns a function that unregisters it. A callback that raises is logged and ignored: it
    never breaks the call that produced the event. Callbacks run on the thread that settled the
    attempt, after keyrouter's lock is released; keep them quick.
    """
    return default_book().listeners.add(callback)
