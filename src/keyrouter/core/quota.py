"""Quota prediction: what each quota scope can take now, learned from the wire.

A provider module turns response headers into `LimitObservation`s (limit, remaining, reset per
dimension). A `ScopeQuota` keeps, per dimension, a refilling bucket estimate: the level it last
saw, the refill rate implied by `(limit - remaining) / (reset - now)`, and the in-flight
reservations sent since. From that it answers "can this request go now, and if not, when?"
without ever asking the provider.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

__all__ = [
    "Capacity",
    "Demand",
    "Dimension",
    "LimitObservation",
    "ScopeQuota",
]

DEFAULT_WINDOW_SECONDS = 60.0
"""OpenAI and Anthropic state limits per minute; used until a reset reveals the real rate."""

READ_INTERVAL = 0.05
"""Seconds a roomy scope's answers may go unread (see `ScopeQuota.reads_answer`)."""
ROOMY_SHARE = 0.5
"""Above this share left in every dimension, a scope is roomy."""
_EWMA_HALF_LIFE = 10.0
_EWMA_GAIN = math.log(2) / _EWMA_HALF_LIFE
_AIMD_DECREASE = 0.5
_AIMD_FIRST_CUT = 0.9
_AIMD_MIN_RATE = 1.0 / 60.0
_AIMD_BURST_SECONDS = 5.0
_AIMD_MIN_EVIDENCE = 5


class Capacity(Enum):
    """How close a scope (or a pool) is to running out, coarsest first."""

    ABUNDANT = "abundant"
    CONSTRAINED = "constrained"
    CRITICAL = "critical"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class Demand:
    """What one request is expected to consume, per dimension (`requests`, `tokens`, ...).

    `model` is the model the request names (None when it names none): policies and prices
    depend on it, quotas do not.
    """

    units: Mapping[str, float] = field(default_factory=lambda: {"requests": 1.0})
    model: str | None = None

    def get(self, dimension: str) -> float:
        """Units of `dimension`; a dimension the request does not name costs nothing."""
        return self.units.get(dimension, 0.0)


class LimitObservation(NamedTuple):
    """One dimension's state as a provider reported it at time `observed_at`.

    `reset_at` is the absolute time at which the bucket is full again (or the window resets).
    Any field may be None when the provider did not send it or sent nonsense. (A tuple: a
    few are read off every response.)
    """

    dimension: str
    limit: float | None
    remaining: float | None
    reset_at: float | None
    observed_at: float


@dataclass(slots=True)
class Dimension:
    """A refilling bucket estimate for one dimension of one scope."""

    limit: float | None = None
    level: float = 0.0
    as_of: float = 0.0
    rate: float | None = None
    known: bool = False
    limit_announced: bool = False
    consumed_rate: float = 0.0
    _consumed_as_of: float = 0.0

    def available(self, now: float) -> float:
        """Predicted units available at `now` (infinite when nothing is known yet)."""
        if not self.known:
            return math.inf
        level = self.level
        if self.rate and now > self.as_of:
            level += self.rate * (now - self.as_of)
        limit = self.limit
        return limit if limit is not None and level > limit else level

    def seconds_until(self, units: float, now: float) -> float:
        """How long until `units` are available (0 if now, inf if they never will be)."""
        if units <= 0:
            return 0.0
        shortfall = units - self.available(now)
        if shortfall <= 0:
            return 0.0
        if self.limit is not None and units > self.limit:
            return math.inf
        if not self.rate:
            return math.inf
        return shortfall / self.rate + 1e-6  # at the returned time the units are there

    def debit(self, units: float, now: float) -> None:
        if units == 0:
            return
        if self.known:
            # `available`, inlined (as in `ScopeQuota.admits` and `headroom`): a grant debits
            # every dimension of its scope.
            level, rate, limit = self.level, self.rate, self.limit
            if rate and now > self.as_of:
                level += rate * (now - self.as_of)
            if limit is not None and level > limit:
                level = limit
            self.level = level - units
            self.as_of = now
        # The consumption rate, exponentially weighted (units per second).
        elapsed = now - self._consumed_as_of
        if elapsed > 0:
            self.consumed_rate *= 0.5 ** (elapsed / _EWMA_HALF_LIFE)
            self._consumed_as_of = now
        self.consumed_rate += units * _EWMA_GAIN

    def credit(self, units: float, now: float) -> None:
        if self.known and units:
            self.level = self.available(now) + units
            self.as_of = now

    def observe(
        self, obs: LimitObservation, unsettled: float, now: float, *, stale: bool = False
    ) -> None:
        """Adopt the provider's numbers, minus what we sent after the observed request.

        A `stale` answer (older than the last one adopted) is adopted only if it lowers the
        estimate.
        """
        limit = obs.limit
        if limit is not None and limit > 0:
            self.limit = limit
            self.limit_announced = True
        remaining = obs.remaining
        if remaining is None:
            return
        remaining = remaining if remaining > 0.0 else 0.0  # max(0.0, remaining), NaN to 0
        if not self.limit_announced and remaining > (self.limit or 0.0):
            # Some servers (Azure) send only `remaining`: the most ever seen bounds the limit
            # from below, so the estimate refills (at that per minute) instead of stalling.
            self.limit = remaining
        limit = self.limit
        if limit is not None and limit < remaining:
            remaining = limit
        if stale and self.known and remaining - unsettled >= self.available(now):
            return
        if limit is not None:
            # Learn the refill rate (inline: every dimension of every answer comes here).
            deficit = limit - remaining
            reset_at = obs.reset_at
            if reset_at is not None and deficit >= 1.0 and reset_at > now:
                # The bucket is full again at `reset_at`. `remaining` is floored, so the true
                # level is a little higher and the true slope a little lower than this line's,
                # but the line stays below the truth until both reach the limit at the reset:
                # anchored at each answer, the prediction errs towards waiting.
                observed = deficit / (reset_at - now)
                # Small deficits say little (rounding dominates): weigh each by its size.
                weight = min(1.0, deficit / max(1.0, 0.25 * limit))
                rate = self.rate
                self.rate = observed if rate is None else (rate + weight * (observed - rate))
            elif self.rate is None:
                self.rate = limit / DEFAULT_WINDOW_SECONDS
        self.level = remaining - unsettled
        self.as_of = now
        self.known = True

    def seconds_to_exhaustion(self, now: float) -> float:
        """At the recent consumption rate, how long until this dimension runs dry."""
        available = self.available(now)
        if not math.isfinite(available):
            return math.inf
        drain = self.consumed_rate - (self.rate or 0.0)
        if available <= 0:
            return 0.0
        return available / drain if drain > 0 else math.inf

    def headroom(self, now: float) -> float:
        """Available over limit, 0..1 (1.0 when unknown)."""
        if not self.known or not self.limit:
            return 1.0
        share = self.available(now) / self.limit
        return 0.0 if share < 0.0 else share


