"""`keyrouter.route()` on a user's own httpx/httpx2 client, against a loopback weather API."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

import keyrouter
from keyrouter.core.events import KeyStateChanged
from keyrouter.core.health import KeyState
from keyrouter.core.pool import KeyPool
from keyrouter.errors import ConfigError
from tests.any_api._weather import Answer, WeatherAPI

GOOD = "wx-good-key-000000000000000001"
SPARE = "wx-spare-key-00000000000000002"
LIMITED = "wx-limited-key-000000000000003"
REVOKED = "wx-revoked-key-000000000000004"
ALL = [REVOKED, LIMITED, GOOD, SPARE]


@pytest.fixture
def api() -> Iterator[WeatherAPI]:
    with WeatherAPI(ALL, revoked=(REVOKED,)) as server:
        yield server


def states(pool: KeyPool) -> dict[str, KeyState]:
    """Each key's state by label (its name, else its fingerprint)."""
    return {s.key: s.state for s in pool.snapshot()}


@pytest.mark.parametrize("http", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_failover_on_401_and_429_then_steady_on_good_keys(
    api: WeatherAPI, http: ModuleType
) -> None:
    api.script(LIMITED, Answer(429, {"retry-after": "30"}))
    names = ["revoked", "limited", "good", "spare"]
    keys = [keyrouter.Key(k, name=n) for k, n in zip(ALL, names, strict=True)]
    with http.Client(base_url=api.url) as client:
        pool = keyrouter.route(client, keys=keys, header="X-API-Key")
        answers = [client.get("/weather", params={"city": "Lisbon"}) for _ in range(8)]
    assert [r.status_code for r in answers] == [200] * 8
    assert answers[0].json() == {"city": "Lisbon", "temp_c": 21}
    seen = api.credentials()
    assert seen.count(REVOKED) == 1, "a 401 key is never tried twice"
    assert seen.count(LIMITED) == 1, "a 429 key cools for its retry-after"
    assert seen.count(GOOD) + seen.count(SPARE) == 8
    assert states(pool)["revoked"] is KeyState.INVALID
    assert states(pool)["limited"] is KeyState.COOLING


async def test_async_client_fails_over(api: WeatherAPI) -> None:
    api.script(LIMITED, Answer(503), Answer(503), Answer(503))
    async with httpx2.AsyncClient(base_url=api.url) as client:
        pool = keyrouter.route(client, keys=[REVOKED, LIMITED, GOOD], header="X-API-Key")
        answers = [await client.get("/weather") for _ in range(4)]
    assert [r.status_code for r in answers] == [200] * 4
    assert api.credentials().count(REVOKED) == 1
    assert states(pool)[pool.keys[0].label] is KeyState.INVALID


async def test_async_httpx_query_parameter(api: WeatherAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        keyrouter.route(client, keys=[REVOKED, GOOD], query="key")
        response = await client.get("/weather", params={"city": "Porto"})
    assert response.status_code == 200
    last = api.seen[-1]
    assert last.query == {"city": ["Porto"], "key": [GOOD]}


def test_query_key_never_stays_in_the_url_or_the_log(
    api: WeatherAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[REVOKED, GOOD], query="key")
        response = client.get("/weather?city=Faro")
    assert response.status_code == 200
    assert [s.query.get("key") for s in api.seen] == [[REVOKED], [GOOD]]
    assert GOOD not in str(response.url)
    assert GOOD not in str(response.request.url)
    assert GOOD not in caplog.text
    assert REVOKED not in caplog.text
    assert "city=Faro" in caplog.text, "httpx did log the request"


def test_header_with_prefix(api: WeatherAPI) -> None:
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[GOOD], header="Authorization", prefix="Bearer ")
        assert client.get("/weather").status_code == 200
    assert api.seen[-1].headers["authorization"] == f"Bearer {GOOD}"


def test_writer_callable(api: WeatherAPI) -> None:
    calls: list[str] = []

    def sign(request: Any, secret: str) -> None:
        calls.append(secret)
        request.headers["Authorization"] = f"Token {secret}"
        request.headers["X-Signed"] = "yes"

    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[REVOKED, GOOD], writer=sign)
        assert client.get("/weather").status_code == 200
    assert calls == [REVOKED, GOOD]
    assert api.seen[-1].headers["authorization"] == f"Token {GOOD}"
    assert api.seen[-1].headers["x-signed"] == "yes"


def test_retry_after_is_honoured_with_one_key(api: WeatherAPI) -> None:
    api.script(GOOD, Answer(429, {"retry-after": "1"}))
    with httpx2.Client(base_url=api.url, timeout=10) as client:
        pool = keyrouter.route(client, keys=[GOOD], header="X-API-Key")
        response = client.get("/weather")
    assert response.status_code == 200
    first, second = api.seen
    assert second.at - first.at >= 0.95, "the retry waited for retry-after"
    assert pool.snapshot()[0].state is KeyState.AVAILABLE


