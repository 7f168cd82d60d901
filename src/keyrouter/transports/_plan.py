"""The attempt loop of one request, without I/O, shared by the sync and async interceptors.

The interceptor asks `next_step()` for what to do (send with a lease, sleep, or stop), does it,
and reports back (`record_response`, `record_error`, `abandon`). Everything about failover,
waiting and the final error lives here once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from keyrouter.core.decision import Decision, Lease
from keyrouter.core.events import Event, Failover, RequestRouted
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.providers._resources import created_resource
from keyrouter.transports.route import Route

__all__ = ["Plan", "Sleep"]

_MAX_ATTEMPTS_CAP = 25
_DEFAULT_MAX_WAIT = 60.0
_WAKE_MARGIN = 0.002
_SHARED_REFUSALS = 4
"""Picks the shared store may refuse in a row before the request waits briefly instead."""
_SHARED_RECHECK = 0.01
_NO_HEADERS: Mapping[str, str] = {}
_EXCLUDE_AFTER = frozenset(
    {
        OutcomeKind.SERVER_ERROR,
        OutcomeKind.INVALID_KEY,
        OutcomeKind.FORBIDDEN,
        OutcomeKind.QUOTA_EXHAUSTED,
    }
)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Park until the pool wakes this request, or `seconds` pass."""

    seconds: float


class Waker(Protocol):
    def arm(self) -> None: ...
    def wake(self) -> None: ...
    def clear(self) -> None: ...


