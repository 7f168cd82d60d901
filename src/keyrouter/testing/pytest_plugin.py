"""pytest plugin (entry point ``keyrouter``): a ``fake_openai`` fixture.

Installed with keyrouter, so any test suite can ask for ``fake_openai`` and get
a running :class:`~keyrouter.testing.FakeProvider` with a few working keys.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyrouter.testing import FakeKey, FakeProvider

FAKE_OPENAI_KEYS = ("sk-fake-1", "sk-fake-2", "sk-fake-3")
"""The secrets of the keys ``fake_openai`` serves; generous limits, so headers are present."""


@pytest.fixture
def fake_openai() -> Iterator[FakeProvider]:
    """A fresh fake OpenAI server for one test; keys: ``FAKE_OPENAI_KEYS``."""
    keys = [FakeKey(secret, rpm=10_000, tpm=10_000_000) for secret in FAKE_OPENAI_KEYS]
    with FakeProvider(keys=keys) as fake:
        yield fake
