"""Many callers on one pool: keyrouter's counts equal the provider's, and no key is overrun.

64 threads (sync client) and 512 asyncio tasks (async client) share one pool whose keys' limits
are smaller than the run's demand, so callers must wait for capacity. Afterwards every key's
attempts and successes, as keyrouter counted them, equal what the fake provider saw, and the
provider (almost) never had to refuse a request: keyrouter did not send past a key's limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import openai
import pytest

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider
from tests.reliability._sdks import MESSAGES, OPENAI_MODEL

KEYS = [f"sk-rel-load-{i:020d}" for i in range(4)]
RPM = 100
TIME_SCALE = 10.0  # a rate-limit "minute" lasts 6 s: each key refills ~17 requests/s
DEADLINE = 60.0


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    keys = [FakeKey(secret, rpm=RPM, tpm=10_000_000) for secret in KEYS]
    with FakeProvider(keys, time_scale=TIME_SCALE) as provider:
        yield provider


def check_totals(fake: FakeProvider, pool: keyrouter.KeyRoutedOpenAI, calls: int) -> int:
    """Assert keyrouter's counts equal the provider's; returns the upstream 429s."""
    snapshots = {s.key: s for s in pool.key_pool.snapshot()}
    for secret in KEYS:
        mine, theirs = snapshots[keyrouter.Key(secret).label], fake.stats(secret)
        assert mine.attempts == theirs.requests, secret
        assert mine.successes == theirs.count(200), secret
        assert mine.rate_limited == theirs.count(429), secret
        assert mine.in_flight == 0
    assert sum(fake.stats(s).count(200) for s in KEYS) == calls
    refused = sum(fake.stats(s).count(429) for s in KEYS)
    # Predicted, not just enforced: keyrouter waits for capacity instead of sending into a 429.
    # Rarely (about one run in ten, one request) an answer that overtook another on the way
    # back makes the estimate one request too generous; the 429 is absorbed, never surfaced.
    assert refused <= calls // 100, f"{refused} requests sent past a key's limit"
    return refused


def test_64_threads_on_one_pool(fake: FakeProvider, figures: object) -> None:
    threads, per_thread = 64, 8
    client = keyrouter.KeyRoutedOpenAI(
        keys=KEYS, base_url=fake.base_url, max_retries=0, max_wait=DEADLINE
    )
    errors: list[BaseException] = []
    stop_at = time.monotonic() + DEADLINE

    def work() -> None:
        for _ in range(per_thread):
            if time.monotonic() > stop_at:
                return
            try:
                client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
            except openai.OpenAIError as error:
                errors.append(error)

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(DEADLINE)
    assert not any(w.is_alive() for w in workers)
    assert errors == []
    refused = check_totals(fake, client, threads * per_thread)  # type: ignore[arg-type]
    figures.record(  # type: ignore[attr-defined]
        "64 threads, one pool (4 keys x 100 rpm, time x10)",
        "calls / errors surfaced / upstream 429s",
        f"{threads * per_thread} / 0 / {refused} in {time.monotonic() - started:.1f}s",
    )


async def test_512_tasks_on_one_pool(fake: FakeProvider, figures: object) -> None:
    tasks = 512
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=KEYS, base_url=fake.base_url, max_retries=0, max_wait=DEADLINE
    )

    async def one() -> object:
        return await client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)

    started = time.monotonic()
    async with asyncio.timeout(DEADLINE):
        results = await asyncio.gather(*(one() for _ in range(tasks)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    refused = check_totals(fake, client, tasks)  # type: ignore[arg-type]
    figures.record(  # type: ignore[attr-defined]
        "512 asyncio tasks, one pool (4 keys x 100 rpm, time x10)",
        "calls / errors surfaced / upstream 429s",
        f"{tasks} / 0 / {refused} in {time.monotonic() - started:.1f}s",
    )
