"""A pool of keys: picks a key for each attempt and learns from each outcome.

`KeyPool.select` is the one place a routing decision is made. It checks every key against its
health, its scope's health and its scope's predicted quota, orders what is left by the pool's
objective, reserves the request's demand on the chosen scope and returns a `Decision`.
`settle` feeds the outcome back. Waiting callers queue FIFO with tickets (`enqueue`), so a
newcomer cannot overtake a caller that has been waiting for capacity.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from heapq import _siftdown, _siftup  # type: ignore[attr-defined]  # remove at a position
from typing import TYPE_CHECKING, Any

from keyrouter.core._crossing import CROSSING_PAD, TIER_FLOORS, seconds_to_share, tier_of
from keyrouter.core.decision import Decision, Lease, Refusal
from keyrouter.core.events import CapacityChanged, Event, KeyStateChanged
from keyrouter.core.health import KeyState
from keyrouter.core.keys import Key, key_id
from keyrouter.core.objectives import Candidate, _by_headroom, resolve
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import ROOMY_SHARE, Capacity, Demand, LimitObservation, ScopeQuota
from keyrouter.core.state import _FAILURE_RATE_WEIGHT, KeyRecord, ScopeRecord, StateBook
from keyrouter.errors import ConfigError

if TYPE_CHECKING:
    from keyrouter.core.budget import Spending
    from keyrouter.core.policy import PolicyGate, PoolPolicy
    from keyrouter.core.store import Grant, SharedKey, SharedScope
    from keyrouter.core.usage import UsageTotals

__all__ = ["DimensionSnapshot", "KeyPool", "KeySnapshot"]

_AWAITING_PROBE = "waiting for the scope's first answer to learn its limits"
_PROBE_RECHECK = 0.05
_PARK_SLACK = 2e-6
_MIN_REFRESH_INTERVAL = 256
_SWEEP_SLOTS = 4  # heap slots swept per upkeep: more than the one stale entry a refresh adds
_DRIFT_REFRESH_EVERY = 16
"""Upkeeps per fallback refresh of one key, for objectives whose rank drifts in ways that are
not scheduled (a weighted score, a price read off a spending ledger)."""
_ROOMY_IS_BEST = TIER_FLOORS[0] <= ROOMY_SHARE
"""A scope its last answer read found roomy (`ScopeQuota.roomy`) is in the best tier."""
_TIER_AT = {"headroom": 0, "reliability": 1, "cost": 1}
"""Where each named objective's rank holds the headroom tier (`objectives`)."""
_EXPLAIN_ALL = 64
"""Pools up to this size list every key that is out in each decision; larger ones only
the keys a decision examined (listing 100k refusals per call would cost more than routing)."""
_AVAILABLE = KeyState.AVAILABLE
_SUCCESS = OutcomeKind.SUCCESS
_NOTHING: frozenset[str] = frozenset()
_new = tuple.__new__
"""Builds a `Decision` or `Lease` from a full tuple of its fields: the named tuples' own
`__new__` is a Python function, and one of each is made per grant."""


@dataclass(frozen=True, slots=True)
class DimensionSnapshot:
    limit: float | None
    available: float | None
    refill_per_second: float | None
    seconds_to_exhaustion: float | None


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """One key as `KeyPool.snapshot` sees it: state, counters and predicted quota."""

    key: str
    scope: str
    state: KeyState
    reason: str
    until: float | None
    in_flight: int
    attempts: int
    successes: int
    rate_limited: int
    failures: int
    capacity: Capacity
    headroom: float
    dimensions: dict[str, DimensionSnapshot]
    fingerprint: str = ""
    period: str | None = None
    """The UTC calendar period `period_usage` covers (`month:2026-12`), when usage is kept."""
    period_usage: UsageTotals | None = None
    """Calls, tokens and cost of this key in `period` (None: its pool keeps no usage)."""


class _OpenGate:
    """The policy gate of a pool with no policy over keys with none: it refuses nothing and
    ranks as the objective does, so such a pool never loads `core.policy`."""

    screens = active = False

    def refusal(self, index: int, demand: Demand | None, in_flight: int, now: float) -> None:
        return None

    def forbids(self, demand: Demand) -> None:
        return None

    def rank(self, index: int, rank: tuple[float, ...]) -> tuple[float, ...]:
        return rank


_OPEN_GATE = _OpenGate()


def _has_policy(key: Key) -> bool:
    """Whether a key policy (tier, model rules, in-flight limit, schedule) applies to `key`."""
    return bool(
        key.tier
        or key.allow_models is not None
        or key.deny_models
        or key.max_in_flight is not None
        or key.schedule is not None
    )


