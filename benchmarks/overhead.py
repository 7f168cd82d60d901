"""Time per call: a keyrouter-patched `openai` client vs the plain SDK, side by side.

The fake provider runs in its own process on loopback with no added latency (the hardest
case for a ratio: nothing hides keyrouter's own cost). Contenders alternate call by call
(plain, keyrouter, keyrouter, plain, ...), so drift in the machine's speed hits both alike;
every round builds fresh clients (and connections). The table shows the median time per call
over all rounds and the ratio to the plain SDK.

    python -m benchmarks.overhead [--rounds 6] [--calls 150] [--keys 8 1000] [--vs litellm]

With `--vs litellm`, LiteLLM's Router (one deployment per key, the same fake provider) makes
the same calls through `Router.completion` / `acompletion`, against the plain SDK again, in a
process of its own: LiteLLM runs background threads that would slow the other contenders.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
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
WARM_UP = 20


def sync_call(client: openai.OpenAI, stream: bool) -> Callable[[], None]:
    def call() -> None:
        if stream:
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass
        else:
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


def litellm_sync(router: Any, stream: bool) -> Callable[[], None]:
    def call() -> None:
        answer = router.completion(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
        if stream:
            for _ in answer:
                pass

    return call


def litellm_async(router: Any, stream: bool) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        answer = await router.acompletion(model="gpt-4o-mini", messages=MESSAGES, stream=stream)
        if stream:
            async for _ in answer:
                pass

    return call


def interleaved_sync(calls: dict[str, Callable[[], None]], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - started)
    return times


async def interleaved_async(
    calls: dict[str, Callable[[], Awaitable[None]]], n: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            await calls[name]()
            times[name].append(time.perf_counter() - started)
    return times


def one_round(
    base_url: str,
    mode: str,
    stream: bool,
    calls: int,
    loop: asyncio.AbstractEventLoop,
    litellm_keys: list[str] | None,
) -> dict[str, list[float]]:
    """Fresh clients; warm up; then `calls` alternating calls per contender."""
    router = litellm_router(litellm_keys, base_url) if litellm_keys else None
    if mode == "sync":
        sync_clients: dict[str, Any] = {
            # An explicit key that is not a pool key: the SDK, untouched by keyrouter.
            "plain": openai.OpenAI(api_key=PLAIN_KEY, base_url=base_url),
            "keyrouter": openai.OpenAI(base_url=base_url),
        }
        funcs = {name: sync_call(c, stream) for name, c in sync_clients.items()}
        if router is not None:
            funcs["keyrouter"] = litellm_sync(router, stream)
        interleaved_sync(funcs, WARM_UP)
        result = interleaved_sync(funcs, calls)
        for client in sync_clients.values():
            client.close()
        return result
    async_clients: dict[str, Any] = {
        "plain": openai.AsyncOpenAI(api_key=PLAIN_KEY, base_url=base_url),
        "keyrouter": openai.AsyncOpenAI(base_url=base_url),
    }
    afuncs = {name: async_call(c, stream) for name, c in async_clients.items()}
    if router is not None:
        afuncs["keyrouter"] = litellm_async(router, stream)  # in its place: see --contender
    loop.run_until_complete(interleaved_async(afuncs, WARM_UP))
    result = loop.run_until_complete(interleaved_async(afuncs, calls))
    for client in async_clients.values():
        loop.run_until_complete(client.close())
    return result


def bench(pool_size: int, args: argparse.Namespace) -> list[list[object]]:
    keys = [f"sk-bench-{i:06d}-000000000000000000" for i in range(pool_size)]
    # LiteLLM gets keys of its own: given a pool key, its openai client would be routed.
    other = [f"sk-bench-litellm-{i:06d}-0000000000000" for i in range(pool_size)]
    litellm_keys = other if args.contender == "litellm" else None
    rows: list[list[object]] = []
    with fake_server([*keys, *(litellm_keys or ()), PLAIN_KEY]) as base_url:
        loop = asyncio.new_event_loop()
        keyrouter.patch(openai=keys)
        try:
            for mode in ("sync", "async"):
                for stream in (False, True):
                    samples: dict[str, list[float]] = {}
                    for _ in range(args.rounds):
                        for name, times in one_round(
                            base_url, mode, stream, args.calls, loop, litellm_keys
                        ).items():
                            samples.setdefault(name, []).extend(times)
                    plain = statistics.median(samples["plain"])
                    routed = statistics.median(samples["keyrouter"])
                    row: list[object] = [
                        f"{mode}{' stream' if stream else ''}",
                        pool_size,
                        f"{plain * 1e6:.0f} µs",
                        f"{routed * 1e6:.0f} µs",
                        f"{routed / plain:.3f}x",
                        f"{(routed - plain) * 1e6:+.0f} µs",
                    ]
                    rows.append(row)
        finally:
            keyrouter.unpatch()
            loop.run_until_complete(loop.shutdown_asyncgens())  # streams' generators, closed
            loop.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--keys", type=int, nargs="+", default=[8, 1000])
    parser.add_argument("--vs", choices=["litellm"], default=None)
    parser.add_argument("--contender", choices=["keyrouter", "litellm"], default="keyrouter")
    args = parser.parse_args()
    if args.vs == "litellm" and importlib.util.find_spec("litellm") is None:
        print("litellm is not installed: `pip install litellm` to compare (skipped)")
        args.vs = None
    rows = [row for size in args.keys for row in bench(size, args)]
    if args.contender == "litellm":
        print(json.dumps(rows))
        return
    if args.vs == "litellm":
        child = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "benchmarks.overhead", "--contender", "litellm"]
            + ["--rounds", str(args.rounds), "--calls", str(args.calls), "--keys"]
            + [str(k) for k in args.keys],
            capture_output=True,
            text=True,
            check=True,
        )
        for row, other in zip(rows, json.loads(child.stdout.splitlines()[-1]), strict=True):
            row += [other[3], other[4].replace("x", "x vs its plain")]
    print(
        f"\nmedian time per call over {args.rounds} rounds x {args.calls} calls per contender, "
        "alternating call by call; fake provider in its own process, no added latency\n"
    )
    headers = ["mode", "keys", "plain SDK", "keyrouter", "ratio", "added"]
    if args.vs == "litellm":
        headers += ["LiteLLM Router", "ratio"]
    print(render_table(headers, rows))


if __name__ == "__main__":
    main()
