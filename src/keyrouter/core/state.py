"""The book of everything learned about keys and scopes, shared by every pool in a process.

A key used by the global pool and by a scoped pool is one key: an invalid key found by one is
invalid for both, and a scope's quota is one quota. The book is the in-memory state (the
default store); every mutation happens under its one lock, which is never held across I/O.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keyrouter.core.events import Listeners
from keyrouter.core.health import BreakerSettings, KeyHealth, ScopeHealth
from keyrouter.core.quota import Capacity, ScopeQuota

if TYPE_CHECKING:
    from keyrouter.core.store import StateStore
    from keyrouter.core.usage import UsageLedger

__all__ = ["KeyRecord", "KeyStats", "ScopeRecord", "StateBook"]

_FAILURE_RATE_WEIGHT = 0.1
_MAX_PINS = 100_000


@dataclass(slots=True)
class KeyStats:
    """Counters for one key since the process started."""

    attempts: int = 0
    successes: int = 0
    rate_limited: int = 0
    failures: int = 0
    in_flight: int = 0
    failure_rate: float = 0.0
    last_used: float = 0.0

    def note_result(self, failed: bool) -> None:
        self.failure_rate += _FAILURE_RATE_WEIGHT * ((1.0 if failed else 0.0) - self.failure_rate)


@dataclass(slots=True)
class KeyRecord:
    label: str
    scope_id: str
    health: KeyHealth = field(default_factory=KeyHealth)
    stats: KeyStats = field(default_factory=KeyStats)


@dataclass(slots=True)
class ScopeRecord:
    health: ScopeHealth = field(default_factory=ScopeHealth)
    quota: ScopeQuota = field(default_factory=ScopeQuota)
    capacity: Capacity = Capacity.ABUNDANT


class StateBook:
    """Key and scope records by id, one lock, one sequence of reservation numbers."""

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self.lock = threading.Lock()
        self.keys: dict[str, KeyRecord] = {}
        self.scopes: dict[str, ScopeRecord] = {}
        self.listeners = Listeners()
        self.generation = 0
        """Bumped by `reset`, so pools know to rebuild their selection index."""
        self.store: StateStore | None = None
        """State shared with other processes (SQLite, Redis); None: this memory only. The
        transport confirms leases against it and reports answers to it, outside the lock."""
        self._ledger: UsageLedger | None = None  # made on first use: see `ledger`
        self._pins: OrderedDict[str, str] = OrderedDict()
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    def key(self, key_id: str, label: str, scope_id: str) -> KeyRecord:
        record = self.keys.get(key_id)
        if record is None:
            record = self.keys[key_id] = KeyRecord(label=label, scope_id=scope_id)
        return record

    def scope(self, scope_id: str) -> ScopeRecord:
        record = self.scopes.get(scope_id)
        if record is None:
            record = self.scopes[scope_id] = ScopeRecord()
        return record

    def pin(self, resource: str, scope_id: str) -> None:
        """Remember that `resource` (a file, batch, stored response...) belongs to a scope."""
        with self.lock:
            self._pins[resource] = scope_id
            self._pins.move_to_end(resource)
            while len(self._pins) > _MAX_PINS:
                self._pins.popitem(last=False)

    @property
    def has_pins(self) -> bool:
        """Whether any resource was pinned: until one is, requests need no scanning for ids."""
        return bool(self._pins)

    def pinned_scope(self, resources: Iterable[str]) -> str | None:
        """The scope owning the first of `resources` keyrouter saw created, if any."""
        with self.lock:
            return next((self._pins[r] for r in resources if r in self._pins), None)

    @property
    def ledger(self) -> UsageLedger:
        """Usage records and budget spend (a store may put a shared ledger here); an in-memory
        one is made on first use, so a pool that meters nothing never loads `core.usage`."""
        if self._ledger is None:
            from keyrouter.core.usage import MemoryLedger

            self._ledger = MemoryLedger()
        return self._ledger

    @ledger.setter
    def ledger(self, ledger: UsageLedger) -> None:
        self._ledger = ledger

    def reset(self) -> None:
        """Forget everything learned (tests; a fresh start after rotating every key)."""
        with self.lock:
            self.keys.clear()
            self.scopes.clear()
            self._pins.clear()
            if self._ledger is not None:
                from keyrouter.core.usage import MemoryLedger

                if isinstance(self._ledger, MemoryLedger):
                    self._ledger = None  # a fresh one on next use
            self.generation += 1
