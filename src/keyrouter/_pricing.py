"""The price table in force: the shipped data file, read on first use, plus the user's overrides.

`keyrouter.set_prices({...})` adds or replaces models (the config file will call it too);
`keyrouter.price_of(model)` says what keyrouter would charge. A model with no price logs one
warning per model name and costs "unknown" (None), so totals never pretend it was free.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from importlib import resources

from keyrouter.core.pricing import Price, PriceTable
from keyrouter.errors import ConfigError

__all__ = ["price_of", "price_table", "reset_prices", "set_prices"]

_log = logging.getLogger("keyrouter")
_lock = threading.Lock()
_table: PriceTable | None = None
_overrides: dict[str, Price] = {}
_warned: set[str] = set()


def _load_shipped() -> PriceTable:
    text = resources.files("keyrouter").joinpath("data/prices.json").read_text("utf-8")
    data = json.loads(text)
    prices = {name: Price(**entry) for name, entry in data["models"].items()}
    return PriceTable(prices, data.get("aliases", {}))


def price_table() -> PriceTable:
    """The table in force (loaded on first use)."""
    global _table
    table = _table
    if table is None:
        with _lock:
            if _table is None:
                _table = _load_shipped().with_overrides(_overrides)
            table = _table
    return table


def set_prices(prices: Mapping[str, Price | Mapping[str, object]]) -> None:
    """Add or replace model prices (USD per million tokens), e.g.
    `keyrouter.set_prices({"my-model": {"input": 1.0, "output": 2.0}})`.

    Values are `keyrouter.Price`s or mappings with the same fields. Overrides last for the
    process and survive `reset_prices()` only if set again.
    """
    if not isinstance(prices, Mapping):
        raise ConfigError(
            f"expected a mapping of model name to price, got {type(prices).__name__}",
            field="prices",
        )
    parsed: dict[str, Price] = {}
    for model, value in prices.items():
        if not isinstance(model, str) or not model:
            raise ConfigError("a model name must be a non-empty string", field="prices")
        try:
            parsed[model] = value if isinstance(value, Price) else Price(**value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad price: {exc}", field=f"prices.{model}") from None
    global _table
    with _lock:
        _overrides.update(parsed)
        _table = None
        _warned.difference_update(m.lower() for m in parsed)


def reset_prices() -> None:
    """Back to the shipped table (tests)."""
    global _table
    with _lock:
        _overrides.clear()
        _table = None
        _warned.clear()


def price_of(model: str | None) -> Price | None:
    """The price keyrouter uses for `model`; None (and one warning per model) if unknown."""
    price = price_table().lookup(model)
    if price is None and model and model not in _warned:
        with _lock:
            fresh = model not in _warned
            _warned.add(model)
        if fresh:
            _log.warning(
                "keyrouter: no price known for model %r; its cost is recorded as unknown "
                "(add one with keyrouter.set_prices)",
                model,
            )
    return price
