"""Which keys the CLI works on: the config file's pools, the environment's `*_API_KEYS`, and
the encrypted key file.

One place, so `check`, `status` and `report` agree on what "the configured keys" are.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from keyrouter.config import load_config
from keyrouter.core.keys import Key, normalize_keys
from keyrouter.entry._pools import PROVIDERS, keys_from_env
from keyrouter.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from keyrouter.core.store import StateStore

__all__ = ["add_key_arguments", "configured_keys", "configured_store", "watch_store"]


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that reads the configured keys takes."""
    parser.add_argument(
        "--provider",
        action="append",
        choices=sorted(PROVIDERS),
        help="only this provider's keys (repeatable; default: every provider with keys)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="the config file (default: keyrouter.toml, [tool.keyrouter] in pyproject.toml, "
        "or $KEYROUTER_CONFIG)",
    )
    parser.add_argument(
        "--keyfile",
        metavar="PATH",
        help="also read the encrypted key file (default: $KEYROUTER_KEYFILE, else "
        "./keyrouter.keys when it exists)",
    )


def configured_keys(args: argparse.Namespace) -> dict[str, list[Key]]:
    """Per provider, the keys of the config file's pools, of `OPENAI_API_KEYS`-style
    variables and of the key file (each key once).

    Raises `ConfigError` saying where keys can come from when there are none.
    """
    wanted = args.provider or list(PROVIDERS)
    found: dict[str, list[Key]] = {}

    def add(provider: str, key: Key) -> None:
        keys = found.setdefault(provider, [])
        if provider in wanted and all(k.id != key.id for k in keys):
            keys.append(key)

    config = load_config(args.config)
    for pool in config.pools.values() if config else ():
        for source in pool.keys:
            add(pool.provider, source.key)
    for provider in wanted:
        listed = keys_from_env(provider)
        for key in normalize_keys(listed, field_name=PROVIDERS[provider]) if listed else ():
            add(provider, key)
    for provider, key in _from_keyfile(args.keyfile):
        add(provider, key)
    found = {provider: keys for provider, keys in found.items() if keys}
    if not found:
        variables = ", ".join(PROVIDERS[p] for p in wanted)
        raise ConfigError(
            f"no keys configured: add pools to keyrouter.toml, set {variables} "
            "(comma-separated) or pass --keyfile PATH"
        )
    return found


def configured_store(args: argparse.Namespace) -> str | None:
    """The store URL: --store, else `KEYROUTER_STORE`, else the config file's."""
    if getattr(args, "store", None):
        return str(args.store)
    if os.environ.get("KEYROUTER_STORE"):
        return os.environ["KEYROUTER_STORE"]
    config = load_config(args.config)
    return config.store if config else None


def _from_keyfile(path: str | None) -> list[tuple[str, Key]]:
    """The key file's entries: a file named by --keyfile or the environment must exist; the
    default `./keyrouter.keys` is read only when it does."""
    from keyrouter import keyfile

    named = path is not None or bool(os.environ.get(keyfile.ENV_KEYFILE))
    if not named and not keyfile.keyfile_path().exists():
        return []
    return [(entry.provider, entry.key) for entry in keyfile.load(path)]


def watch_store(store: StateStore, url: str) -> Callable[[], None]:
    """Listen for the store's outage; the function returned raises, naming the store and why,
    if it did not answer (a store never raises itself: an app routes on through an outage,
    but a CLI showing "nothing learned" for an unreachable store would mislead)."""
    from keyrouter.core.events import Listeners, StoreDegraded
    from keyrouter.stores import describe_url

    reasons: list[str] = []
    if store.listeners is None:
        store.listeners = Listeners()
    stop = store.listeners.add(
        lambda event: reasons.append(event.reason) if isinstance(event, StoreDegraded) else None
    )

    def check() -> None:
        stop()
        if reasons or getattr(store, "degraded", False):
            why = f": {reasons[0]}" if reasons else ""
            raise StoreError(f"cannot reach {describe_url(url)}{why}", field="store")

    return check
