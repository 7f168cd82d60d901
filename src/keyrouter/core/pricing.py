"""List prices per model and what a call's usage costs at them.

Pure: a `PriceTable` is built from a mapping (the shipped data file, `keyrouter/data/
prices.json`, is read by `keyrouter._pricing`, lazily, never from the network). Dated snapshots
and aliases (`gpt-4o-2024-08-06`, `claude-3-5-sonnet-latest`, `models/gemini-2.5-flash`)
resolve to their base model's price; a model the table does not know has no price (None),
never a made-up zero.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from keyrouter.core.usage import Usage

__all__ = ["Price", "PriceTable", "cost_of"]

_PER_TOKEN = 1e-6
_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # claude-sonnet-4-20250514
    re.compile(r"-(latest|\d{3}|\d{2}-\d{4}|\d{2}-\d{2})$"),  # -latest, gemini-1.5-pro-002, -05-20
    re.compile(r"-(preview|exp)$"),  # gemini-2.5-flash-preview (after its date went)
)
_PREFIXES = ("models/", "openai/", "anthropic/", "google/", "gemini/")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cached input and cache writes default to the input price."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    as_of: str = ""
    """The date the price was read (YYYY-MM-DD)."""
    source: str = ""
    """Where it was read (the provider's pricing page)."""

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value < 1e6):
                raise ValueError(f"price {name} must be a number of USD per million tokens >= 0")


def cost_of(usage: Usage, price: Price, multiplier: float = 1.0) -> float:
    """What `usage` costs in USD at `price`, times the key's `multiplier`."""
    cached = price.input if price.cached_input is None else price.cached_input
    write = price.input if price.cache_write is None else price.cache_write
    per_million = (
        usage.uncached_input_tokens * price.input
        + usage.cached_input_tokens * cached
        + usage.cache_creation_tokens * write
        + usage.output_tokens * price.output
    )
    return per_million * _PER_TOKEN * multiplier


class PriceTable:
    """Prices by model name; `lookup` resolves snapshots and aliases to the base model."""

    def __init__(self, prices: Mapping[str, Price], aliases: Mapping[str, str] = {}) -> None:
        self._prices = {name.lower(): price for name, price in prices.items()}
        self._aliases = {name.lower(): target.lower() for name, target in aliases.items()}
        self._resolved: dict[str, Price | None] = {}

    def __contains__(self, model: str) -> bool:
        return self.lookup(model) is not None

    def __len__(self) -> int:
        return len(self._prices)

    def models(self) -> list[str]:
        return sorted(self._prices)

    def lookup(self, model: str | None) -> Price | None:
        """The price of `model`, or None when it is not known."""
        if not model:
            return None
        found = self._resolved.get(model, _MISSING)
        if found is _MISSING:
            found = self._resolve(model)
            if len(self._resolved) < 4096:
                self._resolved[model] = found
        return found  # type: ignore[return-value]

    def base_model(self, model: str) -> str | None:
        """The table entry `model` resolves to (None if none)."""
        name = model.strip().lower()
        for prefix in _PREFIXES:
            name = name.removeprefix(prefix)
        for _ in range(4):
            name = self._aliases.get(name, name)
            if name in self._prices:
                return name
            for suffix in _SUFFIXES:
                shorter = suffix.sub("", name)
                if shorter != name:
                    name = shorter
                    break
            else:
                return None
        return None

    def _resolve(self, model: str) -> Price | None:
        base = self.base_model(model)
        return None if base is None else self._prices[base]

    def with_overrides(self, prices: Mapping[str, Price]) -> PriceTable:
        """A copy with `prices` added or replacing existing entries."""
        merged = {**self._prices, **{k.lower(): v for k, v in prices.items()}}
        return PriceTable(merged, self._aliases)


_MISSING = object()
