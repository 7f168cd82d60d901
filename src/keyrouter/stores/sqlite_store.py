"""A store in one SQLite file: state survives restarts and is shared by processes on one machine.

WAL mode lets readers run beside the one writer; each exchange (buffered settle reports plus
one reservation) is a single `BEGIN IMMEDIATE` transaction, so processes take turns on the
write lock for microseconds and see each other's reservations at once. A process killed mid-
write leaves the last committed state and a readable file (`synchronous=NORMAL` in WAL mode
loses nothing a process crash can reach). A file that is not a database, or that another
process holds locked for longer than the busy timeout, is a `StoreError` when the store opens;
after that, a failing file degrades to local state like any outage.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from keyrouter.core.usage import DEFAULT_HOLD_TTL
from keyrouter.errors import StoreError
from keyrouter.stores import _docs
from keyrouter.stores._base import DEFAULT_LEASE_TTL, GuardedLedger, SharedStore
from keyrouter.stores._docs import Doc
from keyrouter.stores._sqlite_ledger import LEDGER_SCHEMA, SQLiteLedger

__all__ = ["SQLiteStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keyrouter_scopes (id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keyrouter_keys (id TEXT PRIMARY KEY, doc TEXT NOT NULL)",
)
_BUSY_TIMEOUT = 5.0
_CALL_BUSY_TIMEOUT = 1.0


class SQLiteStore(SharedStore):
    """State in the SQLite file at `path` (created if missing)."""

    def __init__(
        self,
        path: str,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        hold_ttl: float = DEFAULT_HOLD_TTL,
        busy_timeout: float = _BUSY_TIMEOUT,
    ) -> None:
        super().__init__(f"sqlite:///{path}", lease_ttl=lease_ttl)
        self.path = path
        self._busy_timeout = busy_timeout
        self._conn_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = -1
        try:
            with self._transaction() as conn:
                for statement in (*_SCHEMA, *LEDGER_SCHEMA):
                    conn.execute(statement)
                conn.execute("SELECT count(*) FROM keyrouter_scopes").fetchone()
        except sqlite3.Error as error:
            raise _open_error(path, error, busy_timeout) from None
        # From now on a call waits at most this long for another process's write (they take
        # microseconds); past it the call routes on local state instead of hanging.
        self._busy_timeout = min(busy_timeout, _CALL_BUSY_TIMEOUT)
        with self._conn_lock:
            self._connect().execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        ledger = SQLiteLedger(self._transaction, hold_ttl=hold_ttl)
        self.ledger = GuardedLedger(ledger, self, hold_ttl=hold_ttl)

    def _connect(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is None or self._conn_pid != pid:  # never use a connection across fork
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                raise sqlite3.OperationalError(f"unable to open database file: no {directory}")
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn, self._conn_pid = conn, pid
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._conn_lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _exchange(self, batch: list[Doc], request: Doc | None) -> Doc | None:
        with self._transaction() as conn:
            scopes: dict[str, Doc] = {}
            keys: dict[str, Doc | None] = {}
            changed_keys: set[str] = set()

            def scope(scope_id: str) -> Doc:
                if scope_id not in scopes:
                    scopes[scope_id] = (
                        _read(conn, "keyrouter_scopes", scope_id) or _docs.new_scope()
                    )
                return scopes[scope_id]

            def key(key_id: str) -> Doc | None:
                if key_id not in keys:
                    keys[key_id] = _read(conn, "keyrouter_keys", key_id)
                return keys[key_id]

            for report in batch:
                before = key(report["key"])
                after = _docs.settle(scope(report["scope"]), before, report)
                if after is not before:
                    keys[report["key"]] = after
                    changed_keys.add(report["key"])
            reply = None
            if request is not None:
                reply = _docs.reserve(scope(request["scope"]), key(request["key"]), request)
                reply = json.loads(json.dumps(reply))
            conn.executemany(
                "INSERT OR REPLACE INTO keyrouter_scopes (id, doc) VALUES (?, ?)",
                [(sid, json.dumps(doc)) for sid, doc in scopes.items()],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO keyrouter_keys (id, doc) VALUES (?, ?)",
                [(kid, json.dumps(keys[kid])) for kid in changed_keys],
            )
        return reply

    def _load(self, scope_ids: Sequence[str], key_ids: Sequence[str]) -> tuple[Doc, Doc]:
        with self._conn_lock:
            conn = self._connect()
            scopes = {s: d for s in scope_ids if (d := _read(conn, "keyrouter_scopes", s))}
            keys = {k: d for k in key_ids if (d := _read(conn, "keyrouter_keys", k))}
        return scopes, keys

    def _close(self) -> None:
        with self._conn_lock:
            if self._conn is not None and self._conn_pid == os.getpid():
                self._conn.close()
            self._conn = None


def _read(conn: sqlite3.Connection, table: str, row_id: str) -> Doc | None:
    row = conn.execute(f"SELECT doc FROM {table} WHERE id = ?", (row_id,)).fetchone()  # noqa: S608
    return json.loads(row[0]) if row else None


def _open_error(path: str, error: sqlite3.Error, busy_timeout: float) -> StoreError:
    text = str(error)
    if "locked" in text or "busy" in text:
        return StoreError(
            f"sqlite:///{path} is locked by another process (waited {busy_timeout:g}s); "
            "close whatever holds it open or use another file",
            field="store",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"sqlite:///{path} is not a SQLite database or is corrupt ({text}); move the file "
            "away (keyrouter recreates it) or point store= at another path",
            field="store",
        )
    return StoreError(f"sqlite:///{path} cannot be opened: {text}", field="store")
