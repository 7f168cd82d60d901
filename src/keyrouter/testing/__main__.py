"""Run the fake OpenAI server from a shell, for manual tests and other languages' suites.

    python -m keyrouter.testing --port 8080 \\
        --keys "sk-a:rpm=60:tpm=40000,sk-b:invalid,sk-c:insufficient_quota" --time-scale 10

Each comma-separated key is ``SECRET[:OPTION]...`` where an option is ``rpm=N``,
``tpm=N``, ``scope=NAME`` or a status (``ok``, ``invalid``, ``insufficient_quota``,
``forbidden``).  The server listens on 127.0.0.1 only and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import cast, get_args

from keyrouter.testing import FakeKey, FakeProvider, KeyStatus

_STATUSES = frozenset(get_args(KeyStatus))


def parse_keys(spec: str) -> list[FakeKey]:
    """Parse ``--keys``: ``"sk-a:rpm=60:tpm=40000:scope=org-1,sk-b:invalid"``."""
    return [_parse_key(item.strip()) for item in spec.split(",") if item.strip()]


def _parse_key(item: str) -> FakeKey:
    secret, *options = item.split(":")
    rpm: int | None = None
    tpm: int | None = None
    scope: str | None = None
    status = "ok"
    for option in options:
        name, has_value, value = option.partition("=")
        if not has_value and name in _STATUSES:
            status = name
        elif name == "rpm" and has_value:
            rpm = _positive(value, option)
        elif name == "tpm" and has_value:
            tpm = _positive(value, option)
        elif name == "scope" and has_value and value:
            scope = value
        else:
            raise ValueError(f"unknown key option {option!r} in {item!r}")
    return FakeKey(secret, rpm=rpm, tpm=tpm, scope=scope, status=cast(KeyStatus, status))


def _positive(value: str, option: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"{option!r} needs a positive integer")
    return int(value)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m keyrouter.testing",
        description="Serve a fake OpenAI API on 127.0.0.1 with per-key rate limits.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    parser.add_argument(
        "--keys", default="sk-test", help="keys, e.g. 'sk-a:rpm=60:tpm=40000,sk-b:invalid'"
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="10 = a minute lasts 6 s")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    parser.add_argument("--completion-tokens", type=int, default=16, help="length of answers")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, print its base URL, serve until interrupted."""
    args = _arguments(argv)
    try:
        keys = parse_keys(args.keys)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fake = FakeProvider(
        keys=keys,
        port=args.port,
        time_scale=args.time_scale,
        latency=args.latency,
        completion_tokens=args.completion_tokens,
    )
    stop = threading.Event()
    # Our own handlers: a process started in the background inherits SIGINT as *ignored*,
    # and then Python would never raise KeyboardInterrupt.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with fake:
        print(fake.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
