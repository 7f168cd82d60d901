"""Shared fixtures: every test starts with no patch, no global pool and a fresh state book."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import keyrouter
from keyrouter.core.registry import default_book


@pytest.fixture(autouse=True)
def _clean_keyrouter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_API_KEYS",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_API_KEYS",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GEMINI_API_KEYS",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "KEYROUTER_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    keyrouter.unpatch()
    default_book().reset()
    listeners = default_book().listeners
    before = list(listeners._callbacks)
    yield
    keyrouter.unpatch()
    default_book().reset()
    listeners._callbacks[:] = before  # a listener a test added and left does not outlive it
