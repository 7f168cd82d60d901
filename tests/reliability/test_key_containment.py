"""A pool key is written only into requests to its own pool's host, for every SDK.

Over real sockets: a provider that redirects to another host, a request the routed client
sends to another base URL, and a client built with the user's own key. The other host is a
second fake provider reached as `localhost` (a different host from `127.0.0.1`); it records
every credential it is sent. (tests/transports, tests/integration/test_azure.py and
tests/any_api cover the same rules on mock transports.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider, Fault
from keyrouter.transports.route import PLACEHOLDER_CREDENTIAL
from tests.reliability._sdks import SDKS, Sdk, outcome

HEADER = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}


@pytest.fixture
def elsewhere() -> Iterator[FakeProvider]:
    with FakeProvider([]) as other:
        yield other


def url_of(other: FakeProvider) -> str:
    return other.url.replace("127.0.0.1", "localhost")


def credentials_seen(other: FakeProvider) -> set[str | None]:
    assert other.requests, "the request never reached the other host"
    return {r.key for r in other.requests}


def http_client(sdk: Sdk, client: Any) -> Any:
    return client._api_client._httpx_client if sdk.name == "gemini" else client._client


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
def test_a_redirect_to_another_host_carries_no_pool_key(sdk: Sdk, elsewhere: FakeProvider) -> None:
    with FakeProvider([FakeKey(k) for k in sdk.keys]) as fake:
        fake.inject(Fault.redirect(f"{url_of(elsewhere)}/collect"))
        outcome(lambda: sdk.call(sdk.routed(fake, list(sdk.keys), 5.0), False))
        assert {r.key for r in fake.requests} <= set(sdk.keys)
    assert credentials_seen(elsewhere) & set(sdk.keys) == set()


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
def test_a_request_to_another_base_url_gets_no_pool_key(sdk: Sdk, elsewhere: FakeProvider) -> None:
    with FakeProvider([FakeKey(k) for k in sdk.keys]) as fake:
        client = sdk.routed(fake, list(sdk.keys), 5.0)
        assert outcome(lambda: sdk.call(client, False)) is None
        value = f"Bearer {PLACEHOLDER_CREDENTIAL}" if sdk.name == "openai" else None
        http = http_client(sdk, client)
        http.get(
            f"{url_of(elsewhere)}/v1/models",
            headers={HEADER[sdk.name]: value or PLACEHOLDER_CREDENTIAL},
        )
        http.get(f"{url_of(elsewhere)}/v1/models")
    assert credentials_seen(elsewhere) & set(sdk.keys) == set()


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
def test_a_client_built_with_the_users_own_key_never_gets_a_pool_key(sdk: Sdk) -> None:
    own = {
        "openai": "sk-proj-rel-users-own-key-00000000001",
        "anthropic": "sk-ant-api03-rel-users-own-000000001",
        "gemini": "AIzaSyRelUsersOwn0000000000000000001",
    }[sdk.name]
    with FakeProvider([FakeKey(k) for k in (*sdk.keys, own)]) as fake:
        keyrouter.patch(**{sdk.name: list(sdk.keys)})
        client = sdk.plain(fake, own, 5.0)  # built after patch(): hooked, but not ours
        for stream in (False, True):
            assert outcome(lambda s=stream: sdk.call(client, s)) is None  # type: ignore[misc]
        assert {r.key for r in fake.requests} == {own}


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
def test_the_request_an_sdk_keeps_shows_no_pool_key(sdk: Sdk) -> None:
    """`response.request` (raw responses, SDK exceptions) shows what the SDK built."""
    good, other = sdk.keys
    revoked = f"{other}-revoked"
    with FakeProvider([FakeKey(good), FakeKey(other), FakeKey(revoked, status="invalid")]) as fake:
        seen: list[Any] = []

        def keep(response: Any) -> None:
            seen.append(response.request)

        client = sdk.routed(fake, [revoked, good], 5.0)
        http = http_client(sdk, client)
        http.event_hooks["response"].append(keep)
        assert outcome(lambda: sdk.call(client, False)) is None
        assert outcome(lambda: sdk.call(client, True)) is None
        dead = sdk.routed(fake, [revoked], 5.0)
        http_client(sdk, dead).event_hooks["response"].append(keep)
        assert outcome(lambda: sdk.call(dead, False)) is not None
        assert fake.stats(good).count(200) == 2
    assert len(seen) == 3
    for request in seen:
        text = f"{request.url} {list(request.headers.items())}"
        assert not any(s in text for s in (good, other, revoked)), text
