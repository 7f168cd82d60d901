"""Stateful resources stay with the scope that created them."""

from __future__ import annotations

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

ORG_A = "sk-pin-org-a-00000000000000000001"
ORG_B = "sk-pin-org-b-00000000000000000002"


def test_previous_response_id_goes_to_the_scope_that_stored_the_response() -> None:
    with FakeProvider([FakeKey(ORG_A, scope="a"), FakeKey(ORG_B, scope="b")]) as fake:
        client = keyrouter.KeyRoutedOpenAI(
            keys=[keyrouter.Key(ORG_A, scope="a"), keyrouter.Key(ORG_B, scope="b")],
            base_url=fake.base_url,
            objective="round_robin",
        )
        first = client.responses.create(model="gpt-4o-mini", input="remember 42")
        owner = next(r.key for r in fake.requests)
        for _ in range(6):
            client.responses.create(
                model="gpt-4o-mini", input="what was it?", previous_response_id=first.id
            )
        follow_ups = [r.key for r in fake.requests][1:]
    assert follow_ups == [owner] * 6


def test_requests_naming_nothing_known_are_routed_as_usual() -> None:
    with FakeProvider([FakeKey(ORG_A, scope="a"), FakeKey(ORG_B, scope="b")]) as fake:
        client = keyrouter.KeyRoutedOpenAI(
            keys=[keyrouter.Key(ORG_A, scope="a"), keyrouter.Key(ORG_B, scope="b")],
            base_url=fake.base_url,
            objective="round_robin",
        )
        for _ in range(4):
            client.responses.create(
                model="gpt-4o-mini", input="hi", previous_response_id="resp_notseenbyus0001"
            )
        used = {r.key for r in fake.requests}
    assert used == {ORG_A, ORG_B}


async def test_async_clients_pin_too() -> None:
    with FakeProvider([FakeKey(ORG_A, scope="a"), FakeKey(ORG_B, scope="b")]) as fake:
        client = keyrouter.KeyRoutedAsyncOpenAI(
            keys=[keyrouter.Key(ORG_A, scope="a"), keyrouter.Key(ORG_B, scope="b")],
            base_url=fake.base_url,
            objective="round_robin",
        )
        first = await client.responses.create(model="gpt-4o-mini", input="remember 42")
        for _ in range(4):
            await client.responses.create(
                model="gpt-4o-mini", input="and?", previous_response_id=first.id
            )
        keys = [r.key for r in fake.requests]
    assert len(set(keys)) == 1
