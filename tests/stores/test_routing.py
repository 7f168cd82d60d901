"""Routing through a shared store, end to end: the SDK, the fake provider, `patch(store=...)`.

A second handle on the same store stands for another process: what it publishes, this one
adopts, and what this one learns, it can read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import keyrouter
from keyrouter.core.decision import Lease
from keyrouter.core.health import KeyState
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand
from keyrouter.core.registry import default_book
from keyrouter.errors import StoreError
from keyrouter.stores import open_store
from keyrouter.stores._base import SharedStore
from keyrouter.testing import FakeKey, FakeProvider
from tests.stores.conftest import REDIS_URL

GOOD = "sk-store-good-0000000000000000001"
LIMITED = "sk-store-limited-00000000000000002"
REVOKED = "sk-store-revoked-00000000000000003"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    prefix = request.getfixturevalue("redis_prefix")
    return f"{REDIS_URL}?prefix={prefix}"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    keys = [FakeKey(GOOD), FakeKey(LIMITED, rpm=30), FakeKey(REVOKED, status="invalid")]
    with FakeProvider(keys) as provider:
        yield provider


def other_process(url: str) -> SharedStore:
    store = open_store(url)
    assert isinstance(store, SharedStore)
    return store


def test_what_one_process_learns_another_reads(url: str, fake: FakeProvider) -> None:
    keyrouter.patch(openai=[REVOKED, LIMITED], store=url)
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    store = default_book().store
    assert store is not None
    store.close()  # sends what is buffered
    other = other_process(url)
    scopes, keys = other.load(
        [keyrouter.Key(LIMITED).scope_id], [keyrouter.Key(REVOKED).id], time.time()
    )
    assert keys[keyrouter.Key(REVOKED).id].state is KeyState.INVALID
    bucket = scopes[keyrouter.Key(LIMITED).scope_id].dimensions["requests"]
    assert bucket.limit == 30
    assert bucket.level <= 27.5  # three served, none in flight
    other.close()


def test_a_cooldown_published_elsewhere_keeps_this_process_off_the_key(
    url: str, fake: FakeProvider
) -> None:
    other = other_process(url)
    key = keyrouter.Key(LIMITED)
    now = time.time()
    lease = Lease(key, key.scope_id, 1, Demand(), now)
    other.reserve(lease, now)
    other.settle(
        lease, Outcome(OutcomeKind.RATE_LIMITED, 429, "rate_limit_exceeded", now + 60), [], now
    )
    other.close()
    keyrouter.patch(openai=[LIMITED, GOOD], store=url)
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fake.stats(LIMITED).requests == 0
    assert fake.stats(GOOD).count(200) == 4
    states = {s.key: s.state for s in keyrouter.snapshot()["openai"]}
    assert states[key.label] is KeyState.COOLING


def test_state_survives_a_restart(url: str, fake: FakeProvider) -> None:
    keyrouter.patch(openai=[REVOKED, GOOD], store=url)
    openai.OpenAI(base_url=fake.base_url).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    keyrouter.unpatch()  # closes the store, as a process exiting would
    default_book().reset()  # a fresh process knows nothing
    keyrouter.patch(openai=[REVOKED, GOOD], store=url)
    states = {s.key: s.state for s in keyrouter.snapshot()["openai"]}
    assert states[keyrouter.Key(REVOKED).label] is KeyState.INVALID  # before any call
    openai.OpenAI(base_url=fake.base_url).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert fake.stats(REVOKED).requests == 1  # only the first process ever tried it


def test_keyrouter_store_environment_variable(
    tmp_path: Path, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYROUTER_STORE", f"sqlite:///{tmp_path}/env.db")
    keyrouter.patch(openai=[GOOD])
    assert type(default_book().store).__name__ == "SQLiteStore"
    openai.OpenAI(base_url=fake.base_url).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert (tmp_path / "env.db").exists()
    keyrouter.patch(openai=[GOOD], store="memory://")
    assert default_book().store is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/x", "unknown store"),
        ("sqlite:///", "needs a file path"),
        ("sqlite:///x.db?lease_ttl=-1", "lease_ttl must be a positive number"),
    ],
)
def test_a_bad_store_url_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        keyrouter.patch(openai=[GOOD], store=url)
    assert default_book().store is None


def test_a_password_in_a_redis_url_never_shows() -> None:
    pytest.importorskip("redis")
    store = open_store("redis://:s3cret-pass@127.0.0.1:1/0")
    assert store is not None
    assert "s3cret" not in repr(store)
    assert "s3cret" not in getattr(store, "description", "")
    store.close()


def test_one_round_trip_per_call_on_the_callers_thread(
    url: str, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    keyrouter.patch(openai=[GOOD, LIMITED], store=url, usage=True)
    store = default_book().store
    assert isinstance(store, SharedStore)
    on_caller: list[bool] = []
    original = store._exchange

    def counted(batch: list[dict[str, object]], request: dict[str, object] | None) -> object:
        if threading.current_thread() is threading.main_thread():
            on_caller.append(request is not None)
        return original(batch, request)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_exchange", counted)
    ledger = store.ledger.inner  # type: ignore[attr-defined]
    write = ledger.append_many

    def counted_write(records: list[object]) -> None:
        if threading.current_thread() is threading.main_thread():
            on_caller.append(False)
        write(records)

    monkeypatch.setattr(ledger, "append_many", counted_write)
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    for _ in range(8):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert on_caller == [True] * 8  # one reservation each; reports and usage ride along
    store.flush()
    assert len(store.ledger.records()) == 8  # the usage records were written all the same
