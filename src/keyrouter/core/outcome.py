"""What an attempt's response means for the key that sent it.

Provider modules read status codes, headers and error bodies and reduce them to an `Outcome`;
the core only ever sees outcomes, never HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Outcome", "OutcomeKind"]


class OutcomeKind(Enum):
    """The classes of response that change what the router does next."""

    SUCCESS = "success"
    """The provider served the request (2xx/3xx)."""
    RATE_LIMITED = "rate_limited"
    """Retry later: the key's quota scope is over its rate limit until `retry_at`."""
    QUOTA_EXHAUSTED = "quota_exhausted"
    """Stop using the scope until `retry_at` (or until reset): spend or credit is gone."""
    INVALID_KEY = "invalid_key"
    """The key is not accepted (401): never use it again in this process."""
    FORBIDDEN = "forbidden"
    """The key is not allowed (403): disabled."""
    SERVER_ERROR = "server_error"
    """5xx, a connection error or a timeout: counts toward the key's circuit breaker."""
    OVERLOADED = "overloaded"
    """Capacity shared by every customer is short: another key does not help; back off."""
    REQUEST_ERROR = "request_error"
    """The request itself is wrong (400, 404, 422...): not the key's fault; no failover."""

    @property
    def fails_over(self) -> bool:
        """Whether another key may succeed where this one failed."""
        return self in _FAILOVER_KINDS


_FAILOVER_KINDS = frozenset(
    {
        OutcomeKind.RATE_LIMITED,
        OutcomeKind.QUOTA_EXHAUSTED,
        OutcomeKind.INVALID_KEY,
        OutcomeKind.FORBIDDEN,
        OutcomeKind.SERVER_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result as the core understands it.

    `retry_at` is an absolute time (seconds, same clock as the core's `now`) when the provider
    said the key may be used again, if it said so. `reason` is a short machine word taken from
    the provider (`rate_limit_exceeded`, `insufficient_quota`, `http_503`, `connect_error`).
    """

    kind: OutcomeKind
    status: int | None = None
    reason: str = ""
    retry_at: float | None = None

    @property
    def consumed_nothing(self) -> bool:
        """The provider counted nothing against the key's limits: a rate limit refused the
        request, or it never got an answer (a connection error). Its reservation is refunded,
        here and in a shared store alike."""
        return self.kind is OutcomeKind.RATE_LIMITED or (
            self.kind is OutcomeKind.SERVER_ERROR and self.status is None
        )

    @classmethod
    def success(cls, status: int = 200) -> Outcome:
        return cls(OutcomeKind.SUCCESS, status=status)
