"""Goodput against real per-key rate limits: keyrouter vs naive round-robin, no limits configured.

The fake provider enforces heterogeneous token buckets (by default 6 keys at 60 rpm and 2 at
300 rpm, time compressed so a run takes ~20 s). 64 async callers run a closed loop. For each
contender we print: successful calls / the pool's theoretical capacity in the run (every
bucket's burst plus its refill over the run), errors surfaced to the caller, and upstream 429s
as a share of upstream calls. A second scenario puts keys in shared scopes (two keys of one
organisation drain one bucket), told to keyrouter only as `Key(scope=...)`.

    python benchmarks/capacity.py [--seconds 20] [--callers 64] [--time-scale 6]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from dataclasses import dataclass

import openai

import keyrouter
from keyrouter.cli._table import render_table
from keyrouter.core.registry import default_book
from keyrouter.testing import FakeKey, FakeProvider

MESSAGES = [{"role": "user", "content": "benchmark"}]


@dataclass(frozen=True)
class Scenario:
    name: str
    keys: list[FakeKey]
    scopes: list[str | None]

    def capacity(self, seconds: float, time_scale: float) -> float:
        """Burst plus refill of every distinct bucket over the run (requests dimension)."""
        buckets: dict[str, int] = {}
        for key in self.keys:
            buckets[key.scope or key.secret] = key.rpm or 0
        return sum(rpm + rpm / 60 * time_scale * seconds for rpm in buckets.values())


def scenarios() -> list[Scenario]:
    mixed = [FakeKey(f"sk-bench-small-{i:02d}-000000000000000000", rpm=60) for i in range(6)] + [
        FakeKey(f"sk-bench-large-{i:02d}-000000000000000000", rpm=300) for i in range(2)
    ]
    shared = [
        FakeKey(f"sk-bench-shared-{i:02d}-00000000000000000", rpm=rpm, scope=f"org-{i // 2}")
        for i, rpm in enumerate([60, 60, 60, 60, 300, 300, 120, 120])
    ]
    return [
        Scenario("8 keys: 6x60 rpm + 2x300 rpm", mixed, [None] * len(mixed)),
        Scenario("8 keys in 4 shared scopes", shared, [k.scope for k in shared]),
    ]


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    upstream: int = 0
    upstream_429: int = 0


async def closed_loop(call: object, callers: int, seconds: float) -> Result:
    result = Result()
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < deadline:
            try:
                await call()  # type: ignore[operator]
                result.ok += 1
            except openai.APIError:
                result.errors += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return result


async def run_keyrouter(fake: FakeProvider, sc: Scenario, callers: int, seconds: float) -> Result:
    keys = [
        keyrouter.Key(k.secret, scope=scope) for k, scope in zip(sc.keys, sc.scopes, strict=True)
    ]
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=keys, base_url=fake.base_url, max_retries=0, max_wait=seconds
    )

    async def call() -> None:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=16)

    result = await closed_loop(call, callers, seconds)
    await client.close()
    return result


async def run_round_robin(fake: FakeProvider, sc: Scenario, callers: int, seconds: float) -> Result:
    """What a hand-written pool does: rotate keys per call, let the SDK retry 429s (2 times)."""
    clients = [openai.AsyncOpenAI(api_key=k.secret, base_url=fake.base_url) for k in sc.keys]
    rotation = itertools.cycle(clients)

    async def call() -> None:
        await next(rotation).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=16
        )

    result = await closed_loop(call, callers, seconds)
    for client in clients:
        await client.close()
    return result


def measure(sc: Scenario, contender: str, args: argparse.Namespace) -> list[object]:
    default_book().reset()
    with FakeProvider(sc.keys, time_scale=args.time_scale, latency=args.latency) as fake:
        runner = run_keyrouter if contender == "keyrouter" else run_round_robin
        started = time.monotonic()
        result = asyncio.run(runner(fake, sc, args.callers, args.seconds))
        elapsed = time.monotonic() - started
        stats = [fake.stats(k.secret) for k in sc.keys]
    upstream = sum(s.requests for s in stats)
    rejected = sum(s.count(429) for s in stats)
    capacity = sc.capacity(elapsed, args.time_scale)
    return [
        sc.name,
        contender,
        result.ok,
        f"{capacity:.0f}",
        f"{result.ok / capacity:.1%}",
        result.errors,
        upstream,
        f"{rejected / max(1, upstream):.2%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--time-scale", type=float, default=6.0)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    rows = []
    for sc in scenarios():
        for contender in ("keyrouter", "round-robin"):
            rows.append(measure(sc, contender, args))
    print(
        f"\n{args.callers} async callers, closed loop, {args.seconds:.0f} s per run, "
        f"time x{args.time_scale:g}, {args.latency * 1000:.0f} ms provider latency\n"
    )
    print(
        render_table(
            [
                "scenario",
                "contender",
                "ok calls",
                "capacity",
                "goodput",
                "errors surfaced",
                "upstream calls",
                "upstream 429s",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
