"""`KeyRoutedOpenAI` / `KeyRoutedAsyncOpenAI`: real `openai` clients with their own key pool.

They are the SDK's classes with one more constructor argument, `keys`; everything else
(resources, return types, exceptions, `with_options`) is the SDK's own. No `patch()` needed.
"""

from __future__ import annotations

import openai

from keyrouter.entry._routed import KeyRouted, StainlessUserAgent

__all__ = ["KeyRoutedAsyncOpenAI", "KeyRoutedOpenAI"]


class KeyRoutedOpenAI(KeyRouted, StainlessUserAgent, openai.OpenAI):
    """`openai.OpenAI` whose every request is spread over `keys` with failover."""

    _keyrouter_provider = "openai"
    _sdk_class_name = "OpenAI"


class KeyRoutedAsyncOpenAI(KeyRouted, StainlessUserAgent, openai.AsyncOpenAI):
    """`openai.AsyncOpenAI` whose every request is spread over `keys` with failover."""

    _keyrouter_provider = "openai"
    _keyrouter_async = True
    _sdk_class_name = "AsyncOpenAI"
