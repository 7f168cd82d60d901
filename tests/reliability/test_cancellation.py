"""Cancellation releases everything a call holds: in-flight counts, reservations, queue places.

A call can end without an answer: its asyncio task is cancelled, a KeyboardInterrupt lands in
sync code, or the caller closes a stream early. Afterwards the pool must look exactly as if the
call had never been made: no key in flight, no quota reserved, no one queued, no probe held.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import openai
import pytest

import keyrouter
from keyrouter import KeyState
from keyrouter.core.health import BreakerSettings
from keyrouter.core.pool import KeyPool
from keyrouter.core.registry import default_book
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.reliability._sdks import MESSAGES, OPENAI_MODEL

A = "sk-rel-cancel-0000000000000000001"
B = "sk-rel-cancel-0000000000000000002"
BOUND = 10.0  # no wait below lasts longer


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider([FakeKey(A, rpm=6000), FakeKey(B, rpm=6000)]) as provider:
        yield provider


def held(pool: KeyPool) -> dict[str, int]:
    """What the pool holds for calls still under way (all zero when nothing is)."""
    book = default_book()
    with book.lock:
        probes = sum(book.keys[k.id].health.probe_in_flight for k in pool.keys if k.id in book.keys)
        reserved = sum(len(book.scope(k.scope_id).quota.in_flight) for k in pool.keys)
        queued = len(pool._waiters)
    in_flight = sum(s.in_flight for s in pool.snapshot())
    return {"in_flight": in_flight, "reserved": reserved, "queued": queued, "probes": probes}


NOTHING = {"in_flight": 0, "reserved": 0, "queued": 0, "probes": 0}


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


async def async_wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def async_client(fake: FakeProvider, keys: list[str]) -> openai.AsyncOpenAI:
    return keyrouter.KeyRoutedAsyncOpenAI(keys=keys, base_url=fake.base_url, max_retries=0)


def sync_client(fake: FakeProvider, keys: list[str]) -> openai.OpenAI:
    return keyrouter.KeyRoutedOpenAI(keys=keys, base_url=fake.base_url, max_retries=0)


async def test_a_task_cancelled_in_flight_releases_its_key_and_reservation(
    fake: FakeProvider,
) -> None:
    client = async_client(fake, [A, B])
    await client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)  # learn limits
    fake.inject(Fault.delay(BOUND), times=1)
    task = asyncio.create_task(
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    )
    await async_wait_for(lambda: held(client.key_pool)["in_flight"] == 1, "the call to go out")
    assert held(client.key_pool)["reserved"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert held(client.key_pool) == NOTHING
    assert {s.state for s in client.key_pool.snapshot()} == {KeyState.AVAILABLE}


async def test_a_task_cancelled_while_queued_leaves_the_queue(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=[A], base_url=fake.base_url, max_retries=0, max_wait=BOUND
    )
    fake.inject(Fault.status(429, headers={"retry-after": "5"}), times=1)
    first = asyncio.create_task(
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    )
    await async_wait_for(lambda: held(client.key_pool)["queued"] == 1, "the call to queue")
    second = asyncio.create_task(
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    )
    await async_wait_for(lambda: held(client.key_pool)["queued"] == 2, "a second caller")
    first.cancel()
    second.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert held(client.key_pool) == NOTHING
    assert fake.stats(A).requests == 1


async def test_a_cancelled_half_open_probe_lets_the_next_call_probe(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(default_book(), "settings", BreakerSettings(open_seconds=0.2))
    client = async_client(fake, [A])
    fake.inject(Fault.status(500), times=3)
    for _ in range(3):  # one key: each 5xx goes back to the SDK, which raises it
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert client.key_pool.snapshot()[0].failures == 3
    await async_wait_for(
        lambda: client.key_pool.snapshot()[0].state is KeyState.HALF_OPEN, "the circuit to lapse"
    )
    fake.inject(Fault.delay(BOUND), times=1)
    probe = asyncio.create_task(
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    )
    await async_wait_for(lambda: held(client.key_pool)["probes"] == 1, "the probe to go out")
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    assert held(client.key_pool) == NOTHING
    await client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)  # probes again
    assert client.key_pool.snapshot()[0].state is KeyState.AVAILABLE


class _Interrupted(KeyboardInterrupt):
    pass


@contextlib.contextmanager
def interrupt_when(condition: Callable[[], bool]) -> Iterator[None]:
    """Raise `_Interrupted` (a KeyboardInterrupt) in this thread once `condition` holds."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted

    main = threading.get_ident()

    def send() -> None:
        wait_for(condition, "the moment to interrupt")
        signal.pthread_kill(main, signal.SIGALRM)

    previous = signal.signal(signal.SIGALRM, interrupt)
    sender = threading.Thread(target=send)
    try:
        sender.start()
        yield
    finally:
        sender.join(BOUND)
        signal.signal(signal.SIGALRM, previous)


def test_keyboard_interrupt_in_sync_code_releases_everything(fake: FakeProvider) -> None:
    client = sync_client(fake, [A, B])
    client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    fake.inject(Fault.delay(BOUND), times=1)
    with (
        interrupt_when(lambda: held(client.key_pool)["in_flight"] == 1),
        pytest.raises(_Interrupted),
    ):
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert held(client.key_pool) == NOTHING
    client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)  # the pool still works
    assert held(client.key_pool) == NOTHING


def test_keyboard_interrupt_while_waiting_for_capacity_leaves_the_queue(
    fake: FakeProvider,
) -> None:
    client = keyrouter.KeyRoutedOpenAI(
        keys=[A], base_url=fake.base_url, max_retries=0, max_wait=BOUND
    )
    fake.inject(Fault.status(429, headers={"retry-after": "5"}), times=1)
    with interrupt_when(lambda: held(client.key_pool)["queued"] == 1), pytest.raises(_Interrupted):
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    assert held(client.key_pool) == NOTHING
    assert fake.stats(A).requests == 1


def test_a_stream_closed_early_holds_nothing(fake: FakeProvider) -> None:
    client = sync_client(fake, [A, B])
    fake.inject(Fault.slow_stream(0.05), times=1)
    with client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, stream=True
    ) as stream:
        next(iter(stream))
    assert held(client.key_pool) == NOTHING
    assert [s.successes for s in client.key_pool.snapshot()] in ([1, 0], [0, 1])


async def test_an_async_stream_closed_early_holds_nothing(fake: FakeProvider) -> None:
    client = async_client(fake, [A, B])
    fake.inject(Fault.slow_stream(0.05), times=1)
    stream = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    assert held(client.key_pool) == NOTHING
