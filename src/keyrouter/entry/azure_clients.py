"""`KeyRoutedAzureOpenAI` / `KeyRoutedAsyncAzureOpenAI`: Azure OpenAI clients with a key pool."""

from __future__ import annotations

import openai

from keyrouter.entry._routed import KeyRouted, StainlessUserAgent

__all__ = ["KeyRoutedAsyncAzureOpenAI", "KeyRoutedAzureOpenAI"]


class KeyRoutedAzureOpenAI(KeyRouted, StainlessUserAgent, openai.AzureOpenAI):
    """`openai.AzureOpenAI` whose requests are spread over `keys` (see `keyrouter.azure_key`)."""

    _keyrouter_provider = "azure"
    _sdk_class_name = "AzureOpenAI"


class KeyRoutedAsyncAzureOpenAI(KeyRouted, StainlessUserAgent, openai.AsyncAzureOpenAI):
    """`openai.AsyncAzureOpenAI` whose requests are spread over `keys`."""

    _keyrouter_provider = "azure"
    _keyrouter_async = True
    _sdk_class_name = "AsyncAzureOpenAI"
