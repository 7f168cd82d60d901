"""Logging: under `keyrouter`, structured, quiet on success, and never a secret."""

from __future__ import annotations

import logging

import pytest

import keyrouter
from tests.transports.mock_openai import INVALID, NO_QUOTA, RATE_LIMITED, MockOpenAI, chat, ok

SECRETS = {
    "sk-good-aaaaaaaaaaaaaaaaaaaaaaaaaaa1": ok(),
    "sk-limited-bbbbbbbbbbbbbbbbbbbbbbb2": RATE_LIMITED,
    "sk-revoked-ccccccccccccccccccccccc3": INVALID,
    "sk-no-credit-dddddddddddddddddddd4": NO_QUOTA,
}


def test_the_library_logger_is_quiet_by_default() -> None:
    handlers = logging.getLogger("keyrouter").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_no_record_carries_key_material(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keyrouter")
    import openai

    keyrouter.patch(openai=list(SECRETS), objective="round_robin", usage=True)
    client = openai.OpenAI(http_client=MockOpenAI(dict(SECRETS)).client(), max_retries=0)
    for _ in range(6):
        chat(client)
    records = [r for r in caplog.records if r.name.startswith("keyrouter")]
    assert {getattr(r, "event", None) for r in records} >= {
        "request_routed",
        "failover",
        "key_state_changed",
        "usage_recorded",
    }
    for record in records:
        text = " ".join(
            [record.getMessage(), record.exc_text or "", *map(repr, record.__dict__.values())]
        )
        for secret in SECRETS:
            assert secret not in text, record.getMessage()
            assert secret[-12:] not in text, "not even the secret's tail beyond a fingerprint"


def test_failover_records_have_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keyrouter")
    limited, good = "sk-limited-bbbbbbbbbbbbbbbbbbbbbbb2", "sk-good-aaaaaaaaaaaaaaaaaaaaaaaaaaa1"
    mock = MockOpenAI({limited: RATE_LIMITED, good: ok()})
    client = keyrouter.KeyRoutedOpenAI(
        keys=[keyrouter.Key(limited, name="a"), keyrouter.Key(good, name="b")],
        http_client=mock.client(),
        objective="round_robin",
    )
    chat(client)
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "failover"]
    assert record.levelno == logging.INFO
    assert (record.from_key, record.to_key, record.kind) == ("a", "b", "rate_limited")  # type: ignore[attr-defined]
    assert record.getMessage() == "openai failover a -> b: rate_limited 429 (rate_limit_exceeded)"


def test_the_success_path_logs_nothing_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keyrouter")
    good = "sk-good-aaaaaaaaaaaaaaaaaaaaaaaaaaa1"
    client = keyrouter.KeyRoutedOpenAI(keys=[good], http_client=MockOpenAI({good: ok()}).client())
    for _ in range(5):
        chat(client)
    levels = {r.levelno for r in caplog.records if r.name.startswith("keyrouter")}
    assert levels == {logging.DEBUG}
