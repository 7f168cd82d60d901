"""keyrouter: spread an app's LLM calls over a pool of API keys, inside the official SDKs.

    import keyrouter, openai
    keyrouter.patch(openai=["sk-a", "sk-b"])
    client = openai.OpenAI()          # routes: failover before the SDK sees a 429

See README.md for the three ways in (patch, KeyRouted* clients, scoped pools).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from keyrouter.errors import ConfigError, KeyFileError, KeyFormatError, KeyrouterError, StoreError

if TYPE_CHECKING:
    from keyrouter._events import on_event
    from keyrouter._otel import instrument_otel
    from keyrouter._pricing import price_of, set_prices
    from keyrouter._snapshot import snapshot
    from keyrouter._usage_api import usage_records, usage_totals
    from keyrouter.core.budget import Budget
    from keyrouter.core.decision import Decision, Refusal
    from keyrouter.core.events import (
        BudgetThresholdCrossed,
        CapacityChanged,
        Event,
        Failover,
        KeyStateChanged,
        RequestRouted,
        StoreDegraded,
        StoreRecovered,
        UsageRecorded,
    )
    from keyrouter.core.health import KeyState
    from keyrouter.core.keys import Key, azure_key
    from keyrouter.core.pool import KeySnapshot
    from keyrouter.core.pricing import Price
    from keyrouter.core.quota import Capacity
    from keyrouter.core.rules import Schedule
    from keyrouter.core.usage import Usage, UsageRecord, UsageTotals
    from keyrouter.entry.anthropic_clients import KeyRoutedAnthropic, KeyRoutedAsyncAnthropic
    from keyrouter.entry.any_api import route
    from keyrouter.entry.azure_clients import KeyRoutedAsyncAzureOpenAI, KeyRoutedAzureOpenAI
    from keyrouter.entry.gemini_client import KeyRoutedGenAIClient
    from keyrouter.entry.openai_clients import KeyRoutedAsyncOpenAI, KeyRoutedOpenAI
    from keyrouter.entry.patching import patch, unpatch
    from keyrouter.entry.scopes import pool
    from keyrouter.keyfile import keys_from_file

__all__ = [
    "Budget",
    "BudgetThresholdCrossed",
    "Capacity",
    "CapacityChanged",
    "ConfigError",
    "Decision",
    "Event",
    "Failover",
    "Key",
    "KeyFileError",
    "KeyFormatError",
    "KeyRoutedAnthropic",
    "KeyRoutedAsyncAnthropic",
    "KeyRoutedAsyncAzureOpenAI",
    "KeyRoutedAsyncOpenAI",
    "KeyRoutedAzureOpenAI",
    "KeyRoutedGenAIClient",
    "KeyRoutedOpenAI",
    "KeySnapshot",
    "KeyState",
    "KeyStateChanged",
    "KeyrouterError",
    "Price",
    "Refusal",
    "RequestRouted",
    "Schedule",
    "StoreDegraded",
    "StoreError",
    "StoreRecovered",
    "Usage",
    "UsageRecord",
    "UsageRecorded",
    "UsageTotals",
    "azure_key",
    "instrument_otel",
    "keys_from_file",
    "on_event",
    "patch",
    "pool",
    "price_of",
    "route",
    "set_prices",
    "snapshot",
    "unpatch",
    "usage_records",
    "usage_totals",
]

__version__ = "0.1.0"

# Quiet by default: records go nowhere until the app configures logging (see docs/observability.md).
logging.getLogger("keyrouter").addHandler(logging.NullHandler())

_LAZY = {
    "Budget": "keyrouter.core.budget",
    "BudgetThresholdCrossed": "keyrouter.core.events",
    "Price": "keyrouter.core.pricing",
    "Usage": "keyrouter.core.usage",
    "UsageRecord": "keyrouter.core.usage",
    "UsageTotals": "keyrouter.core.usage",
    "price_of": "keyrouter._pricing",
    "set_prices": "keyrouter._pricing",
    "usage_records": "keyrouter._usage_api",
    "usage_totals": "keyrouter._usage_api",
    "on_event": "keyrouter._events",
    "snapshot": "keyrouter._snapshot",
    "instrument_otel": "keyrouter._otel",
    "Decision": "keyrouter.core.decision",
    "Refusal": "keyrouter.core.decision",
    "CapacityChanged": "keyrouter.core.events",
    "Event": "keyrouter.core.events",
    "Failover": "keyrouter.core.events",
    "KeyStateChanged": "keyrouter.core.events",
    "RequestRouted": "keyrouter.core.events",
    "StoreDegraded": "keyrouter.core.events",
    "StoreRecovered": "keyrouter.core.events",
    "UsageRecorded": "keyrouter.core.events",
    "KeyState": "keyrouter.core.health",
    "Key": "keyrouter.core.keys",
    "azure_key": "keyrouter.core.keys",
    "KeySnapshot": "keyrouter.core.pool",
    "Capacity": "keyrouter.core.quota",
    "Schedule": "keyrouter.core.rules",
    "patch": "keyrouter.entry.patching",
    "unpatch": "keyrouter.entry.patching",
    "pool": "keyrouter.entry.scopes",
    "KeyRoutedOpenAI": "keyrouter.entry.openai_clients",
    "KeyRoutedAsyncOpenAI": "keyrouter.entry.openai_clients",
    "KeyRoutedAnthropic": "keyrouter.entry.anthropic_clients",
    "KeyRoutedAsyncAnthropic": "keyrouter.entry.anthropic_clients",
    "KeyRoutedGenAIClient": "keyrouter.entry.gemini_client",
    "KeyRoutedAzureOpenAI": "keyrouter.entry.azure_clients",
    "KeyRoutedAsyncAzureOpenAI": "keyrouter.entry.azure_clients",
    "keys_from_file": "keyrouter.keyfile",
    "route": "keyrouter.entry.any_api",
}


def __getattr__(name: str) -> Any:
    """Every public name is imported when first used, so `import keyrouter` costs next to
    nothing: the router loads with the first `patch()`, `pool()` or `Key`, a client subclass
    with its SDK, the key file with cryptography."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'keyrouter' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
