"""Throughput with 256 concurrent async callers: a keyrouter-patched `openai.AsyncOpenAI` vs
the plain SDK, against the fake provider (its own process, loopback, no added latency).

Each round gives every contender a fresh client and the same total number of chat
completions, shared by 256 tasks in a closed loop; contenders alternate round by round
(plain, keyrouter, keyrouter, plain, ...). The table shows the median calls per second over
the rounds and the ratio to the plain SDK.

    python -m benchmarks.concurrency [--rounds 6] [--calls 1024] [--callers 256] [--keys 8]
                                     [--vs litellm]

With `--vs litellm`, LiteLLM's Router (one deployment per key, same fake provider) runs the
same load through `Router.acompletion`, in a second phase against the plain SDK again: once
imported, LiteLLM's background threads slow everything in the process.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai

import keyrouter
from benchmarks._fake_server import fake_server
from benchmarks._litellm import litellm_router
from keyrouter.cli._table import render_table

MESSAGES = [{"role": "user", "content": "Say hello"}]
PLAIN_KEY = "sk-bench-plain-00000000000000000000"  # known to the server, not in the pool
Call = Callable[[], Awaitable[Any]]
Maker = Callable[[], tuple[Call, Callable[[], Awaitable[None]]]]


async def run(call: Call, calls: int, callers: int) -> float:
    """Calls per second for `calls` calls shared by `callers` tasks."""
    left = calls

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return calls / (time.perf_counter() - started)


def sdk_maker(base_url: str, api_key: str | None) -> Maker:
    def make() -> tuple[Call, Callable[[], Awaitable[None]]]:
        client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

        def call() -> Awaitable[Any]:
            return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

        return call, client.close

    return make


def litellm_maker(base_url: str, keys: list[str]) -> Maker:
    def make() -> tuple[Call, Callable[[], Awaitable[None]]]:
        router = litellm_router(keys, base_url)

        def call() -> Awaitable[Any]:
            return router.acompletion(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[no-any-return]

        async def close() -> None:
            return None

        return call, close

    return make


def rounds(makers: dict[str, Maker], args: argparse.Namespace) -> dict[str, list[float]]:
    """Calls per second of each contender in each round (after one warm-up round)."""
    loop = asyncio.new_event_loop()
    rates: dict[str, list[float]] = {name: [] for name in makers}
    try:
        for index in range(args.rounds + 1):  # the first round only warms up
            names = list(makers) if index % 2 == 0 else list(makers)[::-1]
            for name in names:
                call, close = makers[name]()
                rate = loop.run_until_complete(run(call, args.calls, args.callers))
                loop.run_until_complete(close())
                if index:
                    rates[name].append(rate)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=1024)
    parser.add_argument("--callers", type=int, default=256)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--vs", choices=["litellm"], default=None)
    args = parser.parse_args()
    keys = [f"sk-bench-{i:06d}-000000000000000000" for i in range(args.keys)]
    # LiteLLM gets keys of its own: given a pool key, its openai client would be routed.
    others = [f"sk-bench-litellm-{i:06d}-0000000000000" for i in range(args.keys)]
    with_litellm = args.vs == "litellm"
    if with_litellm and importlib.util.find_spec("litellm") is None:
        print("litellm is not installed: `pip install litellm` to compare (skipped)")
        with_litellm = False
    rows = []
    with fake_server([*keys, *others, PLAIN_KEY]) as base_url:
        keyrouter.patch(openai=keys)
        try:
            phases = [
                {
                    "plain SDK": sdk_maker(base_url, PLAIN_KEY),
                    "keyrouter": sdk_maker(base_url, None),
                }
            ]
            for index, makers in enumerate(phases):
                rates = rounds(makers, args)
                plain = statistics.median(rates["plain SDK"])
                for name, r in rates.items():
                    if index and name == "plain SDK":
                        name = "plain SDK, with LiteLLM loaded"
                    rows.append(
                        [
                            name,
                            f"{statistics.median(r):.0f}/s",
                            f"{statistics.median(r) / plain:.3f}x",
                        ]
                    )
                if with_litellm and not index:
                    # A second phase: importing LiteLLM starts background threads that slow
                    # everything in the process, so it is compared with the plain SDK again.
                    phases.append(
                        {
                            "plain SDK": sdk_maker(base_url, PLAIN_KEY),
                            "LiteLLM Router": litellm_maker(base_url, others),
                        }
                    )
        finally:
            keyrouter.unpatch()
    print(
        f"\n{args.callers} concurrent async callers, {args.calls} calls per round, "
        f"{args.keys} keys; median over {args.rounds} interleaved rounds (target ≥ 0.97x)\n"
    )
    print(render_table(["contender", "throughput", "vs plain"], rows))


if __name__ == "__main__":
    main()
