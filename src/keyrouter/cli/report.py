"""`keyrouter report`: calls, tokens and cost from the usage ledger, grouped by key, model,
scope or pool, over a period.

Usage is kept by the store the app's processes share (`--store`, `KEYROUTER_STORE`, or the
config file's `store`): a CLI process has recorded nothing itself. Costs of calls whose model
has no price are unknown, not zero: the total is then marked as a lower bound.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from keyrouter.cli._sources import configured_store, watch_store
from keyrouter.cli._table import cost_cell, render_table
from keyrouter.core.usage import UsageLedger, UsageTotals
from keyrouter.errors import ConfigError

__all__ = ["parse_since", "register"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_COLUMNS = [
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_calls",
    "estimated_calls",
]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report",
        help="usage and cost per key, model, scope or pool, from the shared store",
        description="Calls, tokens and cost recorded in the shared store's usage ledger.",
    )
    parser.add_argument(
        "--since",
        default="7d",
        help="how far back: 90m, 24h, 7d, 2w, or a UTC date/time 2026-11-01[T12:00] (7d)",
    )
    parser.add_argument("--until", help="end of the period, same forms (default: now)")
    parser.add_argument("--by", choices=["key", "model", "scope", "pool"], default="key")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--store", metavar="URL", help="sqlite:///path.db or redis://host:6379/0")
    parser.add_argument("--config", metavar="PATH", help="the config file naming the store")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    now = time.time()
    since = parse_since(args.since, now, field="--since")
    until = parse_since(args.until, now, field="--until") if args.until else None
    url = configured_store(args)
    if not url:
        raise ConfigError(
            "usage is kept by the store your app shares: pass --store sqlite:///path.db "
            "(or redis://...), or set KEYROUTER_STORE"
        )
    from keyrouter.stores import open_store

    store = open_store(url)
    if store is None:
        raise ConfigError(f"{url} keeps nothing beyond its process; name a SQLite or Redis store")
    check = watch_store(store, url)
    try:
        totals = store.ledger.totals(args.by, since=since, until=until)
        if args.by == "scope":
            totals = _named_scopes(store.ledger, totals, since, until)
        check()
    finally:
        store.close()
    rows = sorted(totals.items(), key=lambda item: (-item[1].cost_usd, -item[1].calls, item[0]))
    print(_render(args.format, args.by, rows, since, until or now), end="")
    return 0


def parse_since(value: str, now: float, *, field: str) -> float:
    """`7d`-style durations back from `now`, or an ISO date/time (UTC when no zone is given)."""
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{value!r} is neither a duration (90m, 24h, 7d, 2w) nor a date (2026-11-01)",
            field=field,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _named_scopes(
    ledger: UsageLedger, totals: dict[str, UsageTotals], since: float, until: float | None
) -> dict[str, UsageTotals]:
    """Scopes as people name them: `scope:acme` is `acme`; a key's own scope (`key:<id>`) is
    shown by that key's fingerprint."""
    fingerprints = {}
    if any(scope.startswith("key:") for scope in totals):
        fingerprints = {r.scope: r.key for r in ledger.records(since=since, until=until)}
    return {
        scope.removeprefix("scope:")
        if scope.startswith("scope:")
        else fingerprints.get(scope, scope): t
        for scope, t in totals.items()
    }


def _values(totals: UsageTotals) -> dict[str, Any]:
    usage = totals.usage
    return {
        "calls": totals.calls,
        "input_tokens": usage.input_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cost_usd": None if cost_cell(totals) == "unknown" else round(totals.cost_usd, 9),
        "unpriced_calls": totals.unpriced_calls,
        "estimated_calls": totals.estimated_calls,
    }


def _render(
    fmt: str, by: str, rows: list[tuple[str, UsageTotals]], since: float, until: float
) -> str:
    if fmt == "json":
        body = {
            "since": since,
            "until": until,
            "by": by,
            "groups": [{by: name, **_values(t)} for name, t in rows],
        }
        return json.dumps(body, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([by, *_COLUMNS])
        for name, totals in rows:
            writer.writerow([name, *_values(totals).values()])
        return out.getvalue()
    period = f"{_when(since)} .. {_when(until)} UTC"
    if not rows:
        return f"no usage recorded {period}\n"
    table = [
        [
            name,
            t.calls,
            t.usage.input_tokens,
            t.usage.output_tokens,
            cost_cell(t),
            t.estimated_calls,
        ]
        for name, t in rows
    ]
    total = UsageTotals(
        calls=sum(t.calls for _, t in rows),
        cost_usd=sum(t.cost_usd for _, t in rows),
        unpriced_calls=sum(t.unpriced_calls for _, t in rows),
    )
    headers = [by, "calls", "input tokens", "output tokens", "cost USD", "estimated"]
    notes = [f"{period}: {total.calls} calls, cost USD {cost_cell(total)}"]
    if total.unpriced_calls:
        notes.append(
            f"{total.unpriced_calls} calls used a model with no known price: their cost is "
            "unknown, not zero (≥ marks a lower bound)"
        )
    return render_table(headers, table) + "\n\n" + "\n".join(notes) + "\n"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")