@dataclass(slots=True)
class ScopeQuota:
    """Everything predicted about one quota scope: its dimensions and in-flight reservations.

    Until the first response reveals the scope's limits, at most `probe_limit` requests are in
    flight on it, so a burst cannot overrun a scope whose limits are still unknown. A scope whose
    responses carry no rate-limit headers at all is marked `headerless` and left ungated.
    """

    dimensions: dict[str, Dimension] = field(default_factory=dict)
    in_flight: dict[int, Demand] = field(default_factory=dict)
    """The demand of each request granted and not settled yet, by its sequence number."""
    learned: bool = False
    headerless: bool = False
    throttled: bool = False
    """A headerless scope whose pace was learned from 429s (see `note_headerless_rate_limit`)."""
    probe_limit: int = 1
    observed_seq: int = 0
    """The latest-granted request whose answer the estimate adopted (see `settle`)."""
    _successes: deque[float] | None = None
    """Recent success times of a headerless scope (made on first use: most scopes never are)."""
    next_read: float = 0.0
    """Until this time a successful answer's limit headers may go unread (`reads_answer`)."""
    roomy: bool = False
    """More than `ROOMY_SHARE` of every dimension was left at the last answer read."""

    @property
    def gated(self) -> bool:
        """Limits unknown yet: requests go out one probe at a time."""
        return not self.learned and not self.headerless

    def reads_answer(self, now: float) -> bool:
        """Whether a successful answer's limit headers are worth parsing now.

        Always until the scope's limits are learned, and on every answer while some dimension
        has half or less of its limit left. With more left, the estimate (each request debits
        its reservation, refills run at the learned rate) needs no correction for a while:
        headers are read at most every `READ_INTERVAL` seconds, and a busy, roomy scope is
        spared parsing them on nearly every answer. Errors are always read.
        """
        return not self.learned or now >= self.next_read

    def admits(self, demand: Demand, now: float) -> float:
        """Seconds until `demand` fits (0.0 means it can go now)."""
        if not self.learned and not self.headerless and len(self.in_flight) >= self.probe_limit:
            return math.nan  # wait for the probe's answer; no time can be predicted
        wait = 0.0
        units_of = demand.units
        for name, dim in self.dimensions.items():
            units = units_of.get(name, 0.0)
            if not units:
                continue
            if dim.known:
                # `seconds_until` says 0.0 first for units that are `available`: both inlined.
                level, rate, limit = dim.level, dim.rate, dim.limit
                if rate and now > dim.as_of:
                    level += rate * (now - dim.as_of)
                if limit is not None and level > limit:
                    level = limit
                if units < level:
                    continue
            elif units < math.inf:
                continue
            needed = dim.seconds_until(units, now)
            if needed > wait:
                wait = needed
        return wait

    def reserve(self, seq: int, demand: Demand, now: float) -> None:
        self.in_flight[seq] = demand
        dimensions = self.dimensions
        for name, units in demand.units.items():
            dim = dimensions.get(name)
            if dim is None:
                dim = dimensions[name] = Dimension()
            dim.debit(units, now)

    def settle(
        self,
        seq: int,
        observations: Iterable[LimitObservation],
        now: float,
        *,
        refund: bool = False,
    ) -> None:
        """Close reservation `seq`, adopting what the response said about the scope."""
        in_flight = self.in_flight
        reserved = in_flight.pop(seq, None)
        if not in_flight:
            in_flight.clear()  # gives back the emptied table: a pool keeps one per scope
        # An answer to a request granted before the one whose answer was last adopted came
        # back late: it may predate requests that have settled since (so are no longer
        # subtracted as in flight). Such an answer may lower the estimate, never raise it.
        stale = seq < self.observed_seq
        seen_any = False
        dimensions = self.dimensions
        for obs in observations:
            seen_any = True
            name = obs.dimension
            # Any other request still in flight may not be counted in this answer yet (requests
            # overtake each other on the way to the provider): assume none of them is.
            unsettled = (
                sum(d.units.get(name, 0.0) for d in in_flight.values()) if in_flight else 0.0
            )
            observed = dimensions.get(name)
            if observed is None:
                observed = dimensions[name] = Dimension()
            observed.observe(obs, unsettled, now, stale=stale)
        if seen_any:
            self.learned = True
            if seq > self.observed_seq:
                self.observed_seq = seq
            roomy = self.roomy = self.headroom(now) > ROOMY_SHARE
            self.next_read = now + READ_INTERVAL if roomy else now
        elif refund and reserved is not None:
            for name, units in reserved.units.items():
                dim = self.dimensions.get(name)
                if dim is not None:
                    dim.credit(units, now)

    def mark_headerless(self) -> None:
        """The provider answered without any limit headers: stop gating on the unknown."""
        if not self.learned:
            self.headerless = True

    # -- scopes whose provider sends no limit headers (Gemini): learn from 429s -------------

    def note_headerless_success(self, now: float) -> None:
        """Additive increase: each success raises a learned rate by one request a minute."""
        if self.learned:
            return
        if self._successes is None:
            self._successes = deque(maxlen=4096)
        self._successes.append(now)
        dim = self.dimensions.get("requests")
        if self.throttled and dim is not None and dim.rate is not None:
            dim.rate += 1.0 / DEFAULT_WINDOW_SECONDS
            dim.limit = max(1.0, dim.rate * _AIMD_BURST_SECONDS)

    def note_headerless_rate_limit(self, now: float) -> None:
        """Multiplicative decrease: a 429 with no headers sets (or halves) a learned rate.

        The first one starts from the throughput that was actually served over the last
        minute; later ones halve the learned rate. The rate is then enforced like a rate the
        provider announced, so the scope is paced instead of retried into more 429s.
        """
        if self.learned:
            return
        self.headerless = True
        dim = self.dimensions.get("requests")
        if self.throttled and dim is not None and dim.rate is not None:
            rate = dim.rate * _AIMD_DECREASE
        else:
            window = [t for t in self._successes or () if now - t <= DEFAULT_WINDOW_SECONDS]
            if len(window) < _AIMD_MIN_EVIDENCE:
                return  # too little served to say what pace the scope takes: the cooldown rules
            span = max(1.0, now - window[0])
            rate = len(window) / span * _AIMD_FIRST_CUT
        rate = max(rate, _AIMD_MIN_RATE)
        self.dimensions["requests"] = Dimension(
            limit=max(1.0, rate * _AIMD_BURST_SECONDS),
            level=0.0,
            as_of=now,
            rate=rate,
            known=True,
        )
        self.throttled = True

    def headroom(self, now: float) -> float:
        """The tightest dimension's share left, 0..1 (1.0 when nothing is known)."""
        least = 1.0
        for dim in self.dimensions.values():
            # `Dimension.headroom` of each known dimension, inlined: a rank needs it per grant.
            limit = dim.limit
            if dim.known and limit:
                level, rate = dim.level, dim.rate
                if rate and now > dim.as_of:
                    level += rate * (now - dim.as_of)
                share = (limit if level > limit else level) / limit
                if share < least:
                    least = 0.0 if share < 0.0 else share
        return least

    def seconds_to_exhaustion(self, now: float) -> float:
        return min(
            (d.seconds_to_exhaustion(now) for d in self.dimensions.values()), default=math.inf
        )

    def capacity(self, now: float) -> Capacity:
        headroom = self.headroom(now)
        if headroom <= 0.0 or any(
            d.known and d.available(now) < 1.0 for d in self.dimensions.values()
        ):
            return Capacity.EXHAUSTED
        if headroom < 0.1 or self.seconds_to_exhaustion(now) < 10.0:
            return Capacity.CRITICAL
        if headroom < 0.5:
            return Capacity.CONSTRAINED
        return Capacity.ABUNDANT
