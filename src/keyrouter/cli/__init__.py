"""The `keyrouter` command: `keyrouter demo` (more subcommands join here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keyrouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="route a burst through a patched openai client against a local fake provider"
    )
    demo.add_argument("--calls", type=int, default=400, help="requests in the burst (default 400)")
    demo.add_argument("--concurrency", type=int, default=32, help="caller threads (default 32)")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from keyrouter.cli.demo import run_demo

            return run_demo(calls=args.calls, concurrency=args.concurrency)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, not a traceback
        print(f"keyrouter {args.command}: {exc}", file=sys.stderr)
        return 1
    return 2
