"""`keyrouter status`: every configured key's state, limits learned and predicted exhaustion.

A CLI process has learned nothing by itself: the state it shows comes from the store the app's
processes share (`--store sqlite:///state.db`, `redis://...`, or `KEYROUTER_STORE`). Without a
store it lists the configured keys as this process sees them (nothing learned yet) and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from keyrouter._snapshot import with_usage
from keyrouter.cli._sources import (
    add_key_arguments,
    configured_keys,
    configured_store,
    watch_store,
)
from keyrouter.cli._table import cost_cell, render_table
from keyrouter.core.keys import Key
from keyrouter.core.pool import KeyPool, KeySnapshot
from keyrouter.core.state import StateBook
from keyrouter.entry._pools import warm_pool

__all__ = ["read_state", "register", "snapshot_rows", "snapshot_to_json"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="the pool's state per key (from the shared store), as a table or JSON",
        description="Per configured key: state, limits learned, remaining and predicted "
        "exhaustion, as the shared store knows them.",
    )
    add_key_arguments(parser)
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the store the app shares state through: sqlite:///path.db or "
        "redis://host:6379/0 (default: $KEYROUTER_STORE, else the config file's)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    keys = configured_keys(args)
    url = configured_store(args)
    snapshot = read_state(keys, url)
    now = time.time()
    if args.json:
        print(json.dumps(snapshot_to_json(snapshot, now), indent=2))
        return 0
    headers = ["provider", "key", "scope", "state", "requests left", "tokens left", "out in"]
    if any(k.period_usage and k.period_usage.calls for keys in snapshot.values() for k in keys):
        headers += ["calls this month", "cost USD"]
    rows = [row[: len(headers)] for row in snapshot_rows(snapshot, now)]
    print(render_table(headers, rows))
    if not url:
        print(
            "\nno store given (--store or KEYROUTER_STORE): this shows only what this process "
            "knows, which is nothing learned yet",
            file=sys.stderr,
        )
    return 0


def read_state(keys: dict[str, list[Key]], url: str | None) -> dict[str, list[KeySnapshot]]:
    """Per provider, a snapshot of `keys` as the store at `url` knows them (None: as a fresh
    process knows them). A private book, so nothing here touches the process's own pools."""
    book = StateBook()
    check = None
    if url:
        from keyrouter.stores import attach_store, open_store

        store = open_store(url)
        attach_store(book, store)
        check = watch_store(store, url) if store is not None else None
    try:
        pools = {p: KeyPool(k, book=book, name=p) for p, k in keys.items()}
        for pool in pools.values():
            warm_pool(pool)
        if check is not None:
            check()
        now = time.time()
        snapshot = {provider: pool.snapshot(now) for provider, pool in pools.items()}
        if book.store is not None:  # the store keeps usage: this month's, per key
            snapshot = {p: with_usage(s, book.ledger, "month", now) for p, s in snapshot.items()}
        return snapshot
    finally:
        if book.store is not None:
            book.store.close()


def snapshot_rows(snapshot: dict[str, list[KeySnapshot]], now: float) -> list[list[str]]:
    """One row per key: what a person at a terminal wants first."""
    rows = []
    for provider, keys in snapshot.items():
        for key in keys:
            state = key.state.value + (f" ({key.reason})" if key.reason else "")
            if key.until is not None:
                state += f" for {max(0.0, key.until - now):.0f}s"
            rows.append(
                [
                    provider,
                    key.key,
                    key.scope,
                    state,
                    _left(key, "requests"),
                    _left(key, "tokens"),
                    _out_in(key),
                    str(key.period_usage.calls) if key.period_usage else "-",
                    cost_cell(key.period_usage) if key.period_usage else "-",
                ]
            )
    return rows


def _left(key: KeySnapshot, dimension: str) -> str:
    dim = key.dimensions.get(dimension)
    if dim is None or dim.available is None:
        return "-"
    limit = f"/{dim.limit:.0f}" if dim.limit is not None else ""
    return f"{dim.available:.0f}{limit}"


def _out_in(key: KeySnapshot) -> str:
    times = [d.seconds_to_exhaustion for d in key.dimensions.values() if d.seconds_to_exhaustion]
    return f"{min(times):.0f}s" if times else "-"


def snapshot_to_json(snapshot: dict[str, list[KeySnapshot]], now: float) -> dict[str, Any]:
    """The snapshot as plain JSON values (enums by value, times as epoch seconds)."""
    return {
        "at": now,
        "providers": {
            provider: [_plain(key) for key in keys] for provider, keys in snapshot.items()
        },
    }


def _plain(key: KeySnapshot) -> dict[str, Any]:
    return {
        "key": key.key,
        "fingerprint": key.fingerprint,
        "scope": key.scope,
        "state": key.state.value,
        "reason": key.reason,
        "until": key.until,
        "in_flight": key.in_flight,
        "attempts": key.attempts,
        "successes": key.successes,
        "rate_limited": key.rate_limited,
        "failures": key.failures,
        "capacity": key.capacity.value,
        "headroom": key.headroom if math.isfinite(key.headroom) else None,
        "period": key.period,
        "period_usage": None
        if key.period_usage is None
        else {
            "calls": key.period_usage.calls,
            "input_tokens": key.period_usage.usage.input_tokens,
            "output_tokens": key.period_usage.usage.output_tokens,
            "cost_usd": key.period_usage.cost_usd,
            "unpriced_calls": key.period_usage.unpriced_calls,
        },
        "dimensions": {
            name: {
                "limit": d.limit,
                "available": d.available,
                "refill_per_second": d.refill_per_second,
                "seconds_to_exhaustion": d.seconds_to_exhaustion,
            }
            for name, d in key.dimensions.items()
        },
    }
