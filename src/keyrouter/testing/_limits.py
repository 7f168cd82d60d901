"""Per-scope token buckets and the ledger of fake keys that share them.

Provider rate limits are token buckets in disguise: a "60 requests per minute"
limit lets a burst of 60 through, then refills continuously at one request per
second.  Keys that belong to the same organization or project (the same
*scope*) drain the same buckets, which is why rotating between them does not
help.  This module models exactly that, independent of any wire format, so
every provider emulation (OpenAI today, Anthropic and Gemini later) reports
the same numbers in its own header dialect.

Everything here is thread-safe: the fake server mutates the ledger from its
event-loop thread while tests read statistics from their own threads.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

__all__ = [
    "Admission",
    "Clock",
    "DimensionState",
    "FakeKey",
    "KeyStats",
    "KeyStatus",
    "Ledger",
    "LimitState",
    "RequestRecord",
    "TokenBucket",
]

Clock = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic`` unless a test injects one)."""

KeyStatus = Literal["ok", "invalid", "insufficient_quota", "forbidden"]
_STATUSES: frozenset[str] = frozenset({"ok", "invalid", "insufficient_quota", "forbidden"})

Dimension = Literal["requests", "tokens"]

_SECONDS_PER_LIMIT_WINDOW = 60.0  # every limit here is "per minute"


class TokenBucket:
    """A bucket of ``capacity`` units that refills continuously at ``rate`` units per second.

    Continuous refill (rather than a fixed window that resets on the minute) is how
    the providers behave: a client that drained the bucket can send again a
    fraction of a second later, one unit at a time.
    """

    __slots__ = ("_level", "_now", "_stamp", "capacity", "rate")

    def __init__(self, capacity: int, rate: float, now: Clock) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.capacity = capacity
        self.rate = rate
        self._now = now
        self._level = float(capacity)
        self._stamp = now()

    def level(self) -> float:
        """Units available right now (refills first)."""
        stamp = self._now()
        elapsed = stamp - self._stamp
        if elapsed > 0:
            self._level = min(float(self.capacity), self._level + elapsed * self.rate)
        self._stamp = stamp
        return self._level

    def fits(self, amount: int) -> bool:
        """Whether ``amount`` units could be taken now."""
        return self.level() >= amount

    def take(self, amount: int) -> None:
        """Remove ``amount`` units; callers check :meth:`fits` first."""
        self._level = self.level() - amount

    def seconds_until(self, amount: int) -> float:
        """Seconds until ``amount`` units are available; ``inf`` if it exceeds the capacity."""
        if amount > self.capacity:
            return math.inf
        missing = amount - self.level()
        return max(0.0, missing / self.rate)

    def seconds_until_full(self) -> float:
        """Seconds until the bucket is full again (what ``x-ratelimit-reset-*`` reports)."""
        return max(0.0, (self.capacity - self.level()) / self.rate)

    def fill(self) -> None:
        """Refill to capacity at once."""
        self.level()
        self._level = float(self.capacity)


