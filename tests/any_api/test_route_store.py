"""A routed httpx client shares key state through the store `patch(store=...)` opened."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import keyrouter
from keyrouter.core.decision import Lease
from keyrouter.core.health import KeyState
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand
from keyrouter.core.registry import default_book
from keyrouter.stores import open_store
from keyrouter.stores._base import SharedStore
from tests.any_api._weather import WeatherAPI

GOOD = "wx-store-good-000000000000001"
REVOKED = "wx-store-revoked-000000000002"


@pytest.fixture
def api() -> Iterator[WeatherAPI]:
    with WeatherAPI([GOOD, REVOKED], revoked=(REVOKED,)) as server:
        yield server


def other_process(url: str) -> SharedStore:
    store = open_store(url)
    assert isinstance(store, SharedStore)
    return store


def test_what_a_routed_client_learns_another_process_reads(api: WeatherAPI, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    keyrouter.patch(store=url)
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[REVOKED, GOOD], header="X-API-Key")
        assert client.get("/weather").status_code == 200
    store = default_book().store
    assert store is not None
    store.close()
    other = other_process(url)
    _, keys = other.load([], [keyrouter.Key(REVOKED).id], time.time())
    assert keys[keyrouter.Key(REVOKED).id].state is KeyState.INVALID
    other.close()


def test_a_cooldown_published_elsewhere_keeps_the_client_off_the_key(
    api: WeatherAPI, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    other = other_process(url)
    key = keyrouter.Key(GOOD)
    now = time.time()
    lease = Lease(key, key.scope_id, 1, Demand(), now)
    other.reserve(lease, now)
    other.settle(lease, Outcome(OutcomeKind.RATE_LIMITED, 429, "http_429", now + 60), [], now)
    other.close()
    spare = "wx-store-spare-00000000000003"
    api.keys.add(spare)
    keyrouter.patch(store=url)
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[GOOD, spare], header="X-API-Key")
        for _ in range(3):
            assert client.get("/weather").status_code == 200
    assert api.credentials() == [spare] * 3
