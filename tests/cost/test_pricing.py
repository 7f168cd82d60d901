"""Price lookups: the shipped table, snapshots and aliases, unknown models, overrides."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import keyrouter
from keyrouter._pricing import price_of, price_table, reset_prices, set_prices
from keyrouter.core.pricing import Price, cost_of
from keyrouter.core.usage import Usage
from keyrouter.errors import ConfigError


@pytest.fixture(autouse=True)
def _fresh_prices() -> Iterator[None]:
    reset_prices()
    yield
    reset_prices()


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("GPT-4.1-MINI", "gpt-4.1-mini"),
    ],
)
def test_snapshots_and_aliases_resolve_to_the_base_price(model: str, base: str) -> None:
    assert price_table().base_model(model) == base
    assert price_of(model) == price_table().lookup(base)


def test_every_shipped_price_is_dated_and_sourced() -> None:
    table = price_table()
    assert len(table) >= 30
    for model in table.models():
        price = table.lookup(model)
        assert price is not None
        assert price.as_of[:2] == "20", model
        assert price.source.startswith("https://"), model
        assert price.output >= price.input or price.output == 0.0, model


def test_unknown_model_has_no_price_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="keyrouter"):
        assert price_of("my-finetune-xyz") is None
        assert price_of("my-finetune-xyz") is None
        assert price_of(None) is None
    warnings = [r for r in caplog.records if "my-finetune-xyz" in r.getMessage()]
    assert len(warnings) == 1


def test_overrides_add_and_replace_models() -> None:
    keyrouter.set_prices({"my-model": {"input": 1.0, "output": 2.0}})
    set_prices({"gpt-4o": Price(input=1.0, output=1.0, as_of="2026-12-01", source="contract")})
    assert keyrouter.price_of("my-model") == Price(1.0, 2.0)
    assert price_of("gpt-4o-2024-08-06") == Price(1.0, 1.0, as_of="2026-12-01", source="contract")
    reset_prices()
    assert price_of("my-model") is None


def test_bad_override_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"prices\.x"):
        set_prices({"x": {"input": -1, "output": 1}})
    with pytest.raises(ConfigError, match=r"prices\.y"):
        set_prices({"y": {"inputs": 1}})


def test_cost_prices_each_kind_of_token() -> None:
    price = Price(input=2.0, output=10.0, cached_input=0.5, cache_write=2.5)
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=100_000,
        cached_input_tokens=200_000,
        cache_creation_tokens=100_000,
        reasoning_tokens=50_000,
    )
    # 700k uncached * 2 + 200k cached * 0.5 + 100k written * 2.5 + 100k out * 10, per million
    assert cost_of(usage, price) == pytest.approx(1.4 + 0.1 + 0.25 + 1.0)
    assert cost_of(usage, price, 0.5) == pytest.approx(2.75 / 2)
    assert cost_of(Usage(10, 0, 10), Price(1.0, 1.0)) == pytest.approx(10e-6)  # no cached price
