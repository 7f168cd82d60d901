"""Time per call: a keyrouter-patched `openai` client vs the plain SDK, side by side.

The fake provider runs in its own process on loopback with no added latency (the hardest
case for a ratio: nothing hides keyrouter's own cost). Each round runs every contender for
`--calls` sequential calls, in an order that alternates between rounds; the table shows the
median time per call over rounds and the ratio to the plain SDK.

    python benchmarks/overhead.py [--rounds 15] [--calls 200] [--keys 8 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import openai

import keyrouter
from benchmarks._fake_server import fake_server
from keyrouter.cli._table import render_table

MESSAGES = [{"role": "user", "content": "Say hello"}]


def sync_call(client: openai.OpenAI, stream: bool) -> Callable[[], None]:
    if stream:

        def call() -> None:
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass
    else:

        def call() -> None:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    return call


def async_call(client: openai.AsyncOpenAI, stream: bool) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        if stream:
            async for _ in await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass
        else:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    return call


def time_sync(call: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n


def time_async(
    loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[None]], n: int
) -> float:
    async def run() -> float:
        started = time.perf_counter()
        for _ in range(n):
            await call()
        return (time.perf_counter() - started) / n

    return loop.run_until_complete(run())


def runner(
    mode: str,
    stream: bool,
    sync_client: openai.OpenAI,
    async_client: openai.AsyncOpenAI,
    loop: asyncio.AbstractEventLoop,
    calls: int,
) -> Callable[[], float]:
    """A function timing `calls` sequential calls of one kind on one client."""
    if mode == "sync":
        call = sync_call(sync_client, stream)
        return lambda: time_sync(call, calls)
    acall = async_call(async_client, stream)
    return lambda: time_async(loop, acall, calls)


def bench(pool_size: int, args: argparse.Namespace) -> list[list[object]]:
    keys = [f"sk-bench-{i:06d}-000000000000000000" for i in range(pool_size)]
    rows = []
    with fake_server(keys) as base_url:
        loop = asyncio.new_event_loop()
        plain_sync = openai.OpenAI(api_key=keys[0], base_url=base_url, max_retries=0)
        plain_async = openai.AsyncOpenAI(api_key=keys[0], base_url=base_url, max_retries=0)
        keyrouter.patch(openai=keys)
        routed_sync = openai.OpenAI(base_url=base_url, max_retries=0)
        routed_async = openai.AsyncOpenAI(base_url=base_url, max_retries=0)
        try:
            for mode in ("sync", "async"):
                for stream in (False, True):
                    contenders = {
                        "plain": runner(mode, stream, plain_sync, plain_async, loop, args.calls),
                        "keyrouter": runner(
                            mode, stream, routed_sync, routed_async, loop, args.calls
                        ),
                    }
                    for run in contenders.values():  # warm up connections and caches
                        run()
                    samples: dict[str, list[float]] = {name: [] for name in contenders}
                    names = list(contenders)
                    for round_index in range(args.rounds):
                        order = names if round_index % 2 == 0 else names[::-1]
                        for name in order:
                            samples[name].append(contenders[name]())
                    plain = statistics.median(samples["plain"])
                    routed = statistics.median(samples["keyrouter"])
                    rows.append(
                        [
                            f"{mode}{' stream' if stream else ''}",
                            pool_size,
                            f"{plain * 1e6:.0f} µs",
                            f"{routed * 1e6:.0f} µs",
                            f"{routed / plain:.3f}x",
                            f"{(routed - plain) * 1e6:+.0f} µs",
                        ]
                    )
        finally:
            keyrouter.unpatch()
            loop.run_until_complete(plain_async.close())
            loop.run_until_complete(routed_async.close())
            loop.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keys", type=int, nargs="+", default=[8, 1000])
    args = parser.parse_args()
    rows = [row for size in args.keys for row in bench(size, args)]
    print(
        f"\nmedian time per call over {args.rounds} interleaved rounds of {args.calls} calls; "
        "fake provider in its own process, no added latency\n"
    )
    print(render_table(["mode", "keys", "plain SDK", "keyrouter", "ratio", "added"], rows))


if __name__ == "__main__":
    main()
