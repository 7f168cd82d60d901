"""Failover through the fake provider, over real sockets, with the SDK's own HTTP client."""

from __future__ import annotations

import openai
import pytest

import keyrouter
from keyrouter import KeyState
from keyrouter.testing import FakeProvider, Fault
from tests.integration.conftest import BANNED, GOOD, GOOD_2, LIMITED, REVOKED, SPENT

MESSAGES = [{"role": "user", "content": "hi"}]
BAD_KEYS = (LIMITED, SPENT, REVOKED, BANNED)


def test_mixed_pool_serves_every_call_and_hits_each_bad_key_at_most_once(
    fake: FakeProvider,
) -> None:
    fake.inject(Fault.status(429), key=LIMITED)  # rate-limited from the first call on
    keyrouter.patch(openai=[LIMITED, SPENT, REVOKED, BANNED, GOOD])
    client = openai.OpenAI(base_url=fake.base_url)
    for _ in range(12):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    for key in BAD_KEYS:
        assert fake.stats(key).requests <= 1, key[:12]
    assert fake.stats(GOOD).count(200) == 12
    states = {s.key: s.state for s in keyrouter.snapshot()["openai"]}
    assert states[keyrouter.Key(REVOKED).label] is KeyState.INVALID
    assert states[keyrouter.Key(BANNED).label] is KeyState.DISABLED
    assert states[keyrouter.Key(SPENT).label] is KeyState.EXHAUSTED


async def test_async_streaming_fails_over_before_the_first_byte(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=[REVOKED, SPENT, GOOD], base_url=fake.base_url, objective="round_robin"
    )
    for _ in range(3):
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text
    assert fake.stats(GOOD).count(200) == 3


def test_5xx_on_one_key_moves_traffic_and_the_sdk_never_sees_it(fake: FakeProvider) -> None:
    fake.inject(Fault.status(500), key=GOOD)
    client = keyrouter.KeyRoutedOpenAI(
        keys=[GOOD, GOOD_2], base_url=fake.base_url, objective="round_robin", max_retries=0
    )
    for _ in range(10):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fake.stats(GOOD_2).count(200) == 10
    assert fake.stats(GOOD).count(500) == 3  # then its circuit opened


def test_a_dropped_connection_fails_over(fake: FakeProvider) -> None:
    fake.inject(Fault.reset(), key=GOOD, times=1)
    client = keyrouter.KeyRoutedOpenAI(
        keys=[GOOD, GOOD_2], base_url=fake.base_url, objective="round_robin", max_retries=0
    )
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fake.stats(GOOD_2).count(200) + fake.stats(GOOD).count(200) == 4


def test_the_sdk_gets_its_own_error_once_when_no_key_can_serve(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedOpenAI(keys=[SPENT, REVOKED], base_url=fake.base_url)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "keyrouter: tried" in str(info.value)
    assert fake.stats(SPENT).requests + fake.stats(REVOKED).requests == 2


def test_rate_limited_key_is_learned_from_headers_and_not_overrun(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedOpenAI(
        keys=[LIMITED, GOOD], base_url=fake.base_url, objective="round_robin"
    )
    for _ in range(6):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fake.stats(LIMITED).count(200) == 1
    assert fake.stats(LIMITED).count(429) == 0, "the 1-rpm limit was predicted, not hit"
    assert fake.stats(GOOD).count(200) == 5
