"""The `keyrouter` command. Each subcommand is one module here, named in `COMMANDS`.

A subcommand module defines `register(commands)`: it adds its parser to the subparsers
`commands` and sets `run=<function(args) -> int>` as a default. Heavy or optional imports (SDKs,
stores, extras) go inside `run`, so one missing extra breaks one subcommand only. `run` returns
the exit code; an exception it raises becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

# One line per subcommand, in `--help` order: the module `keyrouter.cli.<name>`.
COMMANDS: tuple[str, ...] = (
    "demo",  # a burst against the local fake provider
    "status",  # the pool's state per key, from the shared store
    "check",  # validate each configured key with one models-list call
    "report",  # usage and cost per key, model, scope or pool
    "config",  # validate keyrouter.toml and print the effective configuration
    "keys",  # the encrypted key file: init, add, list, remove, rotate
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyrouter", description="Spread LLM calls over a pool of API keys."
    )
    from keyrouter import __version__

    parser.add_argument("--version", action="version", version=f"keyrouter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"keyrouter.cli.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, not a traceback
        print(f"keyrouter {args.command}: {exc}", file=sys.stderr)
        return 1
    return code