class Plan:
    """One request's attempts: which key next, when to wait, and when to give up."""

    __slots__ = (
        "_excluded",
        "_failed",
        "_ticket",
        "attempts",
        "creates_resource",
        "deadline",
        "demand",
        "forbidden",
        "last_decision",
        "last_kind",
        "max_attempts",
        "pool",
        "route",
        "started",
        "tried",
        "waker",
    )

    def __init__(
        self,
        route: Route,
        pool: KeyPool,
        demand: Demand,
        read_timeout: float | None,
        waker: Waker,
    ) -> None:
        self.route = route
        self.pool = pool
        self.demand = demand
        self.waker = waker
        settings, policy = route.settings, pool.policy
        self.started = route.clock()
        budget = policy.max_wait if policy.max_wait is not None else settings.max_wait
        if budget is None:
            budget = min(read_timeout, _DEFAULT_MAX_WAIT) if read_timeout else _DEFAULT_MAX_WAIT
        self.deadline = self.started + budget
        self.max_attempts = (
            policy.max_attempts
            or settings.max_attempts
            or min(len(pool.keys) + 2, _MAX_ATTEMPTS_CAP)
        )
        self.forbidden = pool.forbids(demand)
        """Why a policy leaves no key for this request: it fails before anything is sent."""
        self.attempts = 0
        self.tried: list[tuple[str, str]] = []
        self.last_decision: Decision | None = None
        self.last_kind: OutcomeKind | None = None
        self.creates_resource = False
        """The answer may describe a new stateful resource (see `learn_resource`)."""
        self._excluded: set[str] = set()
        self._ticket: int | None = None
        self._failed: tuple[str, Outcome] | None = None
        """The last failed attempt's key and outcome, until the next key is granted."""

    def next_step(self) -> Lease | Sleep | None:
        """A lease to send with, a pause before asking again, or None: stop trying."""
        if self.attempts >= self.max_attempts or self.forbidden is not None:
            return None
        if self._ticket is not None:
            self.waker.clear()  # a wake from now on means "look again"
        now = self.route.clock()
        decision = self._select(now)
        self.last_decision = decision
        lease = decision.lease
        if lease is not None:
            if self._ticket is not None:
                self._leave_queue()
            self.attempts += 1
            if self._failed is not None or self.pool.book.listeners.routine():
                self._emit(decision, lease, now)
            return lease
        if decision.queued or decision.waiting_for_probe:
            wake = now + self.route.settings.poll_interval  # a fallback: the pool wakes us
        elif decision.retry_at is not None:
            wake = decision.retry_at + _WAKE_MARGIN
        else:
            return None  # no key will ever serve (all invalid, disabled or tried)
        if wake > self.deadline:
            return None
        if self._ticket is None:
            self.waker.arm()
            self._ticket = self.pool.enqueue(self.waker.wake)
        return Sleep(max(0.0, wake - now))

    def reads_headers(self, lease: Lease, status: int) -> bool:
        """Whether `record_response` needs the answer's headers: errors always, successes
        only when the pool wants their limits (not on most answers of a roomy scope)."""
        return status >= 400 or self.pool.reads_answer(lease, self.route.clock())

    def record_response(
        self, lease: Lease, status: int, headers: Mapping[str, str] | None, body: bytes
    ) -> bool:
        """Learn from a response; True if it goes to the SDK, False to try another key.

        `headers` should be a plain mapping with lowercase names (an HTTP library's header
        object looks names up far more slowly, and the wire reads a dozen of them), or None
        for a success whose headers `reads_headers` said to leave unread.
        """
        now = self.route.clock()
        wire = self.route.wire
        if headers is None:
            outcome = wire.classify(status, _NO_HEADERS, body, now)
            observations = None
        else:
            outcome = wire.classify(status, headers, body, now)
            observations = wire.observations(headers, now)
        pool = self.pool
        pool.settle(lease, outcome, now, observations)
        if pool.book.store is not None:
            self._publish(lease, outcome, observations or (), now)
        if not outcome.kind.fails_over:
            return True
        self._note_failure(lease, outcome)
        return False

    def pin_to_owner(self, resources: list[str]) -> None:
        """A request naming a stateful resource goes only to keys of the scope that owns it."""
        scope = self.pool.book.pinned_scope(resources)
        if scope is None or not any(k.scope_id == scope for k in self.pool.keys):
            return  # not created through keyrouter, or its scope is not in this pool
        self._excluded.update(k.id for k in self.pool.keys if k.scope_id != scope)

    def learn_resource(self, lease: Lease, body: bytes) -> None:
        """The answer created a stateful resource: remember whose it is."""
        resource = created_resource(body)
        if resource is not None:
            self.pool.book.pin(resource, lease.scope_id)

    def record_error(self, lease: Lease, error: BaseException) -> None:
        """A connection error or timeout: the key's circuit breaker counts it."""
        outcome = Outcome(OutcomeKind.SERVER_ERROR, None, type(error).__name__)
        now = self.route.clock()
        self.pool.settle(lease, outcome, now)
        self._publish(lease, outcome, (), now)
        self._note_failure(lease, outcome)

    def abandon(self, lease: Lease) -> None:
        """The attempt ended without an answer (cancelled, interrupted)."""
        now = self.route.clock()
        self.pool.abandon(lease, now)
        self._publish(lease, None, (), now)

    def close(self) -> None:
        """Always called at the end: leave the waiting queue."""
        self._leave_queue()

    # -- the shared store (none by default: then nothing here does any I/O) ---------------

    def _select(self, now: float) -> Decision:
        """The pool's pick, confirmed against the shared store when there is one.

        One round trip: the store debits the shared buckets atomically or refuses, and
        answers with the shared state, which the pool adopts. A refused lease is withdrawn,
        its scope now knows to wait, and the pool picks again.
        """
        pool = self.pool
        store = pool.book.store
        if store is None:
            return pool.select(self.demand, now, exclude=self._excluded, ticket=self._ticket)
        for _ in range(_SHARED_REFUSALS):
            decision = pool.select(self.demand, now, exclude=self._excluded, ticket=self._ticket)
            lease = decision.lease
            if lease is None:
                return decision
            grant = store.reserve(lease, now)
            if grant is None:
                return decision  # the store is out: local state decides
            pool.apply_grant(lease, grant, now)
            if grant.granted:
                return decision
        return Decision(None, pool.objective, decision.refused, now + _SHARED_RECHECK)

    def _publish(
        self,
        lease: Lease,
        outcome: Outcome | None,
        observations: Sequence[LimitObservation],
        now: float,
    ) -> None:
        store = self.pool.book.store
        if store is not None:
            store.settle(lease, outcome, observations, now)

    def _leave_queue(self) -> None:
        if self._ticket is not None:
            self.pool.dequeue(self._ticket)
            self._ticket = None

    def _emit(self, decision: Decision, lease: Lease, now: float) -> None:
        """Tell listeners (and the log) about this grant, and the failover that led to it."""
        listeners = self.pool.book.listeners
        provider, label = self.route.wire.name, lease.key.label
        events: list[Event] = []
        if self._failed is not None:
            failed_key, outcome = self._failed
            self._failed = None
            events.append(
                Failover(
                    provider,
                    failed_key,
                    label,
                    outcome.kind.value,
                    outcome.reason,
                    outcome.status,
                    self.attempts,
                    now,
                )
            )
        if listeners.routine():
            events.append(
                RequestRouted(
                    provider,
                    label,
                    lease.key.scope_label,
                    self.demand.model,
                    self.attempts,
                    decision,
                    now,
                )
            )
        listeners.emit(events)

    def _note_failure(self, lease: Lease, outcome: Outcome) -> None:
        self._failed = (lease.key.label, outcome)
        self.last_kind = outcome.kind
        self.tried.append((lease.key.label, outcome.reason or outcome.kind.value))
        if outcome.kind in _EXCLUDE_AFTER:
            self._excluded.add(lease.key.id)

    # -- the answer when every attempt failed ------------------------------------------------

    def retry_after(self) -> float | None:
        """Seconds until the earliest key may serve again, if any will."""
        if self.forbidden is not None:
            return None
        now = self.route.clock()
        recovery = self.pool.earliest_recovery(self.demand, now)
        return None if recovery is None else max(0.0, recovery - now)

    def explanation(self) -> str:
        """Which keys were tried and when the first recovers, for the SDK's error message."""
        if self.forbidden is not None:
            return self.forbidden
        parts = []
        if self.tried:
            counts = Counter(self.tried)
            parts.append(
                "tried "
                + ", ".join(
                    f"{key} ({why})" + (f" x{n}" if n > 1 else "")
                    for (key, why), n in counts.items()
                )
            )
        else:
            parts.append(f"no key of the {self.route.wire.name} pool could be tried")
            refused = self.last_decision.refused if self.last_decision else ()
            if refused:
                parts.append(", ".join(f"{r.key} ({r.reason})" for r in refused[:8]))
        wait = self.retry_after()
        parts.append(
            f"first key recovers in {wait:.1f}s"
            if wait is not None and math.isfinite(wait)
            else "no key is expected to recover"
        )
        return "keyrouter: " + "; ".join(parts)

    def single_transient_failure(self) -> bool:
        """One attempt, failed with a 5xx: the SDK's own retries are the right answer."""
        return self.attempts == 1 and self.last_kind is OutcomeKind.SERVER_ERROR

    def no_key_kind(self) -> OutcomeKind:
        """Why no key could serve; a request a policy forbids is the request's own error."""
        if self.forbidden is not None:
            return OutcomeKind.REQUEST_ERROR
        return self.pool.unavailable_kind(self.route.clock())
