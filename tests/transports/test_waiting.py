"""Waiting for capacity (bounded), and reservations released on every path."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx2
import openai
import pytest

import keyrouter
from keyrouter.core.registry import default_book
from tests.transports.mock_openai import COMPLETION, MockOpenAI, chat, error, ok

KEY = "sk-wait-0000000000000000000000001"


def limited_once(retry_after: str) -> tuple[MockOpenAI, list[float]]:
    calls: list[float] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return error(429, "rate_limit_exceeded", "requests", {"retry-after-ms": retry_after})(
                request
            )
        return ok()(request)

    return MockOpenAI({KEY: answer}), calls


def test_sync_call_waits_for_the_key_to_recover_instead_of_failing() -> None:
    mock, calls = limited_once("300")
    client = keyrouter.KeyRoutedOpenAI(keys=[KEY], http_client=mock.client(), max_retries=0)
    assert chat(client).choices[0].message.content == "hello"
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.3, "the second attempt honours retry-after-ms"


async def test_async_call_waits_for_the_key_to_recover_instead_of_failing() -> None:
    mock, calls = limited_once("300")
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=[KEY], http_client=mock.async_client(), max_retries=0
    )
    result = await client.chat.completions.create(model="m", messages=[])
    assert result.id == COMPLETION["id"]
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.3


def test_a_recovery_beyond_max_wait_fails_at_once_naming_it() -> None:
    mock, calls = limited_once("5000")
    client = keyrouter.KeyRoutedOpenAI(
        keys=[KEY], http_client=mock.client(), max_retries=0, max_wait=0.2
    )
    with pytest.raises(openai.RateLimitError, match=r"recovers in [45]\.\ds"):
        chat(client)
    assert len(calls) == 1


async def test_async_waiting_does_not_block_the_event_loop() -> None:
    mock, _ = limited_once("300")
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=[KEY], http_client=mock.async_client(), max_retries=0
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    await client.chat.completions.create(model="m", messages=[])
    tick_task.cancel()
    assert ticks >= 3, "the loop kept running while the call waited"


def in_flight() -> int:
    book = default_book()
    return sum(r.stats.in_flight for r in book.keys.values()) + sum(
        len(s.quota.in_flight) for s in book.scopes.values()
    )


async def test_cancelled_task_releases_its_reservation() -> None:
    started = asyncio.Event()

    async def slow(request: httpx2.Request) -> httpx2.Response:
        started.set()
        await asyncio.sleep(30)
        return httpx2.Response(200, json=COMPLETION)

    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=[KEY], http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(slow))
    )
    task = asyncio.create_task(client.chat.completions.create(model="m", messages=[]))
    await started.wait()
    assert in_flight() == 2  # the key's counter and the scope's reservation
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert in_flight() == 0


def test_keyboard_interrupt_releases_the_reservation() -> None:
    def interrupt(request: httpx2.Request) -> httpx2.Response:
        raise KeyboardInterrupt

    client = keyrouter.KeyRoutedOpenAI(
        keys=[KEY], http_client=MockOpenAI({KEY: interrupt}).client()
    )
    with pytest.raises(KeyboardInterrupt):
        chat(client)
    assert in_flight() == 0


def test_a_stream_closed_early_leaves_nothing_reserved() -> None:
    def stream(request: httpx2.Request) -> httpx2.Response:
        chunks = [
            b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'
        ] * 50 + [b"data: [DONE]\n\n"]
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
        )

    client = keyrouter.KeyRoutedOpenAI(keys=[KEY], http_client=MockOpenAI({KEY: stream}).client())
    with client.chat.completions.create(model="m", messages=[], stream=True) as events:
        first = next(iter(events))
        assert first.choices[0].delta.content == "x"
    assert in_flight() == 0


def test_threads_waiting_on_one_key_are_served_in_arrival_order() -> None:
    """FIFO: with one request of capacity per refill, waiters are served as they came."""
    order: list[int] = []
    lock = threading.Lock()

    def answer(request: httpx2.Request) -> httpx2.Response:
        caller = int(request.headers.get("x-caller", "-1"))
        with lock:
            order.append(caller)
        # The first answer empties the bucket for half a second, so every caller queues.
        reset = "500ms" if caller < 0 else "50ms"
        return httpx2.Response(
            200,
            json=COMPLETION,
            headers={
                "x-ratelimit-limit-requests": "1",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": reset,
            },
        )

    mock = MockOpenAI({KEY: answer})
    client = keyrouter.KeyRoutedOpenAI(keys=[KEY], http_client=mock.client(), max_retries=0)
    chat(client)
    order.clear()
    threads = []
    for caller in range(5):
        thread = threading.Thread(
            target=lambda c=caller: client.chat.completions.create(
                model="m", messages=[], extra_headers={"x-caller": str(c)}
            )
        )
        thread.start()
        threads.append(thread)
        for _ in range(200):  # until this caller has joined the queue (bounded: 2 s)
            if len(client.key_pool._waiters) == caller + 1:
                break
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3, 4]
