"""Four worker processes, one pool of keys: shared through Redis, through SQLite, or not at all.

The fake provider runs in its own process and enforces per-key token buckets (6 keys at 60 rpm
and 2 at 300 rpm, time compressed). Each worker patches the OpenAI SDK with the same keys and
runs a closed loop of async callers. For each store we print the calls served within the run
against the pool's capacity over it (every bucket's burst plus its refill), errors surfaced to
callers, and upstream 429s as a share of upstream calls; one process with the callers of all
four is the baseline. A store that shares state should match it; separate memory stores each
believe they have every key to themselves.

    python -m benchmarks.multiprocess [--seconds 15] [--workers 4] [--callers 16] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

KEYS = [(f"sk-multi-small-{i:02d}-0000000000000000000", 60) for i in range(6)] + [
    (f"sk-multi-large-{i:02d}-0000000000000000000", 300) for i in range(2)
]
MESSAGES = [{"role": "user", "content": "benchmark"}]


def provider_process(conn: Connection, time_scale: float, latency: float) -> None:
    """Serve the fake provider until told to stop, then send back per-key statistics."""
    from keyrouter.testing import FakeKey, FakeProvider

    keys = [FakeKey(secret, rpm=rpm) for secret, rpm in KEYS]
    with FakeProvider(keys, time_scale=time_scale, latency=latency, log_size=10) as fake:
        conn.send(fake.base_url)
        conn.recv()  # "stop"
        stats = [fake.stats(secret) for secret, _ in KEYS]
        conn.send([(s.requests, s.count(429)) for s in stats])


def worker_process(
    conn: Connection, base_url: str, store: str, callers: int, seconds: float
) -> None:
    """One app process: patch the SDK with the pool and the store, run a closed loop."""
    import openai

    import keyrouter

    keyrouter.patch(openai=[secret for secret, _ in KEYS], store=store, max_wait=seconds)
    client = openai.AsyncOpenAI(base_url=base_url, max_retries=0)
    ok = errors = 0
    conn.send("ready")
    start_at: float = conn.recv()

    async def caller(deadline: float) -> None:
        nonlocal ok, errors
        while time.time() < deadline:
            try:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, max_tokens=16
                )
            except openai.APIError:
                errors += 1
            else:
                ok += time.time() <= deadline  # served within the run's window

    async def run() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = start_at + seconds
        await asyncio.gather(*(caller(deadline) for _ in range(callers)))
        await client.close()

    asyncio.run(run())
    keyrouter.unpatch()  # closes the store: buffered reports are sent
    conn.send((ok, errors))


@dataclass
class Run:
    name: str
    store: str
    workers: int
    callers: int


def measure(run: Run, args: argparse.Namespace, ctx: Any) -> list[object]:
    here, there = ctx.Pipe()
    provider = ctx.Process(target=provider_process, args=(there, args.time_scale, args.latency))
    provider.start()
    base_url = here.recv()
    pipes, workers = [], []
    for index in range(run.workers):
        mine, theirs = ctx.Pipe()
        store = run.store.replace("{n}", str(index))
        process = ctx.Process(
            target=worker_process,
            args=(theirs, base_url, store, run.callers, args.seconds),
        )
        process.start()
        pipes.append(mine)
        workers.append(process)
    for pipe in pipes:
        pipe.recv()  # imported and patched: start every clock together
    start_at = time.time() + 0.2
    for pipe in pipes:
        pipe.send(start_at)
    results = [pipe.recv() for pipe in pipes]
    for process in workers:
        process.join(30)
    here.send("stop")
    upstream_stats = here.recv()
    provider.join(30)
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    upstream = sum(s[0] for s in upstream_stats)
    rejected = sum(s[1] for s in upstream_stats)
    capacity = sum(rpm + rpm / 60 * args.time_scale * args.seconds for _, rpm in KEYS)
    return [
        run.name,
        run.workers,
        run.workers * run.callers,
        ok,
        f"{capacity:.0f}",
        f"{ok / capacity:.1%}",
        errors,
        upstream,
        f"{rejected / max(1, upstream):.2%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--callers", type=int, default=16, help="async callers per worker")
    parser.add_argument("--time-scale", type=float, default=6.0)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    from keyrouter.cli._table import render_table

    ctx = multiprocessing.get_context("spawn")
    prefix = f"keyrouter-bench-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            Run("one process (memory)", "memory://", 1, args.workers * args.callers),
            Run("redis", f"{args.redis}?prefix={prefix}", args.workers, args.callers),
            Run("sqlite", f"sqlite:///{os.path.join(tmp, 'state.db')}", args.workers, args.callers),
            Run("separate memory stores", "memory://", args.workers, args.callers),
        ]
        rows = [measure(run, args, ctx) for run in runs]
    _clean_redis(args.redis, prefix)
    print(
        f"\n{len(KEYS)} keys (6x60 rpm + 2x300 rpm), {args.seconds:.0f} s per run, "
        f"time x{args.time_scale:g}, {args.latency * 1000:.0f} ms provider latency, "
        f"fake provider in its own process\n"
    )
    headers = [
        "store",
        "processes",
        "callers",
        "ok calls",
        "capacity",
        "goodput",
        "errors surfaced",
        "upstream calls",
        "upstream 429s",
    ]
    print(render_table(headers, rows))


def _clean_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    names = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if names:
        client.delete(*names)
    client.close()


if __name__ == "__main__":
    main()