def test_retry_after_beyond_max_wait_answers_at_once(api: WeatherAPI) -> None:
    api.script(GOOD, Answer(429, {"retry-after": "120"}))
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[GOOD], header="X-API-Key", max_wait=5)
        response = client.get("/weather")
        again = client.get("/weather")
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"
    assert 110 <= int(response.headers["retry-after"]) <= 120
    assert "keyrouter: tried" in response.json()["error"]["message"]
    assert again.status_code == 429
    assert len(api.seen) == 1, "the cooling key is not sent again"


def test_rate_limit_headers_say_when_to_come_back(api: WeatherAPI) -> None:
    # a 403 as GitHub sends it for a spent rate limit: remaining 0, reset as an epoch time
    epoch = str(int(time.time()) + 90)
    api.script(LIMITED, Answer(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": epoch}))
    with httpx2.Client(base_url=api.url) as client:
        pool = keyrouter.route(
            client, keys=[LIMITED, GOOD], header="X-API-Key", statuses={403: "rate_limited"}
        )
        for _ in range(3):
            assert client.get("/weather").status_code == 200
    limited = next(s for s in pool.snapshot() if s.key == pool.keys[0].label)
    assert limited.state is KeyState.COOLING
    assert limited.until is not None
    assert 80 < limited.until - time.time() <= 91
    assert api.credentials().count(LIMITED) == 1


def test_a_status_mapped_to_none_goes_back_to_the_caller(api: WeatherAPI) -> None:
    api.script(GOOD, Answer(503))
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[GOOD, SPARE], header="X-API-Key", statuses={503: None})
        assert client.get("/weather").status_code == 503
    assert len(api.seen) == 1


def test_a_request_to_another_host_never_gets_a_key(api: WeatherAPI) -> None:
    with httpx2.Client(base_url=api.url) as client:
        keyrouter.route(client, keys=[GOOD], header="X-API-Key")
        other = client.get(f"http://localhost:{api.port}/elsewhere")
        assert client.get("/weather").status_code == 200
    assert other.status_code == 401
    assert api.seen[0].host == "localhost"
    assert api.seen[0].credential is None
    assert api.credentials("/weather") == [GOOD]


def test_a_redirect_to_another_host_carries_no_key(api: WeatherAPI) -> None:
    api.redirect_to = f"http://localhost:{api.port}/landing"
    with httpx2.Client(base_url=api.url, follow_redirects=True) as client:
        keyrouter.route(client, keys=[GOOD], header="X-Weather-Key")
        client.get("/redirect")
    first, landing = api.seen
    assert first.headers["x-weather-key"] == GOOD
    assert landing.path == "/landing"
    assert "x-weather-key" not in landing.headers


def test_named_hosts_only(api: WeatherAPI) -> None:
    with httpx2.Client() as client:  # no base_url: the user names the hosts
        keyrouter.route(client, keys=[GOOD], header="X-API-Key", hosts=["127.0.0.1"])
        assert client.get(f"{api.url}/weather").status_code == 200
        assert client.get(f"http://localhost:{api.port}/weather").status_code == 401
    assert api.credentials() == [GOOD, None]


def test_events_reach_on_event(api: WeatherAPI) -> None:
    events: list[KeyStateChanged] = []
    stop = keyrouter.on_event(
        lambda e: events.append(e) if isinstance(e, KeyStateChanged) else None
    )
    try:
        with httpx2.Client(base_url=api.url) as client:
            keyrouter.route(client, keys=[REVOKED, GOOD], header="X-API-Key")
            client.get("/weather")
    finally:
        stop()
    assert any(e.new is KeyState.INVALID and REVOKED[-4:] in e.key for e in events)
    assert all(REVOKED not in repr(e) for e in events)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "route"),
        ({"header": "X-API-Key", "query": "key"}, "route"),
        ({"header": "Bad Header"}, "header"),
        ({"query": "key", "prefix": "Bearer "}, "prefix"),
        ({"header": "X-API-Key", "name": "openai"}, "name"),
        ({"header": "X-API-Key", "statuses": {200: "rate_limited"}}, "statuses"),
        ({"header": "X-API-Key", "statuses": {429: "later"}}, "statuses"),
        ({"header": "X-API-Key", "keys": []}, "keys"),
        ({"header": "X-API-Key", "max_attempts": 0}, "max_attempts"),
        ({"header": "X-API-Key", "max_wait": -1}, "max_wait"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    kwargs.setdefault("keys", [GOOD])
    with httpx2.Client(base_url="http://127.0.0.1:9") as client, pytest.raises(ConfigError) as e:
        keyrouter.route(client, **kwargs)
    caught = e
    assert caught.value.field == field
    assert GOOD not in str(caught.value)


def test_a_client_without_base_url_needs_hosts() -> None:
    with httpx2.Client() as client, pytest.raises(ConfigError, match="pass hosts="):
        keyrouter.route(client, keys=[GOOD], header="X-API-Key")


def test_not_an_http_client() -> None:
    with pytest.raises(ConfigError, match="expected an httpx or httpx2 Client"):
        keyrouter.route(object(), keys=[GOOD], header="X-API-Key")
