"""Quota prediction over real sockets: limits learned from headers, shared scopes, waiting."""

from __future__ import annotations

import asyncio

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

MESSAGES = [{"role": "user", "content": "hi"}]
ORG_A = ["sk-org-a-one-0000000000000000001", "sk-org-a-two-0000000000000000002"]
SOLO = "sk-solo-000000000000000000000003"


def test_keys_of_one_scope_share_one_budget_and_are_never_overrun() -> None:
    keys = [FakeKey(k, rpm=10, scope="org-a") for k in ORG_A] + [FakeKey(SOLO, rpm=10)]
    with FakeProvider(keys, time_scale=60) as fake:  # 10 requests/s per bucket
        client = keyrouter.KeyRoutedOpenAI(
            keys=[keyrouter.Key(k, scope="org-a") for k in ORG_A] + [SOLO],
            base_url=fake.base_url,
            max_retries=0,
        )
        for _ in range(40):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        org = fake.scope_stats("org-a")
        solo = fake.stats(SOLO)
    assert org.count(429) == 0
    assert solo.count(429) == 0
    assert org.count(200) + solo.count(200) == 40
    # Two keys of one organisation are one budget: they served about as much as the solo key.
    assert abs(org.count(200) - solo.count(200)) <= 12


def test_a_scope_learned_from_headers_shows_in_the_snapshot() -> None:
    with FakeProvider([FakeKey(SOLO, rpm=600, tpm=90_000)]) as fake:
        client = keyrouter.KeyRoutedOpenAI(keys=[SOLO], base_url=fake.base_url)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
    (snap,) = client.key_pool.snapshot()
    assert snap.dimensions["requests"].limit == 600
    assert snap.dimensions["tokens"].limit == 90_000
    assert snap.dimensions["requests"].refill_per_second is not None
    assert snap.capacity is keyrouter.Capacity.ABUNDANT


async def test_async_callers_wait_for_refill_instead_of_failing() -> None:
    """More calls than the bucket holds: every caller succeeds, none is sent to be refused."""
    with FakeProvider([FakeKey(SOLO, rpm=6)], time_scale=120) as fake:  # 12 requests/s
        client = keyrouter.KeyRoutedAsyncOpenAI(keys=[SOLO], base_url=fake.base_url, max_retries=0)
        results = await asyncio.gather(
            *(
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                for _ in range(18)
            )
        )
        assert len(results) == 18
        assert fake.stats(SOLO).count(429) == 0
        assert fake.stats(SOLO).count(200) == 18
