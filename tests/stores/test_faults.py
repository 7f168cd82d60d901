"""Stores under faults: Redis stopped and restarted mid-run, a worker killed while it holds
reservations, a SQLite file killed mid-write, corrupt or locked."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import keyrouter
from keyrouter.core.budget import Budget, Spending
from keyrouter.core.decision import Lease
from keyrouter.core.events import Event, StoreDegraded, StoreRecovered
from keyrouter.core.keys import Key
from keyrouter.core.outcome import Outcome
from keyrouter.core.pricing import Price
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.core.registry import default_book
from keyrouter.errors import StoreError
from keyrouter.stores import _base, open_store
from keyrouter.stores._base import SharedStore
from keyrouter.stores.sqlite_store import SQLiteStore
from keyrouter.testing import FakeKey, FakeProvider
from tests.stores.conftest import REDIS_URL, need_redis, redis_answers

KEY_A = "sk-fault-aaaa-0000000000000000001"
KEY_B = "sk-fault-bbbb-0000000000000000002"
MESSAGES = [{"role": "user", "content": "hi"}]
NOW = 2_000_000.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayRedis:
    """A redis-server of this test's own on a free port (never the shared one on 6379)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("redis-server is not installed and CI=true")
            pytest.skip("redis-server is not installed: cannot stop and restart a Redis")
        self.binary = binary
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no"]
        self.process = subprocess.Popen(  # noqa: S603 - the installed redis-server
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            if redis_answers(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError("the throwaway redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


def test_redis_stopped_and_restarted_mid_run(
    throwaway_redis: ThrowawayRedis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="keyrouter")
    monkeypatch.setattr(_base, "_RETRY_SECONDS", 0.05)
    events: list[Event] = []
    keyrouter.on_event(events.append)
    with FakeProvider([FakeKey(KEY_A, rpm=600), FakeKey(KEY_B, rpm=600)]) as fake:
        keyrouter.patch(openai=[KEY_A, KEY_B], store=f"redis://127.0.0.1:{throwaway_redis.port}/0")
        client = openai.OpenAI(base_url=fake.base_url, max_retries=0)

        def calls(n: int) -> None:
            for _ in range(n):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        calls(10)
        throwaway_redis.stop()
        calls(10)  # no error reaches the caller
        degraded = [e for e in events if isinstance(e, StoreDegraded)]
        assert len(degraded) == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # one warning for the whole outage
        assert "store" in warnings[0].getMessage()
        assert f"127.0.0.1:{throwaway_redis.port}" in degraded[0].store
        throwaway_redis.start()  # empty: it kept nothing
        time.sleep(0.1)  # past the retry interval
        calls(10)
        assert sum(isinstance(e, StoreRecovered) for e in events) == 1
        assert sum(isinstance(e, StoreDegraded) for e in events) == 1
        store = default_book().store
        assert isinstance(store, SharedStore)
        store.flush()
        assert fake.stats(KEY_A).count(200) + fake.stats(KEY_B).count(200) == 30
    import redis

    client_r = redis.Redis(port=throwaway_redis.port)
    docs = [
        json.loads(client_r.get(name)) for name in client_r.scan_iter(match="keyrouter:scope:*")
    ]
    client_r.close()
    assert docs  # it rejoined: the calls after the restart are shared again
    for doc in docs:
        assert doc["leases"] == {}  # nothing from before or during the outage left counted
        assert doc["dims"]["requests"]["level"] <= 600


_CHILD = """
import sys, time
from keyrouter.core.decision import Lease
from keyrouter.core.keys import Key
from keyrouter.core.quota import Demand
from keyrouter.stores import open_store

store = open_store(sys.argv[1])
key = Key(sys.argv[2])
now = float(sys.argv[3])
count = 0
for seq in range(1, int(sys.argv[4]) + 1):
    grant = store.reserve(Lease(key, key.scope_id, seq, Demand(), now), now)
    assert grant is not None and grant.granted
    count += 1
    print(count, flush=True)
print("held", flush=True)
time.sleep(60)
"""


def _child(url: str, holds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _CHILD, url, KEY_A, str(NOW), str(holds)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db?lease_ttl=30"
    need_redis()
    prefix = request.getfixturevalue("redis_prefix")
    return f"{REDIS_URL}?prefix={prefix}&lease_ttl=30"


def _teach(store: SharedStore, remaining: float, now: float) -> float:
    """Report an answer saying `remaining` of 1000 are left; returns the shared level after
    one more reservation."""
    key = Key(KEY_A)
    first = Lease(key, key.scope_id, 10_000 + int(now), Demand(), now)
    store.reserve(first, now)
    observation = LimitObservation("requests", 1000, remaining, now + 600, now)
    store.settle(first, Outcome.success(), [observation], now)
    grant = store.reserve(Lease(key, key.scope_id, 20_000 + int(now), Demand(), now), now)
    assert grant is not None
    return grant.scope.dimensions["requests"].level


def test_a_killed_workers_reservations_expire(shared_url: str) -> None:
    child = _child(shared_url, holds=5)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "held":
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    store = open_store(shared_url)
    assert isinstance(store, SharedStore)
    try:
        assert _teach(store, 100, NOW) == pytest.approx(100 - 5 - 1)  # the dead one's 5 count
        assert _teach(store, 100, NOW + 31) == pytest.approx(100 - 1)  # ...until they expire
    finally:
        store.close()


def test_sqlite_killed_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    child = _child(f"sqlite:///{path}?lease_ttl=3600", holds=100_000)
    assert child.stdout is not None
    committed = 0
    for line in child.stdout:
        committed = int(line)
        if committed >= 200:
            break
    os.kill(child.pid, signal.SIGKILL)  # while it is still writing
    rest, _ = child.communicate(timeout=10)
    committed = max([committed, *(int(x) for x in rest.split() if x.isdigit())])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (doc,) = conn.execute("SELECT doc FROM keyrouter_scopes").fetchone()
    assert len(json.loads(doc)["leases"]) >= committed
    SQLiteStore(str(path)).close()  # and keyrouter opens it again


def test_a_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, it only has the name of one\n" * 200)
    with pytest.raises(StoreError, match="not a SQLite database or is corrupt") as info:
        keyrouter.patch(openai=[KEY_A], store=f"sqlite:///{path}")
    assert str(path) in str(info.value)
    assert default_book().store is None  # nothing half-configured


def test_a_locked_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            SQLiteStore(str(path), busy_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_sqlite_file_that_fails_mid_run_degrades_to_local_state(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    events: list[Event] = []
    keyrouter.on_event(events.append)
    with FakeProvider([FakeKey(KEY_A)]) as fake:
        keyrouter.patch(openai=[KEY_A], store=f"sqlite:///{path}")
        client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        holder = sqlite3.connect(path, isolation_level=None)
        store = default_book().store
        assert isinstance(store, SQLiteStore)
        store._busy_timeout = 0.05
        store._conn = None  # reconnect with the short timeout
        holder.execute("BEGIN EXCLUSIVE")  # another process hogs the file
        try:
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert fake.stats(KEY_A).count(200) == 4
    assert [type(e) for e in events if isinstance(e, StoreDegraded)] == [StoreDegraded]


def test_while_the_store_is_down_one_caller_at_a_time_tries_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unreachable host (a connect that hangs until its timeout) stalls one call a
    second, not every caller at once."""
    import threading

    from keyrouter.stores.memory import MemoryStore

    monkeypatch.setattr(_base, "_RETRY_SECONDS", 0.0)
    release = threading.Event()
    attempts: list[int] = []

    class Hanging(MemoryStore):
        def _exchange(self, batch: list[dict[str, object]], request: object) -> None:
            attempts.append(1)
            release.wait(10)
            raise ConnectionError("host unreachable")

    store = Hanging()
    key = Key(KEY_A)
    store._failed(ConnectionError("down"), [])  # already known to be down
    monkeypatch.setattr(_base, "_RETRY_SECONDS", 60.0)
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda i=i: results.append(
                store.reserve(Lease(key, key.scope_id, i, Demand(), NOW), NOW)
            )
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for _ in range(200):  # the other seven return at once, with no answer
        if len(results) == 7:
            break
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert attempts == [1]
    assert results == [None] * 8


_BUDGET_CHILD = """
import sys, time
from keyrouter.core.budget import Budget, Spending
from keyrouter.core.decision import Lease
from keyrouter.core.keys import Key
from keyrouter.core.pricing import Price
from keyrouter.core.quota import Demand
from keyrouter.stores import open_store

store = open_store(sys.argv[1])
key = Key(sys.argv[2])
spending = Spending(
    pool="p", keys=[key], budgets=[Budget(usd=0.0015, period="day", name=sys.argv[3])],
    ledger=lambda: store.ledger, price=lambda model: Price(1.0, 1.0), emit=lambda events: None,
)
now = time.time()
lease = Lease(key, key.scope_id, 1, Demand({"tokens": 1000.0}, "m"), now)
assert spending.reserve(lease, now) is None
print("held", flush=True)
time.sleep(60)
"""
BUDGET_DEMAND = Demand({"tokens": 1000.0}, "m")  # 0.001 USD at 1 USD per million tokens


def _spending(store: SharedStore, name: str) -> Spending:
    """What the child builds: room for one call's estimate, not two."""
    return Spending(
        pool="p",
        keys=[Key(KEY_A)],
        budgets=[Budget(usd=0.0015, period="day", name=name)],
        ledger=lambda: store.ledger,
        price=lambda model: Price(1.0, 1.0),
        emit=lambda events: None,
    )


def test_a_killed_workers_budget_holds_expire(shared_url: str) -> None:
    """A worker killed while holding a budget blocks it only until its hold expires: the
    next reservation, and the pool-wide check that only reads the budget, let calls through."""
    url = f"{shared_url}&hold_ttl=3"
    name = f"fault-{os.getpid()}-{time.monotonic_ns()}"
    child = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _BUDGET_CHILD, url, KEY_A, name], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stdout.close()
    store = open_store(url)
    assert isinstance(store, SharedStore)
    key = Key(KEY_A)
    try:
        spending = _spending(store, name)
        now = time.time()
        assert spending.pool_refusal(BUDGET_DEMAND, now) is not None  # the dead one's hold
        refused = spending.reserve(Lease(key, key.scope_id, 1, BUDGET_DEMAND, now), now)
        assert refused is not None  # (the same seq as the child's: another process's hold)
        for _ in range(300):  # ...until it expires (3 s after it was made)
            if spending.pool_refusal(BUDGET_DEMAND, time.time()) is None:
                break
            time.sleep(0.05)
        now = time.time()
        assert spending.pool_refusal(BUDGET_DEMAND, now) is None
        assert spending.reserve(Lease(key, key.scope_id, 2, BUDGET_DEMAND, now), now) is None
        (claim,) = {c for held in spending._open.values() for c in held.claims}
        assert store.ledger.spend(claim.budget_id, claim.period).reserved_usd == pytest.approx(
            0.001
        )  # only this process's hold now
    finally:
        store.close()
