"""Any keyed HTTP API: the credential goes where the user says, status codes mean what they say.

Built by `keyrouter.route(client, header=... | query=... | writer=...)`. The key is written
into a header (with an optional prefix such as `Bearer `); a query parameter or a user's
callable are written by the route's `writer` (they need the whole request, not only its
headers). Each status code maps to an `OutcomeKind` (defaults: 401 invalid key, 403
forbidden, 429 rate limited, 402 spent, 408 and 5xx server errors, everything else the
request's own answer), and a user may remap any code. Limits are read from the headers APIs
commonly send: `retry-after` (seconds or an HTTP date), the IETF `RateLimit-Limit /
-Remaining / -Reset` fields or their structured form (`RateLimit: "default";r=5;t=30`), and
`X-RateLimit-*` (a reset in seconds from now, or an epoch timestamp as GitHub sends).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.errors import ConfigError
from keyrouter.providers._errors import annotated
from keyrouter.providers._parse import (
    MAX_COOLDOWN_SECONDS,
    MAX_WAIT_SECONDS,
    parse_count,
    parse_retry_after,
)
from keyrouter.providers.base import Headers, MutableHeaders, success

__all__ = ["DEFAULT_STATUSES", "GenericWire", "statuses_from"]

DIMENSION: Final = "requests"
_EPOCH_SECONDS: Final = 1_000_000_000.0
"""A reset bigger than this is a Unix timestamp, not a number of seconds to wait."""
_EPOCH_MILLIS: Final = 1_000_000_000_000.0
_ITEM: Final = re.compile(r"([a-z]+)=([0-9.]+)")
_REQUEST: Final = Demand({DIMENSION: 1.0})

DEFAULT_STATUSES: Final[Mapping[int, OutcomeKind]] = {
    401: OutcomeKind.INVALID_KEY,
    402: OutcomeKind.QUOTA_EXHAUSTED,
    403: OutcomeKind.FORBIDDEN,
    408: OutcomeKind.SERVER_ERROR,
    429: OutcomeKind.RATE_LIMITED,
    **{code: OutcomeKind.SERVER_ERROR for code in range(500, 600)},
}
"""Status codes that fail over to another key; any other code goes back to the caller."""

_KINDS: Final = {
    kind.value: kind for kind in OutcomeKind if kind.fails_over or kind is OutcomeKind.REQUEST_ERROR
}


def statuses_from(overrides: Mapping[int, str | None] | None) -> Mapping[int, OutcomeKind]:
    """The defaults with a user's overrides: `{403: "rate_limited", 503: None}`.

    A value is one of `rate_limited`, `quota_exhausted`, `invalid_key`, `forbidden`,
    `server_error`; None hands that status to the caller untouched (no failover).
    """
    result = dict(DEFAULT_STATUSES)
    for status, kind in (overrides or {}).items():
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ConfigError(f"{status!r} is not an HTTP error status (400-599)", field="statuses")
        if kind is None:
            result[status] = OutcomeKind.REQUEST_ERROR
        elif kind in _KINDS:
            result[status] = _KINDS[kind]
        else:
            raise ConfigError(
                f"{status}: {kind!r} is not one of {sorted(_KINDS)} or None", field="statuses"
            )
    return result


@dataclass(slots=True)
class GenericWire:
    """A wire for one user API (see the module docstring).

    `header` None means the credential is not a header (a query parameter, a callable): the
    route's writer puts it in, and every request to the route's hosts is routed.
    """

    name: str
    header: str | None = None
    prefix: str = ""
    statuses: Mapping[int, OutcomeKind] = field(default_factory=lambda: DEFAULT_STATUSES)
    default_hosts: frozenset[str] = frozenset()

    def credential(self, headers: Headers) -> str | None:
        if self.header is None:
            return None
        value = headers.get(self.header)
        if value is None:
            return None
        if self.prefix and value[: len(self.prefix)].lower() == self.prefix.lower():
            return value[len(self.prefix) :].strip()
        return value.strip()

    def write_credential(self, headers: MutableHeaders, secret: str) -> None:
        if self.header is not None:
            headers[self.header] = f"{self.prefix}{secret}"

    def estimate_demand(self, method: str, path: str, body: bytes) -> Demand:
        return _REQUEST

    def demand_bound(self, method: str, path: str, body: bytes) -> Demand | None:
        return None  # no cheaper reading of this API's bodies: the estimate serves

    def observations(self, headers: Headers, now: float) -> tuple[LimitObservation, ...]:
        found = _rate_limit(headers, now)
        return (found,) if found is not None else ()

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        if status < 400:
            return success(status)
        kind = self.statuses.get(status, OutcomeKind.REQUEST_ERROR)
        retry_at = None
        if kind in (OutcomeKind.RATE_LIMITED, OutcomeKind.QUOTA_EXHAUSTED):
            retry_at = _retry_at(headers, now, spent=kind is OutcomeKind.QUOTA_EXHAUSTED)
        return Outcome(kind, status, f"http_{status}", retry_at)

    def no_key_error(self, kind: OutcomeKind, message: str) -> tuple[int, bytes]:
        status = 401 if kind in (OutcomeKind.INVALID_KEY, OutcomeKind.FORBIDDEN) else 429
        body = {"error": {"message": message, "type": kind.value, "code": f"keyrouter_{status}"}}
        return status, json.dumps(body).encode()

    def annotate_error(self, body: bytes, note: str) -> bytes | None:
        return annotated(body, note)


def _retry_at(headers: Headers, now: float, *, spent: bool) -> float | None:
    """`retry-after`, else the reset of a spent rate-limit window. A `spent` quota may say to
    come back in weeks; a rate limit's cooldown is believed up to a day."""
    longest = MAX_WAIT_SECONDS if spent else MAX_COOLDOWN_SECONDS
    wait = parse_retry_after(
        headers.get("retry-after"), headers.get("retry-after-ms"), now, longest
    )
    if wait is not None:
        return now + wait
    found = _rate_limit(headers, now)
    if found is not None and found.remaining == 0:
        return found.reset_at
    return None


