"""What every store does the same way: lease ids, buffered reports, and riding out outages.

A store subclass only implements `_exchange` (apply a batch of settle reports, then maybe one
reservation, atomically), `_load` and `_close`. Reports are buffered and sent with the next
reservation, so the steady state is one round trip per call; a small daemon thread sends what
no reservation picked up within a few milliseconds. When the backend fails, the store says so
once (a `StoreDegraded` event, logged as a warning), answers `None` so calls go on with the
process's own state, and tries again every second; reports made meanwhile are kept and sent
when it answers. Releasing a lease is idempotent, so a batch sent twice counts once.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, cast

from keyrouter.core.decision import Lease
from keyrouter.core.events import Event, Listeners, StoreDegraded, StoreRecovered
from keyrouter.core.health import BreakerSettings, KeyState
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import LimitObservation
from keyrouter.core.store import Grant, SharedKey, SharedScope
from keyrouter.core.usage import (
    BudgetClaim,
    BudgetSpend,
    GroupBy,
    MemoryLedger,
    UsageLedger,
    UsageRecord,
    UsageTotals,
)
from keyrouter.stores import DEFAULT_LEASE_TTL
from keyrouter.stores._docs import Doc, grant_of, key_of, scope_of

__all__ = ["DEFAULT_LEASE_TTL", "BatchLedger", "GuardedLedger", "SharedStore"]

_log = logging.getLogger("keyrouter")

_FLUSH_DELAY = 0.005
"""How long a report waits for a reservation to ride along with before it is sent alone."""
_RETRY_SECONDS = 1.0
_MAX_BUFFERED = 10_000
"""A lease not settled within this many seconds stops counting as in flight: its process died,
or the provider counted the request long ago (a request is counted when it arrives, so only
the last moments' reservations can be missing from an answer; a long stream is not cut)."""

_COOLS = {
    OutcomeKind.RATE_LIMITED: KeyState.COOLING,
    OutcomeKind.QUOTA_EXHAUSTED: KeyState.EXHAUSTED,
}
_FLAGS = {OutcomeKind.INVALID_KEY: KeyState.INVALID, OutcomeKind.FORBIDDEN: KeyState.DISABLED}


class SharedStore:
    """Base of the memory, SQLite and Redis stores (see the module docstring)."""

    ledger: UsageLedger

    def __init__(
        self,
        description: str,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        settings: BreakerSettings | None = None,
    ) -> None:
        self.description = description
        """How the store is named in messages: its URL without any password."""
        self.url = ""
        """The URL it was opened with (`patch()` keeps a store whose URL did not change)."""
        self.lease_ttl = lease_ttl
        self.listeners: Listeners | None = None
        self._settings = settings or BreakerSettings()
        self._lock = threading.Lock()
        self._buffer: list[Doc] = []
        self._pending = threading.Event()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._pid = -1
        self._token = ""
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._closed = False

    # -- the protocol ------------------------------------------------------------------------

    def reserve(self, lease: Lease, now: float) -> Grant | None:
        if self._skipping():
            return None
        request = {
            "lease": self._lease_id(lease),
            "scope": lease.scope_id,
            "key": lease.key.id,
            "units": dict(lease.demand.units),
            "expires": now + self.lease_ttl,
            "at": now,
        }
        batch = self._take()
        try:
            reply = self._exchange(batch, request)
        except Exception as error:
            self._failed(error, batch)
            return None
        self._answered()
        return grant_of(reply, now) if reply is not None else None

    def settle(
        self,
        lease: Lease,
        outcome: Outcome | None,
        observations: Sequence[LimitObservation],
        now: float,
    ) -> None:
        report: Doc = {
            "lease": self._lease_id(lease),
            "scope": lease.scope_id,
            "key": lease.key.id,
            "at": now,
        }
        if outcome is None or outcome.consumed_nothing:
            report["refund"] = True  # no answer, or one that consumed nothing
        if observations:
            report["obs"] = [
                [o.dimension, o.limit, o.remaining, o.reset_at, o.observed_at] for o in observations
            ]
        if outcome is not None:
            cool = _COOLS.get(outcome.kind)
            if cool is not None:
                report["cool"] = [cool.value, self._until(outcome, now), outcome.reason]
            flag = _FLAGS.get(outcome.kind)
            if flag is not None:
                report["flag"] = [flag.value, outcome.reason or outcome.kind.value]
        with self._lock:
            self._buffer.append(report)
            del self._buffer[:-_MAX_BUFFERED]
        self._kick()

    def load(
        self, scope_ids: Sequence[str], key_ids: Sequence[str], now: float
    ) -> tuple[dict[str, SharedScope], dict[str, SharedKey]]:
        if self._skipping():
            return {}, {}
        try:
            scopes, keys = self._load(scope_ids, key_ids)
        except Exception as error:
            self._failed(error, [])
            return {}, {}
        self._answered()
        return (
            {sid: scope_of(doc) for sid, doc in scopes.items()},
            {
                kid: flag
                for kid, doc in keys.items()
                if (flag := key_of(doc, now)).state is not KeyState.AVAILABLE
            },
        )

    def flush(self) -> None:
        """Send every buffered report and usage record now (also before a process exits).

        Flushes take turns: one that returns has seen an earlier one (the flusher's) finish.
        """
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        if self._closed:
            return
        if self._buffer and not self._skipping():  # only spend a retry on something to send
            batch = self._take()
            try:
                if batch:  # (a reservation may have taken it meanwhile)
                    self._exchange(batch, None)
            except Exception as error:
                self._failed(error, batch)
                return
            self._answered()
        if isinstance(self.ledger, GuardedLedger):
            self.ledger.flush()

    def close(self) -> None:
        with self._flush_lock:
            self._flush()
            self._closed = True
            self._close()
        self._pending.set()  # the flusher sees `_closed` and ends

    @property
    def degraded(self) -> bool:
        """The backend did not answer last time: calls route on local state."""
        return self._down_since is not None

    # -- for subclasses ---------------------------------------------------------------------

    def _exchange(self, batch: list[Doc], request: Doc | None) -> Doc | None:
        """Apply `batch` (settle reports) then `request` (a reservation) atomically; return
        the reservation's reply."""
        raise NotImplementedError

    def _load(self, scope_ids: Sequence[str], key_ids: Sequence[str]) -> tuple[Doc, Doc]:
        raise NotImplementedError

    def _close(self) -> None:
        """Release connections."""

    # -- internals --------------------------------------------------------------------------

    def _lease_id(self, lease: Lease) -> str:
        pid = os.getpid()
        if pid != self._pid:  # a fresh token per process: forked workers never share lease ids
            self._pid, self._token = pid, secrets.token_hex(6)
        return f"{self._token}:{lease.seq}"

    def _until(self, outcome: Outcome, now: float) -> float:
        if outcome.retry_at is not None:
            return outcome.retry_at
        if outcome.kind is OutcomeKind.RATE_LIMITED:
            return now + self._settings.default_cooldown_seconds
        return now + self._settings.default_exhausted_seconds

    def _take(self) -> list[Doc]:
        with self._lock:
            batch, self._buffer = self._buffer, []
        return batch

    def _skipping(self) -> bool:
        """While the store is down, skip it; once a second one caller (or the flusher) tries
        it again while the others keep skipping, so an unreachable host stalls one call."""
        if self._down_since is None:
            return False
        now = time.monotonic()
        with self._lock:
            if now < self._retry_at:
                return True
            self._retry_at = now + _RETRY_SECONDS
        return False

    def _failed(self, error: Exception, batch: list[Doc]) -> None:
        with self._lock:
            self._buffer[:0] = batch  # sent again when the store answers; releases are idempotent
            del self._buffer[:-_MAX_BUFFERED]
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
            self._retry_at = time.monotonic() + _RETRY_SECONDS
        if first:
            reason = f"{type(error).__name__}: {error}"[:200]
            self._emit(StoreDegraded(self.description, reason, time.time()))
        else:
            _log.debug("keyrouter: the store %s is still unreachable", self.description)

    def _answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is None:
            return
        seconds = time.monotonic() - since
        self._emit(StoreRecovered(self.description, seconds, time.time()))
        self._pending.set()

    def _emit(self, event: Event) -> None:
        """Through the book's listeners (which also log it: a warning for `StoreDegraded`)."""
        (self.listeners or Listeners()).emit([event])

    def _kick(self) -> None:
        """Something is buffered: have the flusher send it unless a reservation takes it."""
        self._start_flusher()
        self._pending.set()

    def _start_flusher(self) -> None:
        thread = self._flusher
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._flusher is not None and self._flusher.is_alive():
                return
            self._flusher = threading.Thread(
                target=self._flush_loop, name="keyrouter-store", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed:
            if not self._pending.wait(_RETRY_SECONDS):
                if self._buffer or (isinstance(self.ledger, GuardedLedger) and self.ledger.held):
                    self.flush()  # still buffered: the store was down; try again
                continue
            self._pending.clear()
            time.sleep(_FLUSH_DELAY)  # let the next reservation carry the reports
            self.flush()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class BatchLedger(UsageLedger, Protocol):
    def append_many(self, records: Sequence[UsageRecord]) -> None: ...


class GuardedLedger:
    """A store's ledger that never raises and keeps usage records off the call's path.

    Records are buffered and written in batches by the store's flusher (a call records its
    usage with no round trip); budget reservations and settlements go straight through, as
    their atomicity needs. While the backend fails, those go to a local in-memory ledger and
    records wait (bounded) until it answers; the store reports the outage once.
    """

    def __init__(self, inner: BatchLedger, store: SharedStore, *, hold_ttl: float) -> None:
        self.inner = inner
        self.hold_ttl = hold_ttl
        self._store = store
        self._local = MemoryLedger(hold_ttl=hold_ttl)
        self._lock = threading.Lock()
        self._records: list[UsageRecord] = []

    @property
    def held(self) -> bool:
        return bool(self._records)

    def flush(self) -> None:
        """Write the buffered records (the store's flusher calls this)."""
        store = self._store
        with self._lock:
            records, self._records = self._records, []
        if not records or store._skipping():
            self._hold(records)
            return
        try:
            self.inner.append_many(records)
        except Exception as error:
            self._hold(records)
            store._failed(error, [])
        else:
            store._answered()

    def _hold(self, records: list[UsageRecord]) -> None:
        if records:
            with self._lock:
                self._records[:0] = records
                del self._records[:-_MAX_BUFFERED]

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        store = self._store
        if not store._skipping():
            try:
                result = getattr(self.inner, name)(*args, **kwargs)
            except Exception as error:
                store._failed(error, [])
            else:
                store._answered()
                return result
        return getattr(self._local, name)(*args, **kwargs)

    def append(self, record: UsageRecord) -> None:
        with self._lock:
            self._records.append(record)
            del self._records[:-_MAX_BUFFERED]
        self._store._kick()

    def totals(
        self, by: GroupBy, *, since: float | None = None, until: float | None = None
    ) -> dict[str, UsageTotals]:
        self.flush()  # a process reads its own records
        return cast("dict[str, UsageTotals]", self._call("totals", by, since=since, until=until))

    def records(
        self, *, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[UsageRecord]:
        self.flush()
        return cast(
            "list[UsageRecord]", self._call("records", since=since, until=until, limit=limit)
        )

    def spend(self, budget_id: str, period: str) -> BudgetSpend:
        return cast("BudgetSpend", self._call("spend", budget_id, period))

    def reserve(
        self, claims: Sequence[BudgetClaim], amount_usd: float, hold: str | None = None
    ) -> BudgetSpend | None:
        return cast("BudgetSpend | None", self._call("reserve", claims, amount_usd, hold))

    def settle(
        self,
        claims: Sequence[BudgetClaim],
        reserved_usd: float,
        spent_usd: float,
        hold: str | None = None,
    ) -> None:
        """A hold made locally during an outage and settled in the store once it answers is
        unknown there (nothing released, the spend added) and released here as well."""
        self._call("settle", claims, reserved_usd, spent_usd, hold)
        if hold is not None:
            self._local.settle(claims, 0.0, 0.0, hold)

    def mark_crossed(self, budget_id: str, period: str, threshold: float) -> bool:
        return bool(self._call("mark_crossed", budget_id, period, threshold))
