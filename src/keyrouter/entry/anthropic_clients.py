"""`KeyRoutedAnthropic` / `KeyRoutedAsyncAnthropic`: real `anthropic` clients with a key pool."""

from __future__ import annotations

import anthropic

from keyrouter.entry._routed import KeyRouted, StainlessUserAgent

__all__ = ["KeyRoutedAnthropic", "KeyRoutedAsyncAnthropic"]


class KeyRoutedAnthropic(KeyRouted, StainlessUserAgent, anthropic.Anthropic):
    """`anthropic.Anthropic` whose every request is spread over `keys` with failover."""

    _keyrouter_provider = "anthropic"
    _sdk_class_name = "Anthropic"


class KeyRoutedAsyncAnthropic(KeyRouted, StainlessUserAgent, anthropic.AsyncAnthropic):
    """`anthropic.AsyncAnthropic` whose every request is spread over `keys` with failover."""

    _keyrouter_provider = "anthropic"
    _keyrouter_async = True
    _sdk_class_name = "AsyncAnthropic"
