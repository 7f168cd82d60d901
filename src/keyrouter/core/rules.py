"""Per-key rules as values: when a key may serve (`Schedule`) and which models (glob patterns).

They live here, apart from `policy.py`, because `Key` holds them and the pool's policy gate
needs `Key`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Final

from keyrouter.errors import ConfigError

if TYPE_CHECKING:
    from keyrouter.core.keys import Key

__all__ = ["Schedule", "model_allowed", "patterns"]

_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK_HOURS: Final = 7 * 24
_EPOCH_WEEKDAY: Final = 3  # 1970-01-01 was a Thursday (Monday = 0)
_MAX_CACHED_MODELS: Final = 1024


class Schedule:
    """When a key may serve, in UTC: hours of the day and days of the week.

    `hours` is a comma-separated list (or a list) of hours or ranges, `"22-06"` meaning 22:00 to
    06:00 (the end is exclusive; ranges may wrap midnight; `"0-24"` is all day). `days` is
    likewise `"mon-fri"`, `"sat,sun"` or a list of day names. A key is open in an hour when that
    hour is in `hours` and that (UTC) day is in `days`; either left empty means "any".
    """

    __slots__ = ("_open", "days", "hours")

    def __init__(self, hours: str | Iterable[str] = "", days: str | Iterable[str] = "") -> None:
        hour_items = _items(hours)
        day_items = _items(days)
        hour_set = _hours(hour_items)
        day_set = _days(day_items)
        self.hours: tuple[str, ...] = tuple(hour_items)
        self.days: tuple[str, ...] = tuple(day_items)
        self._open = tuple(
            (not day_set or d in day_set) and (not hour_set or h in hour_set)
            for d in range(7)
            for h in range(24)
        )
        if not any(self._open):
            raise ConfigError("the schedule is never open", field="schedule")

    def is_open(self, now: float) -> bool:
        return self._open[_week_hour(now)]

    def opens_at(self, now: float) -> float:
        """The start of the next open hour after `now` (`now` itself if open now)."""
        if self.is_open(now):
            return now
        start = math.floor(now / 3600.0)
        here = _week_hour(now)
        for ahead in range(1, _WEEK_HOURS + 1):
            if self._open[(here + ahead) % _WEEK_HOURS]:
                return (start + ahead) * 3600.0
        return math.inf  # unreachable: the constructor refuses a schedule that never opens

    def describe(self) -> str:
        parts = []
        if self.hours:
            parts.append(f"hours {','.join(self.hours)} UTC")
        if self.days:
            parts.append(f"days {','.join(self.days)}")
        return " on ".join(parts) or "always"

    def __repr__(self) -> str:
        return f"Schedule(hours={','.join(self.hours)!r}, days={','.join(self.days)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and other._open == self._open

    def __hash__(self) -> int:
        return hash(self._open)


def _week_hour(now: float) -> int:
    hours = math.floor(now / 3600.0)
    return ((hours // 24 + _EPOCH_WEEKDAY) % 7) * 24 + hours % 24


def _items(value: str | Iterable[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) for p in parts):
        raise ConfigError("expected strings like '22-06' or 'mon-fri'", field="schedule")
    return [p.strip().lower() for p in parts if p.strip()]


def _hours(items: Sequence[str]) -> set[int]:
    """Hours 0-23 that `items` name: `"9"` is 9:00-10:00, `"22-06"` wraps midnight."""
    chosen: set[int] = set()
    for item in items:
        first, dash, last = item.partition("-")
        start = _number(first, item) % 24
        end = _number(last, item) if dash else start + 1
        if start % 24 == end % 24 and not (start, end) == (0, 24):
            raise ConfigError(f"{item!r} is an empty range", field="schedule.hours")
        chosen.update((start + i) % 24 for i in range((end - start) % 24 or 24))
    return chosen


def _number(text: str, item: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) > 24:
        raise ConfigError(f"{item!r}: hours are 0-24, as in '22-06'", field="schedule.hours")
    return int(text)


def _days(items: Sequence[str]) -> set[int]:
    """Days (Monday = 0) that `items` name: `"sat"`, `"mon-fri"`, `"fri-mon"` (wraps)."""
    chosen: set[int] = set()
    for item in items:
        first, dash, last = item.partition("-")
        start = _day(first, item)
        end = _day(last, item) if dash else start
        chosen.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    return chosen


def _day(text: str, item: str) -> int:
    name = text.strip()[:3]
    if name not in _DAYS:
        raise ConfigError(f"{item!r}: days are mon..sun, as in 'mon-fri'", field="schedule.days")
    return _DAYS.index(name)


def patterns(value: str | Collection[str] | None, name: str) -> tuple[str, ...] | None:
    """Glob patterns as a tuple (lower-cased: model names compare case-insensitively)."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) and p.strip() for p in items):
        raise ConfigError("expected model names or glob patterns (strings)", field=name)
    return tuple(p.strip().lower() for p in items)


def model_allowed(key: Key, model: str) -> str | None:
    """Why `key` may not serve `model` (its rule in words), or None if it may."""
    lowered = model.lower()
    if key.allow_models is not None and not any(fnmatchcase(lowered, p) for p in key.allow_models):
        return f"allow_models {list(key.allow_models)} excludes {model!r}"
    denied = next((p for p in key.deny_models if fnmatchcase(lowered, p)), None)
    if denied is not None:
        return f"deny_models {denied!r} excludes {model!r}"
    return None
