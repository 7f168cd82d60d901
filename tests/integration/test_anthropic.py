"""Anthropic through keyrouter over real sockets: same types as the plain SDK, and failover."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

import keyrouter
from keyrouter import KeyState
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.integration._compare import dump

GOOD = "sk-ant-api03-int-good-0000000000001"
GOOD_2 = "sk-ant-api03-int-good-0000000000002"
REVOKED = "sk-ant-api03-int-revoked-0000000003"
SPENT = "sk-ant-api03-int-spent-000000000004"
BANNED = "sk-ant-api03-int-banned-00000000005"
LIMITED = "sk-ant-api03-int-limited-0000000006"
MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    keys = [
        FakeKey(GOOD),
        FakeKey(GOOD_2),
        FakeKey(REVOKED, status="invalid"),
        FakeKey(SPENT, status="insufficient_quota"),
        FakeKey(BANNED, status="forbidden"),
        FakeKey(LIMITED, rpm=1),
    ]
    with FakeProvider(keys) as provider:
        yield provider


def create(client: Any) -> Any:
    return client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)


SYNC_CALLS: dict[str, Callable[[anthropic.Anthropic], Any]] = {
    "create": create,
    "create_stream": lambda c: list(
        c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    ),
    "messages_stream": lambda c: _final(c),
    "count_tokens": lambda c: c.messages.count_tokens(model=MODEL, messages=MESSAGES),
}


def _final(client: anthropic.Anthropic) -> Any:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        return stream.get_final_message()


@pytest.mark.parametrize("name", sorted(SYNC_CALLS))
def test_sync_patched_and_plain_clients_agree(fake: FakeProvider, name: str) -> None:
    call = SYNC_CALLS[name]
    plain = call(anthropic.Anthropic(api_key=GOOD, base_url=fake.anthropic_base_url))
    keyrouter.patch(anthropic=[GOOD])
    patched = call(anthropic.Anthropic(base_url=fake.anthropic_base_url))
    assert type(patched) is type(plain)
    assert dump(patched) == dump(plain)
    assert fake.stats(GOOD).count(200) == 2


async def test_async_routed_client_agrees_with_plain(fake: FakeProvider) -> None:
    plain = anthropic.AsyncAnthropic(api_key=GOOD, base_url=fake.anthropic_base_url)
    routed = keyrouter.KeyRoutedAsyncAnthropic(keys=[GOOD], base_url=fake.anthropic_base_url)
    first = await create(plain)
    second = await create(routed)
    assert type(second) is type(first)
    assert dump(second) == dump(first)
    async with routed.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        text = await stream.get_final_text()
    assert text


def test_every_kind_of_bad_key_is_failed_over_and_hit_once(fake: FakeProvider) -> None:
    fake.inject(Fault.status(429), key=LIMITED)
    client = keyrouter.KeyRoutedAnthropic(
        keys=[REVOKED, SPENT, BANNED, LIMITED, GOOD], base_url=fake.anthropic_base_url
    )
    for _ in range(8):
        assert create(client).content
    for key in (REVOKED, SPENT, BANNED, LIMITED):
        assert fake.stats(key).requests <= 1, key[:24]
    assert fake.stats(GOOD).count(200) == 8
    states = {s.key: s.state for s in client.key_pool.snapshot()}
    assert states[keyrouter.Key(REVOKED).label] is KeyState.INVALID
    assert states[keyrouter.Key(BANNED).label] is KeyState.DISABLED
    assert states[keyrouter.Key(SPENT).label] is KeyState.EXHAUSTED


def test_overloaded_529_is_not_failed_over_to_other_keys(fake: FakeProvider) -> None:
    """529 is capacity shared by every customer: another key would not help."""
    fake.inject(Fault.status(529))
    client = keyrouter.KeyRoutedAnthropic(
        keys=[GOOD, GOOD_2], base_url=fake.anthropic_base_url, max_retries=0
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        create(client)
    assert info.value.status_code == 529
    assert fake.stats(GOOD).requests + fake.stats(GOOD_2).requests == 1


def test_rate_limits_are_learned_from_anthropic_headers(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedAnthropic(
        keys=[LIMITED, GOOD], base_url=fake.anthropic_base_url, objective="round_robin"
    )
    for _ in range(5):
        create(client)
    assert fake.stats(LIMITED).count(200) == 1
    assert fake.stats(LIMITED).count(429) == 0, "the 1-rpm limit was predicted, not hit"
    snap = {s.key: s for s in client.key_pool.snapshot()}[keyrouter.Key(LIMITED).label]
    assert snap.dimensions["requests"].limit == 1


def test_an_oauth_client_is_left_alone(fake: FakeProvider) -> None:
    keyrouter.patch(anthropic=[GOOD])
    client = anthropic.Anthropic(auth_token=GOOD_2, base_url=fake.anthropic_base_url)
    create(client)
    assert fake.stats(GOOD_2).count(200) == 1
    assert fake.stats(GOOD).requests == 0