@dataclass(frozen=True, slots=True)
class DimensionState:
    """One limit as a provider reports it in headers: limit, remaining, time to full."""

    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class LimitState:
    """Both per-minute dimensions of a scope; ``None`` where that dimension is unlimited."""

    requests: DimensionState | None
    tokens: DimensionState | None


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of asking a scope's buckets to admit one request.

    When refused, ``dimension`` names the bucket that said no, ``used`` and
    ``limit`` describe it the way provider error messages do, and
    ``retry_after`` is how long (real seconds) until the request would fit,
    or ``None`` when it can never fit because it exceeds the capacity.
    """

    admitted: bool
    state: LimitState
    dimension: Dimension | None = None
    limit: int = 0
    used: int = 0
    requested: int = 0
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class FakeKey:
    """An API key the fake provider knows.

    ``rpm``/``tpm`` are per-minute limits (``None`` means unlimited).  Keys with
    the same ``scope`` share one set of buckets, the way OpenAI applies limits
    per organization or project; a key without a scope has buckets of its own.
    ``status`` decides how the provider treats the key: ``"ok"``, ``"invalid"``
    (401), ``"insufficient_quota"`` (429 that never clears) or ``"forbidden"`` (403).
    """

    secret: str
    rpm: int | None = None
    tpm: int | None = None
    scope: str | None = None
    status: KeyStatus = "ok"

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("a key needs a non-empty secret")
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer or None, got {value}")
        if self.status not in _STATUSES:
            raise ValueError(
                f"unknown key status {self.status!r}; expected one of {sorted(_STATUSES)}"
            )


@dataclass(frozen=True, slots=True)
class KeyStats:
    """What the fake saw for one key (or one scope): an exact count for test assertions.

    ``statuses`` maps HTTP status to count; status ``0`` counts requests whose
    connection was dropped without any response (``Fault.reset()``).
    ``tokens`` is the number of tokens charged against the rate limit on admission.
    """

    requests: int = 0
    statuses: Mapping[int, int] = field(default_factory=dict)
    tokens: int = 0

    def count(self, status: int) -> int:
        """How many responses had this HTTP status."""
        return self.statuses.get(status, 0)


class RequestRecord(NamedTuple):
    """One line of the request log (``FakeProvider.requests``)."""

    method: str
    path: str
    key: str | None
    status: int
    host: str | None


class _ScopeBuckets:
    """The request and token buckets of one scope (either may be absent = unlimited)."""

    __slots__ = ("requests", "rpm", "tokens", "tpm")

    def __init__(self, rpm: int | None, tpm: int | None, scale: float, now: Clock) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.requests = _bucket(rpm, scale, now)
        self.tokens = _bucket(tpm, scale, now)

    def state(self) -> LimitState:
        return LimitState(_dimension(self.requests), _dimension(self.tokens))

    def admit(self, tokens: int) -> Admission:
        """Charge one request and ``tokens`` tokens if both fit, else explain why not."""
        checks: tuple[tuple[Dimension, TokenBucket | None, int], ...] = (
            ("requests", self.requests, 1),
            ("tokens", self.tokens, tokens),
        )
        for dimension, bucket, amount in checks:
            if bucket is not None and not bucket.fits(amount):
                return self._refusal(dimension, bucket, amount)
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)
        return Admission(admitted=True, state=self.state())

    def _refusal(self, dimension: Dimension, bucket: TokenBucket, amount: int) -> Admission:
        wait = bucket.seconds_until(amount)
        return Admission(
            admitted=False,
            state=self.state(),
            dimension=dimension,
            limit=bucket.capacity,
            used=bucket.capacity - int(bucket.level()),
            requested=amount,
            retry_after=None if math.isinf(wait) else wait,
        )

    def fill(self) -> None:
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.fill()


def _bucket(limit: int | None, scale: float, now: Clock) -> TokenBucket | None:
    if limit is None:
        return None
    return TokenBucket(limit, limit / _SECONDS_PER_LIMIT_WINDOW * scale, now)


def _dimension(bucket: TokenBucket | None) -> DimensionState | None:
    if bucket is None:
        return None
    return DimensionState(bucket.capacity, max(0, int(bucket.level())), bucket.seconds_until_full())


class _Tally:
    """Mutable per-key counters behind :class:`KeyStats`."""

    __slots__ = ("requests", "statuses", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.tokens = 0

    def freeze(self) -> KeyStats:
        return KeyStats(self.requests, dict(self.statuses), self.tokens)


class Ledger:
    """Keys, their scopes' buckets, and exact per-key statistics, behind one lock.

    ``time_scale`` compresses time: with ``time_scale=10`` a "minute" of refill
    takes six real seconds, and every duration reported (reset, retry-after) is
    in those real seconds.
    """

    def __init__(
        self,
        keys: Iterable[FakeKey] = (),
        *,
        time_scale: float = 1.0,
        now: Clock,
        log_size: int = 1000,
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self._lock = threading.Lock()
        self._scale = time_scale
        self._now = now
        self._keys: dict[str, FakeKey] = {}
        self._scopes: dict[tuple[str, str], _ScopeBuckets] = {}
        self._tallies: dict[str, _Tally] = {}
        self._log: deque[RequestRecord] = deque(maxlen=log_size)
        for key in keys:
            self.add_key(key)

    # -- keys ---------------------------------------------------------------

    def add_key(self, key: FakeKey) -> None:
        """Register a key; a key sharing a scope must declare the scope's limits."""
        with self._lock:
            if key.secret in self._keys:
                raise ValueError(f"key {key.secret!r} is already registered")
            scope_id = _scope_id(key)
            buckets = self._scopes.get(scope_id)
            if buckets is None:
                self._scopes[scope_id] = _ScopeBuckets(key.rpm, key.tpm, self._scale, self._now)
            elif (buckets.rpm, buckets.tpm) != (key.rpm, key.tpm):
                raise ValueError(
                    f"scope {key.scope!r} already has rpm={buckets.rpm}, tpm={buckets.tpm}; "
                    f"key {key.secret!r} declares rpm={key.rpm}, tpm={key.tpm}"
                )
            self._keys[key.secret] = key

    def lookup(self, secret: str) -> FakeKey | None:
        """The key as currently configured (status included), or ``None`` if unknown."""
        with self._lock:
            return self._keys.get(secret)

    def set_status(self, secret: str, status: KeyStatus) -> None:
        """Change a key's status at run time (a key revoked mid-run, quota running out)."""
        with self._lock:
            key = self._keys.get(secret)
            if key is None:
                raise KeyError(secret)
            self._keys[secret] = replace(key, status=status)

    def keys(self) -> list[FakeKey]:
        """Every registered key."""
        with self._lock:
            return list(self._keys.values())

    # -- limits -------------------------------------------------------------

    def admit(self, secret: str, tokens: int) -> Admission:
        """Charge one request and ``tokens`` tokens to the key's scope, if they fit."""
        with self._lock:
            buckets = self._scopes[_scope_id(self._keys[secret])]
            admission = buckets.admit(tokens)
            if admission.admitted:
                self._tally(secret).tokens += tokens
            return admission

    def limits(self, secret: str) -> LimitState:
        """The key's scope state without charging anything."""
        with self._lock:
            return self._scopes[_scope_id(self._keys[secret])].state()

    def fill(self) -> None:
        """Refill every bucket (tests moving on to a new phase)."""
        with self._lock:
            for buckets in self._scopes.values():
                buckets.fill()

    # -- statistics ---------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        """Count a finished request (call once per request, with its final status)."""
        with self._lock:
            if record.key is not None:
                tally = self._tally(record.key)
                tally.requests += 1
                tally.statuses[record.status] += 1
            self._log.append(record)

    def stats(self, secret: str) -> KeyStats:
        """Exact counters for one key secret (known or not); zeros if never seen."""
        with self._lock:
            tally = self._tallies.get(secret)
            return tally.freeze() if tally is not None else KeyStats()

    def scope_stats(self, scope: str) -> KeyStats:
        """Counters summed over every registered key in ``scope``."""
        with self._lock:
            members = [s for s, key in self._keys.items() if key.scope == scope]
            total = _Tally()
            for secret in members:
                tally = self._tallies.get(secret)
                if tally is not None:
                    total.requests += tally.requests
                    total.statuses.update(tally.statuses)
                    total.tokens += tally.tokens
            return total.freeze()

    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first."""
        with self._lock:
            return list(self._log)

    def reset_stats(self) -> None:
        """Forget counters and the request log (limits are left as they are)."""
        with self._lock:
            self._tallies.clear()
            self._log.clear()

    def _tally(self, secret: str) -> _Tally:
        tally = self._tallies.get(secret)
        if tally is None:
            tally = self._tallies[secret] = _Tally()
        return tally


def _scope_id(key: FakeKey) -> tuple[str, str]:
    """Scopes and scope-less keys live in separate namespaces so names never collide."""
    return ("scope", key.scope) if key.scope is not None else ("key", key.secret)
