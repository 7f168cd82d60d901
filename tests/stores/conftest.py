"""Fixtures for the store tests: one backend per test, opened as often as a test needs ("two
processes" are two handles on one backend). Redis tests use 127.0.0.1:6379 under a unique key
prefix and delete only their own keys; with no Redis they skip (visibly), under CI=true fail."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyrouter.stores._base import SharedStore
from keyrouter.stores.memory import MemoryBackend, MemoryStore

REDIS_URL = "redis://127.0.0.1:6379/0"

Opener = Callable[..., SharedStore]


def redis_answers(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def need_redis() -> None:
    if redis_answers():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("no Redis answers on 127.0.0.1:6379 and CI=true: the Redis tests must run")
    pytest.skip("no Redis answers on 127.0.0.1:6379 (start one: redis-server --save '')")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    need_redis()
    import redis

    prefix = f"keyrouter-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    names = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if names:
        client.delete(*names)
    client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a new handle on this test's backend: `open_store(lease_ttl=...)`."""
    opened: list[SharedStore] = []
    if request.param == "memory":
        backends: list[MemoryBackend] = []

        def opener(**options: float) -> SharedStore:
            if not backends:  # made by the first handle, with its hold_ttl (one ledger)
                backends.append(MemoryStore(**options).backend)
            return MemoryStore(backends[0], **options)
    elif request.param == "sqlite":
        path = str(tmp_path / "state.db")

        def opener(**options: float) -> SharedStore:
            from keyrouter.stores.sqlite_store import SQLiteStore

            return SQLiteStore(path, **options)
    else:
        prefix = request.getfixturevalue("redis_prefix")

        def opener(**options: float) -> SharedStore:
            from keyrouter.stores.redis_store import RedisStore

            return RedisStore(REDIS_URL, prefix=prefix, **options)

    def tracked(**options: float) -> SharedStore:
        store = opener(**options)
        opened.append(store)
        return store

    yield tracked
    for store in opened:
        store.close()
