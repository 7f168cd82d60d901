"""Tolerant parsers for the values providers put in headers.

Each returns None for anything it cannot read; none of them raises. The pure ones are cached:
the same header values come back on every response. Values that parse but are
absurd (negative, NaN, beyond a day for a cooldown) are refused too, so one bad header cannot
park a key for a year. `observed_limits` and `spent_reset` read a whole family of
`{limit, remaining, reset}` rate-limit headers; each provider names its headers and says how
to read a reset.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from keyrouter.core.quota import LimitObservation

__all__ = [
    "MAX_COOLDOWN_SECONDS",
    "MAX_WAIT_SECONDS",
    "HeaderFamily",
    "HeaderName",
    "ResetAt",
    "header_families",
    "observed_limits",
    "parse_count",
    "parse_go_duration",
    "parse_retry_after",
    "parse_rfc3339",
    "spent_reset",
]

HeaderName = Callable[[str, str], str]
"""The header for a dimension's field (`"limit"`, `"remaining"` or `"reset"`)."""
ResetAt = Callable[[str | None], float | None]
"""A reset header's value as the local time the dimension refills."""
HeaderFamily = tuple[str, str, str, str]
"""A dimension and the names of its limit, remaining and reset headers."""

_log = logging.getLogger("keyrouter")

MAX_WAIT_SECONDS = 86_400.0 * 31
"""Longest reset we believe (a monthly spend limit); anything beyond is treated as nonsense."""
MAX_COOLDOWN_SECONDS = 86_400.0
"""Longest `retry-after` believed for a rate limit: a server that says to come back in more
than a day is not describing a rate limit (a spent quota says so by its error code)."""

_MAX_TEXT = 64
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _ignored(kind: str, value: object) -> None:
    _log.debug("ignoring unreadable %s header value %.40r", kind, value)


def _bounded(kind: str, value: str | None) -> str | None:
    """The stripped value, or None if absent, blank or too long to be a real header value."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_TEXT:
        _ignored(kind, value)
        return None
    return text


@functools.lru_cache(maxsize=4096)
def parse_count(value: str | None) -> float | None:
    """A non-negative count (`"39923"`, `"1.5e4"`); None for anything else."""
    text = _bounded("count", value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        _ignored("count", value)
        return None
    if not math.isfinite(number) or number < 0:
        _ignored("count", value)
        return None
    return number


@functools.lru_cache(maxsize=4096)
def parse_go_duration(value: str | None) -> float | None:
    """A Go-style duration as OpenAI sends resets (`1s`, `6m0s`, `12ms`, `1h2m3.5s`) in seconds."""
    text = _bounded("duration", value)
    if text is None:
        return None
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != position:
            _ignored("duration", value)
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not math.isfinite(total) or total > MAX_WAIT_SECONDS:
        _ignored("duration", value)
        return None
    return total


def parse_rfc3339(value: str | None) -> float | None:
    """An RFC 3339 timestamp (`2025-08-21T12:40:59Z`) as epoch seconds."""
    text = _bounded("timestamp", value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        _ignored("timestamp", value)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_retry_after(
    retry_after: str | None,
    retry_after_ms: str | None,
    now_epoch: float,
    longest: float = MAX_COOLDOWN_SECONDS,
) -> float | None:
    """Seconds to wait, from `retry-after-ms`, else `retry-after` (seconds or an HTTP date).

    A wait beyond `longest` (a day, for a rate limit's cooldown) is refused as nonsense: one
    bad header must not park a key for weeks."""
    millis = parse_count(retry_after_ms)
    if millis is not None and millis / 1000 <= longest:
        return millis / 1000
    seconds = parse_count(retry_after)
    if seconds is not None:
        if seconds > longest:
            _ignored("retry-after", retry_after)
            return None
        return seconds
    if retry_after is None or len(retry_after) > _MAX_TEXT:
        return None
    try:
        moment = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError, IndexError):
        _ignored("retry-after", retry_after)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    wait = moment.timestamp() - now_epoch
    if wait > longest:
        _ignored("retry-after", retry_after)  # like a number of seconds that large: nonsense
        return None
    return max(0.0, wait)


def header_families(
    dimensions: Iterable[tuple[str, str]], name: HeaderName
) -> tuple[HeaderFamily, ...]:
    """The `(dimension, limit, remaining, reset)` header names of each `(header, dimension)`
    pair: worked out once per provider, not on every response."""
    return tuple(
        (dimension, name(header, "limit"), name(header, "remaining"), name(header, "reset"))
        for header, dimension in dimensions
    )


def observed_limits(
    headers: Mapping[str, str],
    now: float,
    families: Iterable[HeaderFamily],
    reset_at: ResetAt,
) -> tuple[LimitObservation, ...]:
    """One observation per header family whose limit or remaining is reported."""
    found: list[LimitObservation] = []
    get = headers.get
    for dimension, limit_header, remaining_header, reset_header in families:
        limit = parse_count(get(limit_header))
        remaining = parse_count(get(remaining_header))
        if limit is None and remaining is None:
            continue
        reset = reset_at(get(reset_header))
        found.append(LimitObservation(dimension, limit, remaining, reset, now))
    return tuple(found)


def spent_reset(
    headers: Mapping[str, str],
    families: Iterable[HeaderFamily],
    reset_at: ResetAt,
) -> float | None:
    """When every spent dimension (nothing remaining) has refilled: the latest of their resets.

    A 429 without `retry-after` still says when to come back through these headers.
    """
    resets = [
        reset_at(headers.get(reset_header))
        for _, _, remaining_header, reset_header in families
        if parse_count(headers.get(remaining_header)) == 0
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None
