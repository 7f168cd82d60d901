"""One way to build and call each SDK against the fake provider, plain or through keyrouter.

The fault tests compare the two: whatever the plain SDK raises for a fault, keyrouter may only
turn into a success (another key served) or the very same exception type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types

import keyrouter
from keyrouter.testing import FakeProvider

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GEMINI_MODEL = "gemini-2.5-flash"
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Sdk:
    name: str
    keys: tuple[str, ...]
    """Secrets the fake knows for this SDK's tests (the first is the one faults target)."""
    plain: Callable[[FakeProvider, str, float], Any]
    routed: Callable[[FakeProvider, list[str], float], Any]
    call: Callable[[Any, bool], object]
    """Make one call (streamed or not) and consume the whole answer."""


def _openai_plain(fake: FakeProvider, key: str, timeout: float) -> Any:
    return openai.OpenAI(api_key=key, base_url=fake.base_url, max_retries=0, timeout=timeout)


def _openai_routed(fake: FakeProvider, keys: list[str], timeout: float) -> Any:
    return keyrouter.KeyRoutedOpenAI(
        keys=keys, base_url=fake.base_url, max_retries=0, timeout=timeout
    )


def _openai_call(client: Any, stream: bool) -> object:
    result = client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES, stream=stream)
    if stream:
        return [chunk.choices[0].delta.content for chunk in result if chunk.choices]
    return result.choices[0].message.content


def _anthropic_plain(fake: FakeProvider, key: str, timeout: float) -> Any:
    return anthropic.Anthropic(
        api_key=key, base_url=fake.anthropic_base_url, max_retries=0, timeout=timeout
    )


def _anthropic_routed(fake: FakeProvider, keys: list[str], timeout: float) -> Any:
    return keyrouter.KeyRoutedAnthropic(
        keys=keys, base_url=fake.anthropic_base_url, max_retries=0, timeout=timeout
    )


def _anthropic_call(client: Any, stream: bool) -> object:
    result = client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=16, messages=MESSAGES, stream=stream
    )
    if stream:
        return [event.type for event in result]
    return result.content[0].text


def _gemini_options(fake: FakeProvider, timeout: float) -> types.HttpOptions:
    return types.HttpOptions(base_url=fake.gemini_base_url, timeout=int(timeout * 1000))


def _gemini_plain(fake: FakeProvider, key: str, timeout: float) -> Any:
    return genai.Client(api_key=key, http_options=_gemini_options(fake, timeout))


def _gemini_routed(fake: FakeProvider, keys: list[str], timeout: float) -> Any:
    return keyrouter.KeyRoutedGenAIClient(keys=keys, http_options=_gemini_options(fake, timeout))


def _gemini_call(client: Any, stream: bool) -> object:
    if stream:
        chunks = client.models.generate_content_stream(model=GEMINI_MODEL, contents="hi")
        return [chunk.text for chunk in chunks]
    return client.models.generate_content(model=GEMINI_MODEL, contents="hi").text


OPENAI = Sdk(
    "openai",
    ("sk-rel-openai-0000000000000000001", "sk-rel-openai-0000000000000000002"),
    _openai_plain,
    _openai_routed,
    _openai_call,
)
ANTHROPIC = Sdk(
    "anthropic",
    ("sk-ant-api03-rel-00000000000000001", "sk-ant-api03-rel-00000000000000002"),
    _anthropic_plain,
    _anthropic_routed,
    _anthropic_call,
)
GEMINI = Sdk(
    "gemini",
    ("AIzaSyRel0000000000000000000000000001", "AIzaSyRel0000000000000000000000000002"),
    _gemini_plain,
    _gemini_routed,
    _gemini_call,
)
SDKS = (OPENAI, ANTHROPIC, GEMINI)


def outcome(call: Callable[[], object]) -> type[BaseException] | None:
    """The exception type `call` raised, or None if it succeeded."""
    try:
        call()
    except Exception as error:
        return type(error)
    return None
