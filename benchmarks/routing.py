"""One routing decision (pick + record) at 8, 1,000 and 100,000 keys: median and tail latency.

A decision is `KeyPool.select` (choose a key, reserve the request's demand) followed by
`KeyPool.settle` (a 200 with OpenAI's rate-limit headers, parsed as the wire parses them),
timed together with `perf_counter_ns`. Pools take turns in rounds, so drift in the machine's
speed hits every size alike. A second scenario parks a tenth of the keys (rate limited, cooling
for a minute) first, so each decision also steps past keys that cannot serve.

    python -m benchmarks.routing [--rounds 10] [--decisions 2000] [--keys 8 1000 100000]
                                 [--vs litellm]

With `--vs litellm`, LiteLLM's Router picks among as many deployments
(`get_available_deployment`, its default strategy; its success callbacks record nothing for
this strategy), at most 1,000 of them and 200 decisions per size: it is O(n) per pick. It
runs after keyrouter's rounds: once imported, LiteLLM's background threads slow the process.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

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
DEMAND = Demand({"requests": 1.0, "tokens": 300.0}, "gpt-4o-mini")
SUCCESS = Outcome(OutcomeKind.SUCCESS, 200)
TARGETS = {1000: 20.0, 100_000: 50.0}


def secrets(count: int) -> list[str]:
    return [f"sk-route-{i:07d}-0000000000000000" for i in range(count)]


def keyrouter_decider(count: int, parked_share: float) -> Callable[[], None]:
    pool = KeyPool([Key(s) for s in secrets(count)], book=StateBook())
    now = time.time()
    # Every key answers once, so every scope's limits are known (no probing).
    for _ in range(count):
        decision = pool.select(DEMAND, now)
        assert decision.lease is not None
        pool.settle(decision.lease, SUCCESS, now, WIRE.observations(HEADERS, now))
    cooling = Outcome(OutcomeKind.RATE_LIMITED, 429, "rate_limit_exceeded", now + 60.0)
    for _ in range(int(count * parked_share)):
        decision = pool.select(DEMAND, now)
        assert decision.lease is not None
        pool.settle(decision.lease, cooling, now)

    def decide() -> None:
        now = time.time()
        decision = pool.select(DEMAND, now)
        assert decision.lease is not None
        pool.settle(decision.lease, SUCCESS, now, WIRE.observations(HEADERS, now))

    return decide


def litellm_decider(count: int) -> Callable[[], None]:
    router = litellm_router(secrets(count))

    def decide() -> None:
        router.get_available_deployment(model="gpt-4o-mini")

    return decide


def percentile(values: list[int], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] / 1000


def measure(
    contenders: dict[tuple[str, int], tuple[Callable[[], None], int]], rounds: int
) -> dict[tuple[str, int], list[int]]:
    """Nanoseconds per decision, contenders taking turns round by round."""
    samples: dict[tuple[str, int], list[int]] = {name: [] for name in contenders}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, (decide, per_round) in contenders.items():
            times = samples[name]
            for _ in range(max(1, per_round // rounds)):
                started = clock()
                decide()
                times.append(clock() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--keys", type=int, nargs="+", default=[8, 1000, 100_000])
    parser.add_argument("--vs", choices=["litellm"], default=None)
    args = parser.parse_args()
    contenders: dict[tuple[str, int], tuple[Callable[[], None], int]] = {}
    for count in args.keys:
        contenders["keyrouter", count] = (keyrouter_decider(count, 0.0), args.decisions)
        contenders["keyrouter, 10% cooling", count] = (
            keyrouter_decider(count, 0.1),
            args.decisions,
        )
    samples = measure(contenders, args.rounds)
    if args.vs == "litellm":
        # Measured afterwards: importing LiteLLM starts background threads that would slow
        # every contender sharing the process.
        if importlib.util.find_spec("litellm") is None:
            print("litellm is not installed: `pip install litellm` to compare (skipped)")
        else:
            others = {
                ("LiteLLM Router", count): (litellm_decider(count), 200)
                for count in args.keys
                if count <= 1000
            }
            samples.update(measure(others, args.rounds))
    rows = []
    for (who, count), times in samples.items():
        target = TARGETS.get(count)
        p99 = percentile(times, 0.99)
        rows.append(
            [
                who,
                f"{count:,}",
                f"{statistics.median(times) / 1000:.1f} µs",
                f"{p99:.1f} µs",
                f"{percentile(times, 0.999):.1f} µs",
                "-" if target is None or who.startswith("LiteLLM") else f"≤ {target:.0f} µs",
            ]
        )
    print(
        f"\npick + record per decision, {args.rounds} interleaved rounds "
        f"({args.decisions} decisions per pool in all)\n"
    )
    print(render_table(["router", "keys", "median", "p99", "p99.9", "target p99"], rows))


if __name__ == "__main__":
    main()