class KeyPool:
    """A set of keys, an objective, and the shared `StateBook` they learn into."""

    def __init__(
        self,
        keys: Sequence[Key],
        *,
        book: StateBook,
        objective: str | Mapping[str, float] = "headroom",
        name: str = "pool",
        policy: PoolPolicy | None = None,
        spending: Spending | None = None,
    ) -> None:
        if not keys:
            raise ConfigError("the pool has no keys", field=name)
        self.keys: tuple[Key, ...] = tuple(keys)
        self.name = name
        self.objective, self._order, self._weighs_price = resolve(objective)
        self._policy = policy
        self._gate: PolicyGate | _OpenGate = _OPEN_GATE
        if policy is not None or any(_has_policy(k) for k in self.keys):
            from keyrouter.core.policy import PolicyGate, PoolPolicy

            self._gate = PolicyGate(self.keys, policy or PoolPolicy(), pool=name)
        self.spending = spending
        """Usage, cost and budgets of this pool (None: nobody asked, nothing is metered)."""
        self._dearest = max(k.price_multiplier for k in self.keys) or 1.0
        self._best_rank: tuple[float, ...] = ()
        self._book = book
        self._next_seq: Callable[[], int] = book._seq.__next__  # `book.next_seq`, one call less
        self._index_of = {key.id: index for index, key in enumerate(self.keys)}
        # The selection index (see `_scan`): heaps of (*rank, index) (flat: one tuple per
        # entry, not two) and (until, index). `_filed[index]` is the key's one live entry (in
        # either heap, or None): any other entry of the key is stale.
        self._ready: list[tuple[Any, ...]] = []
        self._parked: list[tuple[float, int]] = []
        self._filed: list[tuple[Any, ...] | None] = [None] * len(self.keys)
        # Re-filings due as scopes refill (see `_scan`): a heap of (time, scope id), and the
        # live entry of each scope that has one.
        self._due: list[tuple[float, str]] = []
        self._due_of: dict[str, tuple[float, str]] = {}
        self._below: set[str] = set()
        """Scopes a ready key of which was filed below the best tier (or was: a scope leaves
        only when `_retier` finds it in the best tier)."""
        tier_at = _TIER_AT.get(self.objective)
        self._tier_at = None if tier_at is None else tier_at + len(self._gate.rank(0, ()))
        """Where a rank holds the headroom tier (None: the objective reads no tier)."""
        self._drifts = (tier_at is None and self.objective != "round_robin") or (
            self._weighs_price and spending is not None
        )
        """The rank may change in ways no schedule foresees: keep a slow round-robin refresh."""
        self._reads_failures = self.objective == "reliability"
        self._plain = self._order is _by_headroom and self._gate is _OPEN_GATE
        """The default objective through an open gate: `_entry` computes the rank itself."""
        self._out: dict[int, Refusal] = {}  # why each parked or dropped key is out
        self._last_pick = [0] * len(self.keys)
        self._index_generation = -1
        self._rebuild_due = True
        self._picks_to_upkeep = 0
        self._upkeep_every = max(1, _MIN_REFRESH_INTERVAL // len(self.keys))
        self._upkeeps_to_refresh = 0
        self._refresh_cursor = 0
        self._sweep_ready = self._sweep_parked = 0
        members: dict[str, list[int]] = {}
        for index, key in enumerate(self.keys):
            members.setdefault(key.scope_id, []).append(index)
        self._scope_members = {scope: tuple(indexes) for scope, indexes in members.items()}
        self._shared = frozenset(i for m in members.values() if len(m) > 1 for i in m)
        """Keys whose scope has other keys of this pool: a grant may move those keys' tier."""
        self._waiters: deque[int] = deque()
        self._wakers: dict[int, Callable[[], None]] = {}
        with book.lock:
            self._records = [book.key(k.id, k.label, k.scope_id) for k in self.keys]
            self._scopes = [book.scope(k.scope_id) for k in self.keys]

    @property
    def policy(self) -> PoolPolicy:
        """The pool's own policy (a default one when it was given none)."""
        if self._policy is None:
            from keyrouter.core.policy import PoolPolicy

            self._policy = PoolPolicy()
        return self._policy

    @property
    def book(self) -> StateBook:
        return self._book

    def owns(self, secret: str) -> bool:
        """Whether `secret` is one of this pool's keys."""
        return key_id(secret) in self._index_of

    def forbids(self, demand: Demand) -> str | None:
        """Why a policy leaves no key of this pool for `demand` (None if some key may serve)."""
        if not self._gate.screens:
            return None
        with self._book.lock:
            return self._gate.forbids(demand)

    # -- choosing ---------------------------------------------------------------------------

    def select(
        self,
        demand: Demand,
        now: float,
        *,
        exclude: Iterable[str] = (),
        ticket: int | None = None,
    ) -> Decision:
        """Pick a key for one attempt, or say why none can serve and when one may.

        `refused` lists the keys this decision examined and turned down; keys the index
        already knows to be parked until later are not examined again.
        """
        excluded: AbstractSet[str]
        if not exclude:
            excluded = _NOTHING
        else:
            excluded = exclude if isinstance(exclude, set | frozenset) else frozenset(exclude)
        book = self._book
        with book.lock:
            waiters = self._waiters
            if waiters and ticket != waiters[0]:
                return self._queued_behind()
            ready, parked, due = self._ready, self._parked, self._due
            entry = ready[0] if ready else None
            if (
                entry is not None
                and not excluded
                and not self._rebuild_due
                and self._index_generation == book.generation
                and (not parked or parked[0][0] > now + _PARK_SLACK)
                and (not due or due[0][0] > now)
                and (not self._out or len(self.keys) > _EXPLAIN_ALL)
                and self._filed[entry[-1]] is entry
                and self._fits(entry[-1], demand, now)
            ):
                # The usual decision: the best-ranked key is live and can serve, nothing is
                # due to wake or re-rank and nothing needs explaining: grant it without a `_scan`.
                rank = self._best_rank = entry[:-1]
                lease = self._grant(entry[-1], demand, now)
                decision = _new(Decision, (lease, self.objective, (), None, False, False, rank))
            else:
                best, refused, retry_at, probing = self._scan(demand, now, excluded)
                if best is None:
                    return Decision(None, self.objective, refused, retry_at, probing)
                lease = self._grant(best, demand, now)
                decision = Decision(lease, self.objective, refused, rank=self._best_rank)
        if self.spending is not None:
            return self._hold_budget(self.spending, decision, lease, now, excluded, ticket)
        return decision

    def _fits(self, index: int, demand: Demand, now: float) -> bool:
        """Whether `_check` would find nothing against the key, decided cheaply for a key and
        scope that are plainly available (False when unsure: `_scan` then decides)."""
        if self._gate.active or self.spending is not None:
            return False
        scope = self._scopes[index]
        return (
            self._records[index].health.state is _AVAILABLE
            and scope.health.state is _AVAILABLE
            and scope.quota.admits(demand, now) == 0.0
        )

    def _hold_budget(
        self,
        spending: Spending,
        decision: Decision,
        lease: Lease,
        now: float,
        excluded: AbstractSet[str],
        ticket: int | None,
    ) -> Decision:
        """Reserve the granted call's estimated cost on its budgets (outside the lock: the
        ledger may be shared). Lost to a concurrent caller: give the lease back and choose
        again without that key, or refuse outright when a pool-wide budget is spent."""
        held = spending.reserve(lease, now)
        if held is None:
            return decision
        refusal, pool_wide = held
        self.abandon(lease, now)
        if pool_wide or len(excluded) + 1 >= len(self.keys):
            return Decision(None, self.objective, (refusal,), refusal.retry_at)
        again = self.select(lease.demand, now, exclude={*excluded, lease.key.id}, ticket=ticket)
        return again._replace(refused=(refusal, *again.refused))

    def earliest_recovery(self, demand: Demand, now: float) -> float | None:
        """When some key could next take `demand` (now if one can), without reserving."""
        with self._book.lock:
            best, _, retry_at, _ = self._scan(demand, now, frozenset())
            if best is not None:
                self._push_ready(best, now)
        return now if best is not None else retry_at

    def _scan(
        self, demand: Demand, now: float, excluded: AbstractSet[str]
    ) -> tuple[int | None, tuple[Refusal, ...], float | None, bool]:
        """(best key index, refusals, earliest recovery of a refused key, waiting on a probe).

        Keys sit in one of two heaps: `_ready` ordered by the objective's rank, `_parked`
        ordered by the time they may serve again. Every key taken from `_ready` is checked
        afresh against the book (another pool may have changed it), so the index can be
        stale but a decision never is. A rank is computed when its key is filed, and a key is
        re-filed whenever its rank can change: on its grant, on an answer for its scope (or a
        grant on it that moves its tier), and when its scope's predicted headroom refills
        across a tier floor, the one change time alone makes. That time follows from the quota
        model (`_crossing`), so each scope below the best tier has a re-filing due then in
        `_due`, taken up here as `_parked` keys are woken: no grant touches a key that does
        not need it, and no pick pauses to re-rank them all. Only objectives whose rank drifts
        unforeseen (a weighted score, a price off a spending ledger) still re-file one key in
        turn, every `_DRIFT_REFRESH_EVERY` upkeeps (`_refresh_one`). State shared with other
        pools over the book is checked afresh, not scheduled: what they change reorders this
        pool's keys when it next re-files them. The best key leaves the heap; `_grant` files
        it again. The earliest recovery is only worked out when no key was found (nobody
        reads it then).
        """
        if self._rebuild_due or self._index_generation != self._book.generation:
            self._rebuild(now)
        if self._parked:
            self._wake_parked(now)
        if self._due:
            self._wake_due(now)
        refused: list[Refusal] = []
        set_aside: list[int] = []
        sooner = math.inf
        probing = False
        best: int | None = None
        ready, filed = self._ready, self._filed
        while ready:
            entry = heapq.heappop(ready)
            index = entry[-1]
            if filed[index] is not entry:
                continue  # stale
            filed[index] = None
            if excluded and self.keys[index].id in excluded:
                set_aside.append(index)
                continue
            refusal = self._check(index, demand, now)
            if refusal is None:
                self._best_rank = entry[:-1]
                best = index
                break
            refused.append(refusal)
            if refusal.for_this_request:
                # Short for this request's size only: a smaller request may fit, so the key
                # stays in the index and only this decision counts its recovery.
                set_aside.append(index)
                if refusal.retry_at is not None:
                    sooner = min(sooner, refusal.retry_at)
                continue
            self._out[index] = refusal
            if refusal.reason is _AWAITING_PROBE:
                probing = True
                self._park(index, now + _PROBE_RECHECK)
            elif refusal.retry_at is not None:
                self._park(index, refusal.retry_at)
            # else permanent: out of the index until the next rebuild
        for index in set_aside:
            self._push_ready(index, now)
        if self._out and len(self.keys) <= _EXPLAIN_ALL:
            # Small pools: also say why the keys already out of the index were not examined.
            examined = {r.key for r in refused}
            refused.extend(r for r in self._out.values() if r.key not in examined)
        if best is not None:
            return best, tuple(refused), None, probing
        parked = self._earliest_parked()
        earliest = min(sooner, parked if parked is not None else math.inf)
        return best, tuple(refused), (earliest if math.isfinite(earliest) else None), probing

    # -- the index ----------------------------------------------------------------------

    def _entry(self, index: int, now: float) -> tuple[Any, ...]:
        """The key's heap entry: its rank under the objective (behind its policy tier), then
        its index."""
        if self._plain:
            # `objectives._by_headroom` over `_candidate`, without building the candidate.
            headroom = self._scopes[index].quota.headroom(now)
            return (
                0 if headroom >= 0.5 else 1 if headroom >= 0.2 else 2 if headroom >= 0.05 else 3,
                self._records[index].stats.attempts / self.keys[index].weight,
                self._last_pick[index],
                index,
            )
        return (*self._gate.rank(index, self._order(self._candidate(index, now))), index)

    def _push_ready(self, index: int, now: float) -> None:
        """File the key in `_ready` by its current rank. A key already there keeps its entry
        when its rank did not move, and is re-filed in place when its entry is on top of the
        heap (one sift, no stale entry left behind)."""
        due = self._due
        if due and due[0][0] <= now:
            # Re-file the scopes that refilled across a floor first: the ready keys of a scope
            # then all hold its tier, which `_retier` relies on.
            self._wake_due(now)
        out = self._out
        was_out = bool(out) and out.pop(index, None) is not None
        entry = self._entry(index, now)
        filed, ready = self._filed, self._ready
        old = filed[index]
        filed[index] = entry
        if old is None or was_out:  # not in `_ready` (parked, dropped or taken out by `_scan`)
            heapq.heappush(ready, entry)
        elif entry == old:
            filed[index] = old
        elif ready[0] is old:
            heapq.heapreplace(ready, entry)
        else:
            heapq.heappush(ready, entry)
        tier_at = self._tier_at
        if tier_at is not None and entry[tier_at]:  # below the best tier: it may climb
            self._schedule(
                self.keys[index]._scope_id, self._scopes[index].quota, entry[tier_at], now
            )

    def _schedule(self, scope_id: str, quota: ScopeQuota, tier: int, now: float) -> None:
        """Have the scope's keys re-filed when its headroom refills into the tier above `tier`
        (an earlier re-filing already due stays: it finds the time again when it comes)."""
        self._below.add(scope_id)
        wait = seconds_to_share(quota, TIER_FLOORS[tier - 1], now)
        if wait == math.inf:
            return  # it never refills by itself: an answer or a grant re-files it
        at = now + wait + CROSSING_PAD
        due_of = self._due_of
        current = due_of.get(scope_id)
        if current is not None:
            if current[0] <= at:
                return
            if len(self._due) > 2 * len(due_of) + 16:
                # The entry it replaces stays behind, stale (it comes later): keep the heap
                # O(scopes) by dropping them all once they outnumber the live ones.
                self._due[:] = [e for e in self._due if due_of.get(e[1]) is e]
                heapq.heapify(self._due)
        entry = due_of[scope_id] = (at, scope_id)
        heapq.heappush(self._due, entry)

    def _wake_due(self, now: float) -> None:
        """Re-file the keys of each scope whose re-filing is due, if its tier moved (else
        only schedule the next: grants since may have put the crossing off)."""
        due, due_of = self._due, self._due_of
        while due and due[0][0] <= now:
            entry = heapq.heappop(due)
            scope_id = entry[1]
            if due_of.get(scope_id) is not entry:
                continue  # stale
            del due_of[scope_id]
            self._retier(scope_id, now)

    def _retier(self, scope_id: str, now: float) -> None:
        """The scope's predicted headroom moved: re-file its ready keys if their tier is not
        the scope's now, else see that its next crossing is scheduled."""
        tier_at = self._tier_at
        assert tier_at is not None
        filed, out = self._filed, self._out
        members = self._scope_members.get(scope_id, ())
        for index in members:
            entry = filed[index]
            if entry is not None and index not in out:
                break
        else:
            return  # none in `_ready`: each is ranked afresh when it comes back
        quota = self._scopes[index].quota
        tier = tier_of(quota.headroom(now))
        if entry[tier_at] != tier:  # every ready key of a scope is filed with its tier
            for index in members:
                if filed[index] is not None and index not in out:
                    self._push_ready(index, now)
        if tier:
            self._schedule(scope_id, quota, tier, now)
        else:
            self._below.discard(scope_id)

    def _park(self, index: int, until: float) -> None:
        entry = self._filed[index] = (until, index)
        heapq.heappush(self._parked, entry)

    def _wake_parked(self, now: float) -> None:
        parked, filed = self._parked, self._filed
        # Predicted recoveries are padded by a microsecond (see `Dimension.seconds_until`): wake
        # a key that close to its time and let the fresh check decide.
        while parked and parked[0][0] <= now + _PARK_SLACK:
            entry = heapq.heappop(parked)
            if filed[entry[1]] is entry:
                self._push_ready(entry[1], now)

    def _earliest_parked(self) -> float | None:
        parked, filed = self._parked, self._filed
        while parked and filed[parked[0][1]] is not parked[0]:
            heapq.heappop(parked)
        return parked[0][0] if parked else None

    def _refresh_scope(self, scope_id: str, now: float, *, only_out: bool) -> None:
        """An answer changed a scope: re-file its keys by their state (`only_out`: just the
        keys that are parked or dropped, when nothing but the quota estimate moved)."""
        for index in self._scope_members.get(scope_id, ()):
            if only_out and index not in self._out:
                continue
            refusal = self._check_state(index, now)
            if refusal is None:
                self._push_ready(index, now)
            else:
                self._keep_out(index, refusal)

    def _keep_out(self, index: int, refusal: Refusal) -> None:
        """Park the key until `refusal.retry_at` (a parked key already due then keeps its
        entry), or drop it until the next rebuild when it never recovers by itself."""
        filed = self._filed
        parked = filed[index] if index in self._out else None  # an out key's entry is parked
        self._out[index] = refusal
        until = refusal.retry_at
        if until is None:
            filed[index] = None  # permanent: out until the next rebuild
        elif parked is None or parked[0] != until:
            self._park(index, until)

    def _upkeep(self, now: float, granted: int) -> None:
        """Every `_upkeep_every` grants (every grant at 256 keys or more): sweep stale heap
        entries, and for a drifting objective now and then re-file a key (`_refresh_one`)."""
        self._picks_to_upkeep = self._upkeep_every
        ready, parked, filed = self._ready, self._parked, self._filed
        # Re-filing leaves the key's previous entry behind, stale: while the heaps hold more
        # entries than keys, sweep a few slots per upkeep so they stay O(n) however long the
        # pool runs, with no pause to compact.
        if len(ready) + len(parked) > len(filed):
            self._sweep_ready = _sweep(ready, self._sweep_ready, filed)
            self._sweep_parked = _sweep(parked, self._sweep_parked, filed)
        if self._drifts:
            self._upkeeps_to_refresh -= 1
            if self._upkeeps_to_refresh <= 0:
                self._upkeeps_to_refresh = _DRIFT_REFRESH_EVERY
                self._refresh_one(now, granted)

    def _refresh_one(self, now: float, granted: int) -> None:
        """Re-file the next key in round-robin order: for objectives whose rank drifts in
        ways `_due` does not foresee, what a full `_rebuild` does for every key, a slice at a
        time (at 100,000 keys a full re-rank paused a pick for ~0.2 s). A ready key whose rank
        did not move keeps its entry, a key still out by its state stays out, and the key
        being `granted` is skipped: its grant files it anew."""
        filed = self._filed
        index = self._refresh_cursor
        self._refresh_cursor = index + 1 if index + 1 < len(filed) else 0
        if index == granted:
            return
        out = self._out
        if out and index in out:
            refusal = self._check_state(index, now)
            if refusal is not None:
                # Still out by its state (cooling, exhausted, invalid, a policy): it stays out,
                # rather than go back to `_ready` for the next decision to take up and refuse.
                self._keep_out(index, refusal)
                return
        elif filed[index] == self._entry(index, now):
            return  # filed in `_ready` by the rank it has
        self._push_ready(index, now)

    def _rebuild(self, now: float) -> None:
        """Re-rank every key: at the first pick, after a reset of the book, after adopting a
        shared store's state."""
        book = self._book
        if self._index_generation != book.generation:
            self._records = [book.key(k.id, k.label, k.scope_id) for k in self.keys]
            self._scopes = [book.scope(k.scope_id) for k in self.keys]
        self._index_generation = book.generation
        self._rebuild_due = False
        self._parked.clear()
        self._out.clear()
        self._due.clear()
        self._due_of.clear()
        self._below.clear()
        entries = [self._entry(index, now) for index in range(len(self.keys))]
        self._filed = list(entries)
        tier_at = self._tier_at
        if tier_at is not None:
            for index, entry in enumerate(entries):
                if entry[tier_at]:
                    self._schedule(
                        self.keys[index]._scope_id, self._scopes[index].quota, entry[tier_at], now
                    )
        heapq.heapify(entries)
        self._ready = entries

    def _check(self, index: int, demand: Demand, now: float) -> Refusal | None:
        refusal = self._check_state(index, now, demand)
        if refusal is not None:
            return refusal
        key, scope = self.keys[index], self._scopes[index]
        wait = scope.quota.admits(demand, now)
        if math.isnan(wait):
            return Refusal(key.label, _AWAITING_PROBE)
        if wait > 0:
            short = _short_dimension(scope, demand, now)
            # Every request costs one request; other dimensions depend on the request's size.
            sized = short != "requests"
            if math.isfinite(wait):
                reason = f"predicted short of {short} for {wait:.2f}s"
                return Refusal(key.label, reason, now + wait, for_this_request=sized)
            reason = f"request exceeds the scope's {short} limit"
            return Refusal(key.label, reason, for_this_request=True)
        if self.spending is not None:
            return self.spending.key_refusal(key, demand, now)
        return None

    def _check_state(self, index: int, now: float, demand: Demand | None = None) -> Refusal | None:
        """Policies, then key and scope state: the part of `_check` that is not quota.

        Without a `demand` only what does not depend on the request is checked.
        """
        record = self._records[index]
        if self._gate.active:
            refusal = self._gate.refusal(index, demand, record.stats.in_flight, now)
            if refusal is not None:
                return refusal
        health = record.health
        if health.state is not _AVAILABLE and not health.usable(now):  # (available: usable)
            key = self.keys[index]
            state = health.effective_state(now)
            if state is KeyState.HALF_OPEN:
                return Refusal(key.label, "circuit half-open: a probe is in flight", now + 0.05)
            if math.isfinite(health.until):
                return Refusal(key.label, f"{state.value} ({health.reason})", health.until)
            return Refusal(key.label, f"{state.value} ({health.reason})", permanent=True)
        scope_health = self._scopes[index].health
        if scope_health.state is _AVAILABLE:
            return None
        scope_state = scope_health.effective_state(now)
        if scope_state is _AVAILABLE:
            return None
        reason, until = f"scope {scope_state.value} ({scope_health.reason})", scope_health.until
        known = self._out.get(index) if self._out else None
        if known is not None and known.retry_at == until and known.reason == reason:
            return known  # the same refusal as last time (a refresh of a cooling key)
        return Refusal(self.keys[index].label, reason, until)

    def _candidate(self, index: int, now: float) -> Candidate:
        record, scope, key = self._records[index], self._scopes[index], self.keys[index]
        return Candidate(
            scope.quota.headroom(now),
            record.stats.attempts,
            key.weight,
            record.stats.failure_rate,
            self._last_pick[index],
            self._price(key) if self._weighs_price else 1.0,
        )

    def _price(self, key: Key) -> float:
        """The key's effective price relative to the pool's dearest key (0..1)."""
        spending = self.spending
        price = spending.effective_price(key) if spending else key.price_multiplier
        return price / self._dearest

    def _grant(self, index: int, demand: Demand, now: float) -> Lease:
        key, record = self.keys[index], self._records[index]
        seq = self._next_seq()
        health = record.health
        if health.state is not _AVAILABLE:
            health.on_pick(now)  # a half-open key lets its probe through
        stats = record.stats
        stats.in_flight += 1
        stats.attempts += 1
        stats.last_used = now
        self._scopes[index].quota.reserve(seq, demand, now)
        self._last_pick[index] = seq
        self._picks_to_upkeep -= 1
        if self._picks_to_upkeep <= 0:
            self._upkeep(now, index)
        # `_scope_id`: the field behind `Key.scope_id`, without the property's call.
        lease = _new(Lease, (key, key._scope_id, seq, demand, now))
        if self.spending is not None:
            self.spending.hold_credits(lease)  # before re-ranking: it may use the credits up
        self._push_ready(index, now)
        shared = self._shared
        if shared and index in shared and self._tier_at is not None:
            tier_at = self._tier_at
            filed = self._filed[index]
            if filed is not None and filed[tier_at] != self._best_rank[tier_at]:
                # The reservation moved the scope's tier: its other ready keys move with it.
                out = self._out
                for member in self._scope_members[key._scope_id]:
                    if member != index and self._filed[member] is not None and member not in out:
                        self._push_ready(member, now)
        return lease

    def _queued_behind(self) -> Decision:
        refusal = Refusal("queue", f"{len(self._waiters)} caller(s) waiting ahead")
        return Decision(None, self.objective, (refusal,), None, queued=True)

    def unavailable_kind(self, now: float) -> OutcomeKind:
        """Why no key can serve, as the outcome class the SDK should see for it."""
        with self._book.lock:
            live = [
                i
                for i, r in enumerate(self._records)
                if r.health.effective_state(now) not in (KeyState.INVALID, KeyState.DISABLED)
            ]
            if not live:
                return OutcomeKind.INVALID_KEY
            if all(self._scopes[i].health.effective_state(now) is KeyState.EXHAUSTED for i in live):
                return OutcomeKind.QUOTA_EXHAUSTED
            return OutcomeKind.RATE_LIMITED

    # -- waiting ----------------------------------------------------------------------------

    def enqueue(self, wake: Callable[[], None]) -> int:
        """Join the FIFO of callers waiting for capacity; returns the ticket to pass to select.

        `wake` is called (from any thread, never under the lock) when the caller should look
        again: it became the head of the queue, or an answer changed what the pool knows.
        """
        ticket = self._book.next_seq()
        with self._book.lock:
            self._waiters.append(ticket)
            self._wakers[ticket] = wake
        return ticket

    def dequeue(self, ticket: int) -> None:
        """Leave the queue (served, timed out or cancelled). Safe to call twice."""
        with self._book.lock:
            was_head = bool(self._waiters) and self._waiters[0] == ticket
            with contextlib.suppress(ValueError):
                self._waiters.remove(ticket)
            self._wakers.pop(ticket, None)
            head = self._head_waker() if was_head else None
        if head is not None:
            head()

    def _head_waker(self) -> Callable[[], None] | None:
        return self._wakers.get(self._waiters[0]) if self._waiters else None

    def _wake_head(self) -> None:
        """Something changed: let the first waiter look again (called without the lock)."""
        if self._waiters:
            with self._book.lock:
                head = self._head_waker()
            if head is not None:
                head()

    # -- learning ---------------------------------------------------------------------------

    def settle(
        self,
        lease: Lease,
        outcome: Outcome,
        now: float,
        observations: Sequence[LimitObservation] | None = (),
    ) -> None:
        """Feed one attempt's outcome back: key health, scope health, quota, counters.

        `observations` is None when the answer's limit headers were left unread (the scope
        is roomy: see `reads_answer`), which is not the same as an answer that has none."""
        book = self._book
        kind = outcome.kind
        key = lease.key
        emit: list[Event] | None = None
        with book.lock:
            index = self._index_of.get(key.id)
            if index is not None and self._index_generation != book.generation:
                index = None  # a lease from before a reset: the index is rebuilt at next pick
            if index is not None and self.keys[index] is key and lease.scope_id is key._scope_id:
                record, scope = self._records[index], self._scopes[index]
            else:  # another pool's key (over the same book), or the index is out of date
                record = book.key(key.id, key.label, lease.scope_id)
                scope = book.scope(lease.scope_id)
            health, scope_health = record.health, scope.health
            before_key = health.state
            if before_key is not _AVAILABLE:
                before_key = health.effective_state(now)
            before_scope = scope_health.state
            if before_scope is not _AVAILABLE:
                before_scope = scope_health.effective_state(now)
            stats = record.stats
            stats.in_flight = stats.in_flight - 1 if stats.in_flight > 0 else 0
            if kind is _SUCCESS:
                stats.successes += 1
                stats.failure_rate -= _FAILURE_RATE_WEIGHT * stats.failure_rate
                if health.state is _AVAILABLE:  # what `KeyHealth.apply` does for a success
                    health.probe_in_flight = False
                    health.consecutive_failures = 0
                    health.open_seconds = 0.0
                else:
                    health.apply(outcome, now, book.settings)
                # a success leaves the scope's health as it is
            else:
                if kind is OutcomeKind.RATE_LIMITED:
                    stats.rate_limited += 1
                elif kind is not OutcomeKind.REQUEST_ERROR:
                    stats.failures += 1
                stats.note_result(kind is OutcomeKind.SERVER_ERROR)
                health.apply(outcome, now, book.settings)
                scope_health.apply(outcome, now, book.settings)
            quota = scope.quota
            was_gated = not quota.learned and not quota.headerless
            refund = kind is not _SUCCESS and outcome.consumed_nothing
            quota.settle(lease.seq, observations or (), now, refund=refund)
            if observations is not None and not observations:
                if kind is _SUCCESS:
                    quota.mark_headerless()
                    quota.note_headerless_success(now)
                elif kind is OutcomeKind.RATE_LIMITED:
                    quota.note_headerless_rate_limit(now)
            after_key = health.state
            if after_key is not _AVAILABLE:
                after_key = health.effective_state(now)
            after_scope = scope_health.state
            if after_scope is not _AVAILABLE:
                after_scope = scope_health.effective_state(now)
            moved = after_key is not before_key or after_scope is not before_scope
            changed = moved or was_gated or kind is not _SUCCESS
            if changed:
                self._reindex(lease, now, changed=True)
            else:
                if self._out:  # only keys out may need re-filing after a plain success
                    out = self._out
                    for member in self._scope_members.get(lease.scope_id, ()):
                        if member in out:
                            self._reindex(lease, now, changed=False)
                            break
                if (
                    observations
                    and (not quota.roomy or not _ROOMY_IS_BEST or lease.scope_id in self._below)
                    and index is not None
                    and self._tier_at is not None
                ):
                    # The answer may have moved the scope's tier or its next crossing; not
                    # when it found the scope roomy (so in the best tier) and no key of it
                    # was filed below that tier.
                    self._retier(lease.scope_id, now)
                if index is not None and self._reads_failures:
                    self._refile_if_ready(index, now)  # its failure rate moved
            if moved or book.listeners:  # nothing to tell otherwise: a plain success stays cheap
                events: list[Event] = []
                self._note_changes(lease, record, scope, before_key, before_scope, now, events)
                if events:
                    emit = events
        if self.spending is not None and kind.fails_over:
            self.spending.release(lease)  # not delivered: nothing to charge
        if self._waiters:
            self._wake_head()
        if emit:
            book.listeners.emit(emit)

    def reads_answer(self, lease: Lease, now: float) -> bool:
        """Whether the limit headers of a successful answer to `lease` are worth parsing (see
        `ScopeQuota.reads_answer`); a pool whose state is shared through a store reads all."""
        if self._book.store is not None:
            return True
        scope = self._book.scopes.get(lease.scope_id)
        return scope is None or scope.quota.reads_answer(now)

    def takes_bounds(self) -> bool:
        """Whether a request may reserve an upper bound of its demand instead of its estimate
        (see `Wire.demand_bound`): nothing reads the request itself (no policy, no budget, no
        listener for per-call events, no shared store), and the key the pool would pick next
        belonged to a roomy scope at its last answer read (`ScopeQuota.roomy`: answers are
        read at least every `READ_INTERVAL` while it is), where a few tokens reserved too many
        cannot keep any request waiting. Read without the lock: a key picked by another
        caller meanwhile only makes the reservation a little more cautious than it needed to be.
        """
        book = self._book
        if (
            self._gate.active
            or self._gate.screens
            or self.spending is not None
            or book.store is not None
            or book.listeners.routine()
        ):
            return False
        ready = self._ready
        if not ready or self._index_generation != book.generation:
            return False
        index: int = ready[0][-1]
        quota = self._scopes[index].quota
        return quota.learned and quota.roomy

    def abandon(self, lease: Lease, now: float) -> None:
        """The attempt ended with no answer about the key (cancelled, closed early)."""
        with self._book.lock:
            record = self._book.key(lease.key.id, lease.key.label, lease.scope_id)
            record.stats.in_flight = max(0, record.stats.in_flight - 1)
            record.health.on_abandon()
            self._book.scope(lease.scope_id).quota.settle(lease.seq, (), now, refund=True)
            self._reindex(lease, now, changed=True)
        if self.spending is not None:
            self.spending.release(lease)
        self._wake_head()

    # -- shared state (a store other processes use too) ------------------------------------

    def apply_grant(self, lease: Lease, grant: Grant, now: float) -> None:
        """The shared store's answer to `lease`: its scope and key adopt the shared state,
        and a refused lease is withdrawn as if it had never been granted."""
        from keyrouter.core.store import adopt_key, adopt_scope  # only pools with a store

        book = self._book
        with book.lock:
            record = book.key(lease.key.id, lease.key.label, lease.scope_id)
            scope = book.scope(lease.scope_id)
            if not grant.granted:
                record.stats.in_flight = max(0, record.stats.in_flight - 1)
                record.stats.attempts = max(0, record.stats.attempts - 1)
                record.health.on_abandon()
                scope.quota.settle(lease.seq, (), now, refund=True)
            adopt_scope(scope, grant.scope, now, book.settings)
            adopt_key(record, grant.key, now, book.settings)
            self._reindex(lease, now, changed=True)
        if not grant.granted and self.spending is not None:
            self.spending.release(lease)  # the call will not go out: free its budget hold

    def adopt_shared(
        self, scopes: Mapping[str, SharedScope], keys: Mapping[str, SharedKey], now: float
    ) -> None:
        """Start from what the shared store knows (limits, cooldowns, invalid keys)."""
        from keyrouter.core.store import adopt_key, adopt_scope  # only pools with a store

        book = self._book
        with book.lock:
            for key, record, scope in zip(self.keys, self._records, self._scopes, strict=True):
                if key.scope_id in scopes:
                    adopt_scope(scope, scopes[key.scope_id], now, book.settings)
                if key.id in keys:
                    adopt_key(record, keys[key.id], now, book.settings)
            self._rebuild_due = True  # re-rank every key at the next pick

    def _reindex(self, lease: Lease, now: float, *, changed: bool) -> None:
        """After an answer: re-file what it may have changed.

        A plain success changes no state and no rank (ranks do not count requests in flight),
        so only keys parked on the scope's quota are looked at again; anything else re-files
        every key of the scope.
        """
        if lease.key.id not in self._index_of or self._index_generation != self._book.generation:
            return  # a lease from before a reset, or from another pool over the same keys
        self._refresh_scope(lease.scope_id, now, only_out=not changed)

    def _refile_if_ready(self, index: int, now: float) -> None:
        """Re-file the key by its rank if it is in `_ready` (a key out comes back ranked)."""
        if self._filed[index] is not None and index not in self._out:
            self._push_ready(index, now)

    def _note_changes(
        self,
        lease: Lease,
        record: KeyRecord,
        scope: ScopeRecord,
        before_key: KeyState,
        before_scope: KeyState,
        now: float,
        events: list[Event],
    ) -> None:
        after_key = record.health.effective_state(now)
        if after_key is not before_key:
            until = record.health.until if math.isfinite(record.health.until) else None
            events.append(
                KeyStateChanged(
                    record.label,
                    lease.key.scope_label,
                    before_key,
                    after_key,
                    record.health.reason,
                    until,
                    now,
                )
            )
        after_scope = scope.health.effective_state(now)
        if after_scope is not before_scope:
            events.append(
                KeyStateChanged(
                    record.label,
                    lease.key.scope_label,
                    before_scope,
                    after_scope,
                    scope.health.reason,
                    scope.health.until,
                    now,
                )
            )
        if not self._book.listeners.routine():
            return  # capacity classes are computed fresh by snapshot(); only events need this
        capacity = scope.quota.capacity(now)
        if capacity is not scope.capacity:
            events.append(
                CapacityChanged(
                    lease.key.scope_label,
                    scope.capacity,
                    capacity,
                    scope.quota.seconds_to_exhaustion(now),
                    now,
                )
            )
            scope.capacity = capacity

    # -- looking ----------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> list[KeySnapshot]:
        """Every key's state, counters and predicted quota, as values."""
        if now is None:
            now = time.time()
        with self._book.lock:
            return [self._snapshot_one(i, now) for i in range(len(self.keys))]

    def _snapshot_one(self, index: int, now: float) -> KeySnapshot:
        key, record, scope = self.keys[index], self._records[index], self._scopes[index]
        key_state = record.health.effective_state(now)
        scope_state = scope.health.effective_state(now)
        state: KeyState
        if key_state is KeyState.AVAILABLE and scope_state is not KeyState.AVAILABLE:
            state, reason, until = scope_state, scope.health.reason, scope.health.until
        else:
            state, reason, until = key_state, record.health.reason, record.health.until
        dims = {
            name: DimensionSnapshot(
                dim.limit,
                dim.available(now) if dim.known else None,
                dim.rate,
                _finite(dim.seconds_to_exhaustion(now)),
            )
            for name, dim in scope.quota.dimensions.items()
        }
        stats = record.stats
        return KeySnapshot(
            key=key.label,
            scope=key.scope_label,
            state=state,
            reason=reason,
            until=_finite(until) if state is not KeyState.AVAILABLE else None,
            in_flight=stats.in_flight,
            attempts=stats.attempts,
            successes=stats.successes,
            rate_limited=stats.rate_limited,
            failures=stats.failures,
            capacity=scope.quota.capacity(now),
            headroom=scope.quota.headroom(now),
            dimensions=dims,
            fingerprint=key.fingerprint,
        )


def _short_dimension(scope: ScopeRecord, demand: Demand, now: float) -> str:
    worst, name = 0.0, "capacity"
    for dim_name, dim in scope.quota.dimensions.items():
        wait = dim.seconds_until(demand.get(dim_name), now)
        if wait > worst:
            worst, name = wait, dim_name
    return name


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _sweep(
    heap: list[Any], pos: int, filed: list[tuple[Any, ...] | None], slots: int = _SWEEP_SLOTS
) -> int:
    """Remove the stale entries among `slots` heap positions from `pos` (entries end with the
    key's index; the live one is `filed[index]`); the position to go on from next time."""
    for _ in range(slots):
        if pos >= len(heap):
            return 0
        entry = heap[pos]
        if filed[entry[-1]] is entry:
            pos += 1
            continue
        last = heap.pop()
        if pos < len(heap):  # the last entry takes the stale one's slot, then finds its place
            heap[pos] = last
            _siftup(heap, pos)
            _siftdown(heap, 0, pos)
    return pos
