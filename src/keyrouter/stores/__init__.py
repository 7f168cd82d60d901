"""State stores, chosen by URL: memory (the default), SQLite (one machine), Redis (many hosts).

    keyrouter.patch(openai=[...], store="sqlite:///keyrouter.db")      # or KEYROUTER_STORE
    keyrouter.patch(openai=[...], store="redis://127.0.0.1:6379/0")

`open_store` imports sqlite3 or redis only for the store asked for, so `import keyrouter`
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from keyrouter.errors import StoreError

if TYPE_CHECKING:  # the store protocol and ledgers load only when a store is used
    from keyrouter.core.state import StateBook
    from keyrouter.core.store import StateStore

__all__ = ["STORE_ENV", "attach_store", "describe_url", "open_store"]

STORE_ENV = "KEYROUTER_STORE"
DEFAULT_LEASE_TTL = 60.0
"""Seconds before a dead process's reservations expire in a shared store."""

_OPTIONS = {"lease_ttl", "hold_ttl", "prefix"}


def open_store(url: str) -> StateStore | None:
    """The store `url` names; None for `memory://` (the book is the memory store).

    `sqlite:///relative.db` and `sqlite:////absolute/path.db` (SQLAlchemy's spelling);
    `redis://[:password@]host:port/db`, `rediss://...`, `unix:///path.sock`. Options as query
    parameters: `lease_ttl` (seconds before a dead process's quota reservations expire,
    default 60), `hold_ttl` (seconds before its budget holds expire, default 900: longer than
    a call) and, for Redis, `prefix` (default `keyrouter:`).
    """
    if not isinstance(url, str) or not url.strip():
        raise StoreError("give a store URL such as sqlite:///keyrouter.db", field="store")
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in pairs if k in _OPTIONS}
    rest = "&".join(f"{k}={v}" for k, v in pairs if k not in _OPTIONS)
    lease_ttl = _seconds(options.get("lease_ttl"), "lease_ttl")
    ttls = {"lease_ttl": lease_ttl}
    if options.get("hold_ttl") is not None:  # else the ledger's default (core.usage stays unloaded)
        ttls["hold_ttl"] = _seconds(options["hold_ttl"], "hold_ttl")
    if scheme in ("memory", ""):
        if scheme == "" and url not in ("memory", ""):
            raise StoreError(_unknown(url), field="store")
        return None
    if scheme == "sqlite":
        path = url.split("://", 1)[1].split("?", 1)[0]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise StoreError("sqlite:/// needs a file path: sqlite:///keyrouter.db", field="store")
        from keyrouter.stores.sqlite_store import SQLiteStore

        sqlite = SQLiteStore(path, **ttls)
        sqlite.url = url
        return sqlite
    if scheme in ("redis", "rediss", "unix"):
        try:
            from keyrouter.stores.redis_store import RedisStore
        except ImportError:
            raise StoreError(
                "the Redis store needs the redis package: pip install 'keyrouter[redis]'",
                field="store",
            ) from None
        bare = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
        shared = RedisStore(
            bare,
            **ttls,
            prefix=options.get("prefix", "keyrouter:"),
            description=describe_url(url),
        )
        shared.url = url
        return shared
    raise StoreError(_unknown(url), field="store")


def attach_store(book: StateBook, store: StateStore | None) -> None:
    """Make `store` the book's shared state (None: memory only), closing the one it replaces.

    The store's ledger becomes the book's, so usage records and budget spend are shared and
    outlive the process (what `keyrouter report` reads)."""
    previous = book.store
    book.store = store
    if store is not None:
        store.listeners = book.listeners
        book.ledger = store.ledger
    elif previous is not None:
        from keyrouter.core.usage import MemoryLedger

        book.ledger = MemoryLedger()
    if previous is not None and previous is not store:
        previous.close()


def describe_url(url: str) -> str:
    """`url` with any password (and query) removed, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _seconds(value: str | None, name: str) -> float:
    if value is None:
        return DEFAULT_LEASE_TTL
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise StoreError(f"{name} must be a positive number of seconds, got {value!r}", field=name)
    return seconds


def _unknown(url: str) -> str:
    return (
        f"unknown store {describe_url(url)!r}; use memory://, sqlite:///path.db or "
        "redis://host:6379/0"
    )
