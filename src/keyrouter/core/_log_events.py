"""Every event as one `keyrouter` log record: a sentence for people, `extra=` fields for machines.

Levels: per-call news (a request routed, capacity moving) is DEBUG, so a healthy app logs
nothing above DEBUG; a failover or a key cooling down is INFO; a key that will not serve again
soon (invalid, disabled, exhausted) is WARNING. An event class may set a `log_level` class
attribute to choose its own. Events carry key labels (name or fingerprint), never secrets.

Fields go into the record as `event` (the event's name in snake case) and one attribute per
event field, enums as their value; a field whose name a `LogRecord` already uses gets a
`keyrouter_` prefix.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from enum import Enum
from typing import Any

__all__ = ["log_event"]

_log = logging.getLogger("keyrouter")
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_SERIOUS = frozenset({"invalid", "disabled", "exhausted"})
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def log_event(event: object) -> None:
    """Log `event` at its level, if the `keyrouter` logger is enabled for it."""
    level = _level(event)
    if not _log.isEnabledFor(level):
        return
    name = type(event).__name__
    fields = _fields(event)
    extra: dict[str, Any] = {"event": _SNAKE.sub("_", name).lower()}
    for field, value in fields.items():
        extra[f"keyrouter_{field}" if field in _RESERVED else field] = value
    _log.log(level, "%s", _describe(name, fields), extra=extra)


def _level(event: object) -> int:
    own = getattr(type(event), "log_level", None)
    if isinstance(own, int):
        return own
    name = type(event).__name__
    if name == "RequestRouted":
        return logging.DEBUG
    if name == "CapacityChanged":
        return logging.INFO if _value(getattr(event, "new", None)) == "exhausted" else logging.DEBUG
    if name == "KeyStateChanged":
        return logging.WARNING if _value(getattr(event, "new", None)) in _SERIOUS else logging.INFO
    return logging.INFO


def _fields(event: object) -> dict[str, Any]:
    if not dataclasses.is_dataclass(event):
        return {}
    values: dict[str, Any] = {}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if field.name == "decision":
            value = value.explain()  # a Decision: its reasons as a sentence, no key objects
        values[field.name] = _value(value)
    return values


def _value(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def _describe(name: str, f: dict[str, Any]) -> str:
    if name == "RequestRouted":
        return (
            f"{f['provider']} request routed to {f['key']} (attempt {f['attempt']}): "
            f"{f['decision']}"
        )
    if name == "Failover":
        status = f" {f['status']}" if f.get("status") is not None else ""
        return (
            f"{f['provider']} failover {f['from_key']} -> {f['to_key']}: "
            f"{f['kind']}{status} ({f['reason']})"
        )
    if name == "KeyStateChanged":
        return f"key {f['key']} {f['old']} -> {f['new']} ({f['reason']})"
    if name == "CapacityChanged":
        return f"scope {f['scope']} capacity {f['old']} -> {f['new']}"
    if name == "UsageRecorded":
        usage, cost = f["usage"], f["cost_usd"]
        return (
            f"{f['provider']} {f['model'] or 'unknown model'} on {f['key']}: "
            f"{usage.input_tokens} in, {usage.output_tokens} out, "
            + ("cost unknown" if cost is None else f"${cost:.6f}")
            + (" (estimated)" if f["estimated"] else "")
        )
    details = ", ".join(f"{k}={v}" for k, v in f.items())
    return f"{_SNAKE.sub(' ', name).lower()}: {details}"
