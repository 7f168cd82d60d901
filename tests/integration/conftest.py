"""Integration tests: the real SDK, its own HTTP client, and the fake provider on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keyrouter.testing import FakeKey, FakeProvider

GOOD = "sk-int-good-000000000000000000001"
GOOD_2 = "sk-int-good-000000000000000000002"
LIMITED = "sk-int-limited-00000000000000003"
SPENT = "sk-int-spent-0000000000000000004"
REVOKED = "sk-int-revoked-00000000000000005"
BANNED = "sk-int-banned-000000000000000006"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    keys = [
        FakeKey(GOOD),
        FakeKey(GOOD_2),
        FakeKey(LIMITED, rpm=1),
        FakeKey(SPENT, status="insufficient_quota"),
        FakeKey(REVOKED, status="invalid"),
        FakeKey(BANNED, status="forbidden"),
    ]
    with FakeProvider(keys) as provider:
        yield provider
