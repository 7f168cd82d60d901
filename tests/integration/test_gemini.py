"""Gemini (google-genai) through keyrouter over real sockets: same types, failover, async."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

import keyrouter
from keyrouter import KeyState
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.integration._compare import dump

GOOD = "AIzaSyIntGood000000000000000000000001"
GOOD_2 = "AIzaSyIntGood000000000000000000000002"
REVOKED = "AIzaSyIntRevoked00000000000000000003"
MODEL = "gemini-2.5-flash"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    keys = [FakeKey(GOOD), FakeKey(GOOD_2), FakeKey(REVOKED, status="invalid")]
    with FakeProvider(keys) as provider:
        yield provider


def options(fake: FakeProvider) -> types.HttpOptions:
    return types.HttpOptions(base_url=fake.gemini_base_url)


def test_patched_and_plain_clients_agree(fake: FakeProvider) -> None:
    plain_client = genai.Client(api_key=GOOD, http_options=options(fake))
    plain = plain_client.models.generate_content(model=MODEL, contents="hi")
    plain_stream = list(plain_client.models.generate_content_stream(model=MODEL, contents="hi"))
    keyrouter.patch(gemini=[GOOD])
    client = genai.Client(http_options=options(fake))
    patched = client.models.generate_content(model=MODEL, contents="hi")
    patched_stream = list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert type(patched) is type(plain)
    assert dump(patched) == dump(plain)
    assert dump(patched_stream) == dump(plain_stream)
    assert fake.stats(GOOD).count(200) == 4


async def test_aio_routes_too(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedGenAIClient(keys=[REVOKED, GOOD], http_options=options(fake))
    result = await client.aio.models.generate_content(model=MODEL, contents="hi")
    chunks: list[Any] = [
        c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
    ]
    assert result.text
    assert chunks
    assert fake.stats(REVOKED).requests == 1
    assert fake.stats(GOOD).count(200) == 2


def test_a_bad_key_400_is_failed_over_and_marked_invalid(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedGenAIClient(keys=[REVOKED, GOOD], http_options=options(fake))
    for _ in range(4):
        assert client.models.generate_content(model=MODEL, contents="hi").text
    assert fake.stats(REVOKED).requests == 1
    (revoked,) = [s for s in client.key_pool.snapshot() if s.key == keyrouter.Key(REVOKED).label]
    assert revoked.state is KeyState.INVALID


def test_per_minute_429_fails_over_and_per_day_exhausts(fake: FakeProvider) -> None:
    fake.inject(Fault.status(429), key=GOOD, times=1)
    client = keyrouter.KeyRoutedGenAIClient(
        keys=[GOOD, GOOD_2], http_options=options(fake), objective="round_robin"
    )
    assert client.models.generate_content(model=MODEL, contents="hi").text
    fake.set_daily_limit(GOOD_2, 1)
    for _ in range(3):
        client.models.generate_content(model=MODEL, contents="hi")
    states = {s.key: s for s in client.key_pool.snapshot()}
    assert states[keyrouter.Key(GOOD_2).label].state is KeyState.EXHAUSTED


def test_every_key_bad_raises_the_sdks_own_error(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedGenAIClient(keys=[REVOKED], http_options=options(fake))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 400
    assert "keyrouter" in str(info.value)


def test_vertex_or_explicit_keys_are_left_alone(fake: FakeProvider) -> None:
    keyrouter.patch(gemini=[GOOD])
    client = genai.Client(api_key=GOOD_2, http_options=options(fake))
    client.models.generate_content(model=MODEL, contents="hi")
    assert fake.stats(GOOD_2).count(200) == 1
    assert fake.stats(GOOD).requests == 0


def test_repeated_asyncio_run_does_not_keep_closed_loops_connections(fake: FakeProvider) -> None:
    import asyncio

    client = keyrouter.KeyRoutedGenAIClient(keys=[GOOD], http_options=options(fake))

    async def one() -> None:
        await client.aio.models.generate_content(model=MODEL, contents="hi")

    for _ in range(4):
        asyncio.run(one())
    transport = client._api_client._async_httpx_client._transport
    assert len(transport._inner) <= 1
    assert fake.stats(GOOD).count(200) == 4


def test_the_sdk_would_pick_aiohttp_here_but_routed_clients_use_keyrouters_transport(
    fake: FakeProvider,
) -> None:
    import importlib.util

    from google.genai import _api_client

    assert importlib.util.find_spec("aiohttp") is not None, "the test extra installs aiohttp"
    plain = genai.Client(api_key=GOOD, http_options=options(fake))
    routed = keyrouter.KeyRoutedGenAIClient(keys=[GOOD], http_options=options(fake))
    assert plain._api_client._use_aiohttp()
    assert not routed._api_client._use_aiohttp()
    assert isinstance(routed._api_client, _api_client.BaseApiClient)
