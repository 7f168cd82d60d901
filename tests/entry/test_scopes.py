"""Scoped pools: in force for their block, their thread and their asyncio task only."""

from __future__ import annotations

import asyncio
import threading

import openai
import pytest

import keyrouter
from tests.transports.mock_openai import MockOpenAI, chat, ok

GLOBAL = "sk-global-0000000000000000000000"
TENANT_A = "sk-tenant-a-00000000000000000000"
TENANT_B = "sk-tenant-b-00000000000000000000"


@pytest.fixture
def mock() -> MockOpenAI:
    return MockOpenAI({GLOBAL: ok(), TENANT_A: ok(), TENANT_B: ok()})


def test_scope_applies_inside_the_block_only(mock: MockOpenAI) -> None:
    keyrouter.patch(openai=[GLOBAL])
    client = openai.OpenAI(http_client=mock.client())
    with keyrouter.pool(openai=[TENANT_A]) as scope:
        chat(client)
        assert keyrouter.snapshot()["openai"][0].key == keyrouter.Key(TENANT_A).label
        with keyrouter.pool(openai=[TENANT_B]):
            chat(client)
        chat(client)
    chat(client)
    assert mock.hits == {TENANT_A: 2, TENANT_B: 1, GLOBAL: 1}
    assert scope.pools["openai"].keys[0].label == keyrouter.Key(TENANT_A).label


def test_scopes_override_a_key_routed_clients_own_pool(mock: MockOpenAI) -> None:
    client = keyrouter.KeyRoutedOpenAI(keys=[GLOBAL], http_client=mock.client())
    with keyrouter.pool(openai=[TENANT_A]):
        chat(client)
    chat(client)
    assert mock.hits == {TENANT_A: 1, GLOBAL: 1}


def test_scopes_are_isolated_across_threads(mock: MockOpenAI) -> None:
    keyrouter.patch(openai=[GLOBAL])
    client = openai.OpenAI(http_client=mock.client())
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker(keys: list[str] | None) -> None:
        try:
            if keys is None:
                barrier.wait()
                for _ in range(5):
                    chat(client)
                return
            with keyrouter.pool(openai=keys):
                barrier.wait()
                for _ in range(5):
                    chat(client)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in ([TENANT_A], [TENANT_B], None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert mock.hits == {TENANT_A: 5, TENANT_B: 5, GLOBAL: 5}


async def test_scopes_are_isolated_across_asyncio_tasks(mock: MockOpenAI) -> None:
    keyrouter.patch(openai=[GLOBAL])
    client = openai.AsyncOpenAI(http_client=mock.async_client())
    ready = asyncio.Event()

    async def call_n(n: int) -> None:
        for _ in range(n):
            await client.chat.completions.create(model="m", messages=[])
            await asyncio.sleep(0)

    async def tenant(keys: list[str]) -> None:
        async with keyrouter.pool(openai=keys):
            await ready.wait()
            await call_n(4)

    tasks = [asyncio.create_task(tenant([TENANT_A])), asyncio.create_task(tenant([TENANT_B]))]
    await asyncio.sleep(0)
    ready.set()
    await asyncio.gather(call_n(4), *tasks)
    assert mock.hits == {TENANT_A: 4, TENANT_B: 4, GLOBAL: 4}


async def test_tasks_created_inside_a_scope_inherit_it(mock: MockOpenAI) -> None:
    keyrouter.patch(openai=[GLOBAL])
    client = openai.AsyncOpenAI(http_client=mock.async_client())
    async with keyrouter.pool(openai=[TENANT_A]):
        task = asyncio.create_task(client.chat.completions.create(model="m", messages=[]))
    await task
    assert mock.hits == {TENANT_A: 1}


def test_empty_scope_is_a_config_error() -> None:
    with pytest.raises(keyrouter.ConfigError):
        keyrouter.pool()
    with pytest.raises(keyrouter.ConfigError):
        keyrouter.pool(openai=[])


def test_learned_state_is_shared_between_scopes_with_the_same_key(mock: MockOpenAI) -> None:
    from tests.transports.mock_openai import INVALID

    mock.answers[TENANT_A] = INVALID
    client = keyrouter.KeyRoutedOpenAI(keys=[GLOBAL], http_client=mock.client())
    with keyrouter.pool(openai=[TENANT_A, TENANT_B]):
        chat(client)
    with keyrouter.pool(openai=[TENANT_A, TENANT_B]):
        for _ in range(3):
            chat(client)
    assert mock.hits[TENANT_A] == 1


def test_one_pool_object_entered_by_many_threads_at_once(mock: MockOpenAI) -> None:
    """A per-tenant `pool` object shared by a server's worker threads: each thread's block
    ends its own scope, even when the first thread in is the first one out."""
    keyrouter.patch(openai=[GLOBAL])
    client = openai.OpenAI(http_client=mock.client())
    tenant = keyrouter.pool(openai=[TENANT_A])
    inside = threading.Barrier(4)
    turn = threading.Condition()
    arrived: list[int] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with tenant:
                with turn:
                    arrived.append(index)
                inside.wait(timeout=10)  # all four are in the block at once
                chat(client)
                with turn:  # leave in the order of arrival (not the reverse)
                    turn.wait_for(lambda: arrived[0] == index, timeout=10)
            with turn:
                arrived.pop(0)
                turn.notify_all()
            chat(client)  # after this thread's block: the global pool again
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert mock.hits == {TENANT_A: 4, GLOBAL: 4}


async def test_one_pool_object_entered_by_many_tasks_at_once(mock: MockOpenAI) -> None:
    keyrouter.patch(openai=[GLOBAL])
    client = openai.AsyncOpenAI(http_client=mock.async_client())
    tenant = keyrouter.pool(openai=[TENANT_A])
    gate = asyncio.Event()

    async def one(delay: float) -> None:
        async with tenant:
            await gate.wait()
            await client.chat.completions.create(model="gpt-4o-mini", messages=[])
            await asyncio.sleep(delay)
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])

    # The first task in is the first one out.
    tasks = [asyncio.create_task(one(0.01 * i)) for i in range(4)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert mock.hits == {TENANT_A: 4, GLOBAL: 4}


def test_leaving_a_block_never_entered_here_is_an_error() -> None:
    tenant = keyrouter.pool(openai=[TENANT_A])
    with pytest.raises(RuntimeError, match="never entered"):
        tenant.__exit__(None, None, None)
