"""Keys with their own base_url: OpenAI-compatible servers in one pool, failover across them."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

HOME = "sk-home-00000000000000000000000001"
AWAY = "sk-away-00000000000000000000000002"
AWAY_REVOKED = "sk-away-revoked-000000000000000003"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def servers() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    with (
        FakeProvider([FakeKey(HOME)]) as home,
        FakeProvider([FakeKey(AWAY), FakeKey(AWAY_REVOKED, status="invalid")]) as away,
    ):
        yield home, away


def test_each_key_goes_to_its_own_server_only(
    servers: tuple[FakeProvider, FakeProvider],
) -> None:
    home, away = servers
    client = keyrouter.KeyRoutedOpenAI(
        keys=[HOME, keyrouter.Key(AWAY, base_url=away.base_url)],
        base_url=home.base_url,
        objective="round_robin",
    )
    for _ in range(6):
        result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert isinstance(result, openai.types.chat.ChatCompletion)
    assert {r.key for r in home.requests} == {HOME}
    assert {r.key for r in away.requests} == {AWAY}
    assert home.stats(HOME).count(200) == 3
    assert away.stats(AWAY).count(200) == 3
    assert {r.path for r in away.requests} == {"/v1/chat/completions"}


def test_failover_from_a_compatible_server_back_to_the_clients_own(
    servers: tuple[FakeProvider, FakeProvider],
) -> None:
    home, away = servers
    client = keyrouter.KeyRoutedOpenAI(
        keys=[keyrouter.Key(AWAY_REVOKED, base_url=away.base_url), HOME],
        base_url=home.base_url,
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert away.stats(AWAY_REVOKED).requests == 1
    assert home.stats(HOME).count(200) == 1
    assert all(r.key == HOME for r in home.requests)
