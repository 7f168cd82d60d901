"""The seam between the transports and a provider's wire format."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Protocol

from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation

__all__ = ["Headers", "MutableHeaders", "Wire", "success"]

Headers = Mapping[str, str]
MutableHeaders = MutableMapping[str, str]


class Wire(Protocol):
    """What a transport needs to know about one provider's HTTP API.

    Every method is pure and never raises on bad input from the network: nonsense yields
    "unknown" (None, an empty tuple, a conservative `Outcome`).
    """

    name: str
    default_hosts: frozenset[str]

    def credential(self, headers: Headers) -> str | None:
        """The key the request currently carries, if any."""
        ...

    def write_credential(self, headers: MutableHeaders, secret: str) -> None:
        """Put `secret` into the request the way the provider expects it."""
        ...

    def estimate_demand(self, method: str, path: str, body: bytes) -> Demand:
        """What the request will draw from each rate-limit dimension."""
        ...

    def demand_bound(self, method: str, path: str, body: bytes) -> Demand | None:
        """At least `estimate_demand`'s answer, worked out more cheaply (without parsing the
        body), or None when only the estimate will do. A pool whose next key has room to
        spare reserves the bound: a little more than the estimate, never less."""
        ...

    def observations(self, headers: Headers, now: float) -> tuple[LimitObservation, ...]:
        """Rate-limit state the response reports (empty when it reports none)."""
        ...

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        """What the response means for the key that sent it."""
        ...

    def no_key_error(self, kind: OutcomeKind, message: str) -> tuple[int, bytes]:
        """Status and body of the error to hand the SDK when no key could even be tried.

        `kind` says why (every key invalid, spent, or cooling; `REQUEST_ERROR`: a policy
        forbids the request) so the SDK raises the exception class that fits
        (`AuthenticationError`, `RateLimitError`, `PermissionDeniedError`).
        """
        ...

    def annotate_error(self, body: bytes, note: str) -> bytes | None:
        """The error body with `note` appended to its message (None if it has no message)."""
        ...


def success(status: int) -> Outcome:
    """The outcome of a response with a status below 400: one shared value per status (the
    outcome is immutable, and a success is what nearly every response is)."""
    outcome = _SUCCESSES.get(status)
    if outcome is None:
        outcome = Outcome(OutcomeKind.SUCCESS, status)
        if 100 <= status < 400:
            _SUCCESSES[status] = outcome
    return outcome


_SUCCESSES: dict[int, Outcome] = {}
