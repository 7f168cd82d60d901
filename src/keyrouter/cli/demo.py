"""`keyrouter demo`: a burst of calls through a patched `openai.OpenAI`, against the fake provider.

Five keys with different fates: two fast ones, a slow one (low rate limit), one revoked and
one out of credit. The caller sees every call succeed; the table shows what each key did.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import keyrouter
from keyrouter.cli._table import render_table
from keyrouter.testing import FakeKey, FakeProvider

__all__ = ["register", "run_demo"]

TIME_SCALE = 20.0  # a rate-limit "minute" lasts 3 real seconds
DEMO_KEYS = [
    FakeKey("sk-demo-fast-one-00000000000000000001", rpm=120, tpm=200_000),
    FakeKey("sk-demo-fast-two-00000000000000000002", rpm=120, tpm=200_000),
    FakeKey("sk-demo-slow-000000000000000000000003", rpm=30, tpm=50_000),
    FakeKey("sk-demo-revoked-0000000000000000000004", status="invalid"),
    FakeKey("sk-demo-no-credit-00000000000000000005", status="insufficient_quota"),
]
NAMES = ["fast-1", "fast-2", "slow", "revoked", "no-credit"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="route a burst through a patched openai client against a local fake provider"
    )
    demo.add_argument("--calls", type=int, default=400, help="requests in the burst (default 400)")
    demo.add_argument("--concurrency", type=int, default=32, help="caller threads (default 32)")
    demo.set_defaults(run=lambda args: run_demo(calls=args.calls, concurrency=args.concurrency))


def run_demo(*, calls: int, concurrency: int) -> int:
    try:
        import openai
    except ImportError:
        print(
            "keyrouter demo needs the openai SDK: pip install 'keyrouter[openai]'", file=sys.stderr
        )
        return 1
    keys = [keyrouter.Key(k.secret, name=name) for k, name in zip(DEMO_KEYS, NAMES, strict=True)]
    with FakeProvider(DEMO_KEYS, time_scale=TIME_SCALE, latency=0.005) as fake:
        keyrouter.patch(openai=keys, usage=True)  # usage=True: tokens and cost per call
        try:
            client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
            print(
                f"fake provider on {fake.base_url}; {len(keys)} keys; "
                f"{calls} calls from {concurrency} threads (1 limit-minute = "
                f"{60 / TIME_SCALE:.0f}s)\n"
            )
            # On a terminal the per-key table is redrawn while the burst runs; else printed once.
            live = (lambda: _summary(fake, keys)) if sys.stdout.isatty() else None
            errors, elapsed = _burst(client, calls, concurrency, live=live)
            if live is None:
                print()
                print(_summary(fake, keys))
        finally:
            keyrouter.unpatch()
    served = calls - len(errors)
    print(
        f"\n{served}/{calls} calls succeeded in {elapsed:.1f}s; "
        f"errors surfaced to the caller: {len(errors)}"
    )
    for message in sorted(set(errors))[:3]:
        print(f"  {message}")
    return 0 if not errors else 1


def _burst(
    client: object, calls: int, concurrency: int, *, live: Callable[[], str] | None = None
) -> tuple[list[str], float]:
    """Send the calls from `concurrency` threads, showing progress (and `live()`, a table
    redrawn in place, when given) twice a second."""
    errors: list[str] = []
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        try:
            client.chat.completions.create(  # type: ignore[attr-defined]
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"demo call {i}"}],
                max_completion_tokens=16,
            )
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
        with lock:
            done += 1

    started = time.monotonic()
    drawn = 0
    shown_done = -1

    def show() -> None:
        nonlocal drawn, shown_done
        progress = (
            f"  {done}/{calls} done, {len(errors)} errors, {time.monotonic() - started:4.1f}s"
        )
        if live is None:  # a log or a pipe: a plain line when the count moved, no redraws
            if done != shown_done:
                print(progress, flush=True)
                shown_done = done
            return
        frame = f"{live()}\n\n{progress}"
        up = f"\x1b[{drawn}F\x1b[J" if drawn else ""  # back to the previous frame's top, clear
        print(up + frame, flush=True)
        drawn = frame.count("\n") + 1

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(calls)]
        while not all(f.done() for f in futures):
            time.sleep(0.5)
            show()
    show()
    return errors, time.monotonic() - started


def _summary(fake: FakeProvider, keys: list[keyrouter.Key]) -> str:
    snaps = {s.key: s for s in keyrouter.snapshot("openai")["openai"]}
    spent = keyrouter.usage_totals("key")
    rows = []
    for key in keys:
        stats = fake.stats(key.secret)
        snap = snaps[key.label]
        learned = snap.dimensions.get("requests")
        limit = f"{learned.limit:.0f}/min" if learned and learned.limit else "-"
        rows.append(
            [
                key.label,
                key.fingerprint,
                stats.count(200),
                stats.count(429),
                stats.count(401),
                limit,
                _cost(spent.get(key.fingerprint)),
                snap.state.value + (f" ({snap.reason})" if snap.reason else ""),
            ]
        )
    return render_table(
        ["key", "fingerprint", "served", "429s absorbed", "401s", "learned limit", "cost", "state"],
        rows,
    )


def _cost(totals: keyrouter.UsageTotals | None) -> str:
    """What a key's calls cost at list price (`~` when part of it is estimated)."""
    if totals is None or not totals.calls:
        return "-"
    mark = "~" if totals.estimated_calls else ""
    return f"{mark}${totals.cost_usd:.4f}"