def _rate_limit(headers: Headers, now: float) -> LimitObservation | None:
    """One observation from whichever rate-limit header family the response carries."""
    for prefix in ("ratelimit-", "x-ratelimit-"):
        limit = _first_number(headers.get(f"{prefix}limit"))
        remaining = _first_number(headers.get(f"{prefix}remaining"))
        if limit is not None or remaining is not None:
            reset = _reset_at(_first_number(headers.get(f"{prefix}reset")), now)
            return LimitObservation(DIMENSION, limit, remaining, reset, now)
    structured = headers.get("ratelimit")  # `"default";r=50;t=30` (draft 08 and later)
    if structured is None:
        return None
    fields = dict(_ITEM.findall(structured.split(",", 1)[0][:200]))
    remaining = parse_count(fields.get("r"))
    if remaining is None:
        return None
    policy = dict(_ITEM.findall((headers.get("ratelimit-policy") or "").split(",", 1)[0][:200]))
    reset = _reset_at(parse_count(fields.get("t")), now)
    return LimitObservation(DIMENSION, parse_count(policy.get("q")), remaining, reset, now)


def _first_number(value: str | None) -> float | None:
    """`"100"`, or the first item of a list form such as `"100, 100;w=60"`."""
    if value is None:
        return None
    return parse_count(value.split(",", 1)[0].split(";", 1)[0])


def _reset_at(value: float | None, now: float) -> float | None:
    """A reset as an absolute time: seconds from now, or an epoch timestamp (s or ms)."""
    if value is None:
        return None
    if value >= _EPOCH_MILLIS:
        value = value / 1000.0 - now
    elif value >= _EPOCH_SECONDS:
        value -= now
    if value > MAX_WAIT_SECONDS:
        return None
    return now + max(0.0, value)
