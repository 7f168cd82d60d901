"""Memory per key in a pool, after every key has served once (its scope's limits learned).

Counted with `tracemalloc`: everything allocated to build the pool (the `Key` objects, the
state book's key and scope records, the selection index) and to route one call per key (the
quota dimensions each scope learns from OpenAI's rate-limit headers), minus what is freed
again. The secrets themselves are made beforehand (the app holds them anyway). Each size is
measured in a fresh state, three times; the table shows the median.

    python -m benchmarks.memory [--keys 1000 10000 100000] [--vs litellm]    (default: 1k, 10k)
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks._answers import ROOMY_OPENAI_HEADERS
from benchmarks._litellm import litellm_router
from keyrouter.cli._table import render_table
from keyrouter.core.keys import Key
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand
from keyrouter.core.state import StateBook
from keyrouter.providers.openai import WIRE

HEADERS = ROOMY_OPENAI_HEADERS
TARGET_BYTES = 2048


def secrets(count: int) -> list[str]:
    # Distinct objects, like keys read from a file: none shared with the pool's own strings.
    return [f"sk-mem-{i:07d}-{'0' * 24}" for i in range(count)]


def keyrouter_pool(given: list[str]) -> Any:
    pool = KeyPool([Key(s) for s in given], book=StateBook())
    demand = Demand({"requests": 1.0, "tokens": 300.0}, "gpt-4o-mini")
    success = Outcome(OutcomeKind.SUCCESS, 200)
    now = time.time()
    for _ in range(len(given)):
        decision = pool.select(demand, now)
        assert decision.lease is not None
        pool.settle(decision.lease, success, now, WIRE.observations(HEADERS, now))
    return pool


def measure(build: Callable[[list[str]], Any], count: int) -> float:
    """Bytes per key still allocated once `build` has made its pool (median of three)."""
    results = []
    for _ in range(3):
        given = secrets(count)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        built = build(given)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        results.append((after - before) / count)
        del built, given
        gc.collect()
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--vs", choices=["litellm"], default=None)
    args = parser.parse_args()
    rows = []

    def add(name: str, build: Callable[[list[str]], Any], sizes: list[int]) -> None:
        for count in sizes:
            per_key = measure(build, count)
            rows.append(
                [name, f"{count:,}", f"{per_key:,.0f} B ({per_key / 1024:.2f} KiB)", "≤ 2,048 B"]
            )

    add("keyrouter", keyrouter_pool, args.keys)
    if args.vs == "litellm":
        if importlib.util.find_spec("litellm") is None:
            print("litellm is not installed: `pip install litellm` to compare (skipped)")
        else:
            # After keyrouter's runs: LiteLLM's import starts threads that allocate too.
            litellm_router(secrets(1))  # import and warm up outside the measurement
            add("LiteLLM Router", litellm_router, [c for c in args.keys if c <= 10_000])
    print("\nmemory allocated per key in the pool (tracemalloc), median of three builds\n")
    print(render_table(["router", "keys", "per key", "target"], rows))


if __name__ == "__main__":
    main()
