"""A store in this process's memory: the reference the contract tests hold the others to.

Routing never needs it (the book already is the process's memory state, so the default adds
no I/O at all); it exists so the same suite can run against memory, SQLite and Redis, and so
two pools over separate books in one process can share state if someone wants that.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

from keyrouter.core.usage import DEFAULT_HOLD_TTL, MemoryLedger
from keyrouter.stores import _docs
from keyrouter.stores._base import DEFAULT_LEASE_TTL, SharedStore
from keyrouter.stores._docs import Doc

__all__ = ["MemoryBackend", "MemoryStore"]


class MemoryBackend:
    """The documents several `MemoryStore` handles share (as processes share a database)."""

    def __init__(self, *, hold_ttl: float = DEFAULT_HOLD_TTL) -> None:
        self.lock = threading.Lock()
        self.scopes: dict[str, Doc] = {}
        self.keys: dict[str, Doc] = {}
        self.ledger = MemoryLedger(hold_ttl=hold_ttl)


class MemoryStore(SharedStore):
    """`hold_ttl` sets the ledger's when this handle makes the backend; handles on a given
    backend share its ledger (one ledger, one expiry: as processes share one database)."""

    def __init__(
        self,
        backend: MemoryBackend | None = None,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        hold_ttl: float = DEFAULT_HOLD_TTL,
    ) -> None:
        super().__init__("memory://", lease_ttl=lease_ttl)
        self.backend = backend or MemoryBackend(hold_ttl=hold_ttl)
        self.ledger = self.backend.ledger

    def _exchange(self, batch: list[Doc], request: Doc | None) -> Doc | None:
        backend = self.backend
        with backend.lock:
            for report in batch:
                scope = backend.scopes.setdefault(report["scope"], _docs.new_scope())
                key = _docs.settle(scope, backend.keys.get(report["key"]), report)
                if key is not None:
                    backend.keys[report["key"]] = key
            if request is None:
                return None
            scope = backend.scopes.setdefault(request["scope"], _docs.new_scope())
            reply = _docs.reserve(scope, backend.keys.get(request["key"]), request)
            return copy.deepcopy(reply)  # the caller must not see later changes

    def _load(self, scope_ids: Sequence[str], key_ids: Sequence[str]) -> tuple[Doc, Doc]:
        backend = self.backend
        with backend.lock:
            scopes = {s: copy.deepcopy(backend.scopes[s]) for s in scope_ids if s in backend.scopes}
            keys = {k: dict(backend.keys[k]) for k in key_ids if k in backend.keys}
        return scopes, keys
