"""`keyrouter check`: is each configured key usable? One models-list call per key.

Listing models is the cheapest authenticated call every provider has: it costs no tokens and,
at most providers, no rate-limit budget. The answer is read by the provider's own wire module
(the same code that classifies answers while routing), so `check` and the router agree on what
a 401 or a 429 means. A key out of credit still lists models at some providers, so `ok` means
"the provider accepts this key", not "it has credit left".
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from keyrouter.cli._sources import add_key_arguments, configured_keys
from keyrouter.cli._table import render_table
from keyrouter.core.keys import Key
from keyrouter.core.outcome import OutcomeKind

__all__ = ["CheckResult", "check_key", "register"]

_PROBES = {
    "openai": ("https://api.openai.com", "/v1/models"),
    "anthropic": ("https://api.anthropic.com", "/v1/models"),
    "gemini": ("https://generativelanguage.googleapis.com", "/v1beta/models"),
    "azure": ("", "/openai/models?api-version=2024-10-21"),
}
_EXTRA_HEADERS = {"anthropic": {"anthropic-version": "2023-06-01"}}
_RESULTS = {
    OutcomeKind.SUCCESS: "ok",
    OutcomeKind.INVALID_KEY: "invalid",
    OutcomeKind.FORBIDDEN: "forbidden",
    OutcomeKind.QUOTA_EXHAUSTED: "exhausted",
    OutcomeKind.RATE_LIMITED: "rate_limited",
    OutcomeKind.SERVER_ERROR: "unavailable",
    OutcomeKind.OVERLOADED: "unavailable",
    OutcomeKind.REQUEST_ERROR: "error",
}
_FINE = frozenset({"ok", "rate_limited"})
"""A rate-limited key is valid, only busy right now."""
_MAX_PARALLEL = 8


@dataclass(frozen=True, slots=True)
class CheckResult:
    provider: str
    fingerprint: str
    name: str | None
    result: str
    """ok, invalid, forbidden, exhausted, rate_limited, unavailable, unreachable or error."""
    detail: str


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "check",
        help="validate each configured key with one models-list call",
        description="Validate each configured key with its provider's models list (no tokens "
        "spent). Exit status 1 if any key is invalid, forbidden, exhausted or unreachable.",
    )
    add_key_arguments(parser)
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="send every check to this server instead of the provider's (an OpenAI-"
        "compatible server, a proxy, or keyrouter's fake provider)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call (10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    jobs = [(p, k) for p, keys in configured_keys(args).items() for k in keys]
    results = _check_all(jobs, base_url=args.base_url, timeout=args.timeout)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        rows = [[r.provider, r.fingerprint, r.name or "", r.result, r.detail] for r in results]
        print(render_table(["provider", "fingerprint", "name", "result", "detail"], rows))
    return 0 if all(r.result in _FINE for r in results) else 1


def _check_all(
    jobs: list[tuple[str, Key]], *, base_url: str | None, timeout: float
) -> list[CheckResult]:
    progress = sys.stderr.isatty() and len(jobs) > 1
    results: list[CheckResult] = []
    with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(jobs))) as pool:
        futures = [
            pool.submit(check_key, p, k, base_url=base_url, timeout=timeout) for p, k in jobs
        ]
        for done, future in enumerate(futures, 1):
            results.append(future.result())
            if progress:
                print(f"\r  checked {done}/{len(jobs)} keys", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return results


def check_key(
    provider: str, key: Key, *, base_url: str | None = None, timeout: float = 10.0
) -> CheckResult:
    """List models with `key` and say what the answer means for it (never raises)."""
    wire = importlib.import_module(f"keyrouter.providers.{provider}").WIRE

    def result(outcome: str, detail: str) -> CheckResult:
        return CheckResult(provider, key.fingerprint, key.name, outcome, detail)

    url = _models_url(provider, key, base_url)
    if url is None:
        return result("error", "no endpoint: an Azure key needs keyrouter.azure_key(...)")
    headers = dict(_EXTRA_HEADERS.get(provider, {}))
    wire.write_credential(headers, key.secret)
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, answer_headers, body = response.status, response.headers, response.read(65536)
    except urllib.error.HTTPError as error:
        status, answer_headers, body = error.code, error.headers, error.read(65536)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return result("unreachable", f"{urlsplit(url).netloc}: {reason}")
    lower = {name.lower(): value for name, value in answer_headers.items()}
    outcome = wire.classify(status, lower, body, time.time())
    detail = f"http {status}" + (f" {outcome.reason}" if outcome.reason else "")
    return result(_RESULTS.get(outcome.kind, "error"), detail)


def _models_url(provider: str, key: Key, base_url: str | None) -> str | None:
    root, path = _PROBES[provider]
    base = (base_url or key.base_url or root).rstrip("/")
    if not base:
        return None
    if provider == "openai" and urlsplit(base).path not in ("", "/"):
        return base + "/models"  # a base URL the SDK would take, ending in /v1
    return base + path
