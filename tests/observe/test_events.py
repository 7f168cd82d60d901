"""Events: each attempt's routing decision, each failover; cheap when nobody listens."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

import keyrouter
import keyrouter.transports._plan as plan_module
from tests.transports.mock_openai import INVALID, RATE_LIMITED, MockOpenAI, chat, ok

GOOD = "sk-good-000000000000000000000001"
LIMITED = "sk-limited-0000000000000000000002"
REVOKED = "sk-revoked-0000000000000000000003"


@pytest.fixture
def events() -> Iterator[list[keyrouter.Event]]:
    seen: list[keyrouter.Event] = []
    remove = keyrouter.on_event(seen.append)
    yield seen
    remove()


def test_a_failover_is_reported_with_from_to_and_why(events: list[keyrouter.Event]) -> None:
    mock = MockOpenAI({LIMITED: RATE_LIMITED, GOOD: ok()})
    client = keyrouter.KeyRoutedOpenAI(
        keys=[keyrouter.Key(LIMITED, name="limited"), keyrouter.Key(GOOD, name="good")],
        http_client=mock.client(),
        objective="round_robin",
        max_retries=0,
    )
    chat(client)
    routed = [e for e in events if isinstance(e, keyrouter.RequestRouted)]
    failovers = [e for e in events if isinstance(e, keyrouter.Failover)]
    assert [(e.key, e.attempt) for e in routed] == [("limited", 1), ("good", 2)]
    assert routed[0].provider == "openai"
    assert routed[0].decision.key is not None
    assert routed[0].decision.key.name == "limited"
    assert "limited" in routed[1].decision.explain()  # why the first key was not chosen again
    (failover,) = failovers
    assert (failover.from_key, failover.to_key) == ("limited", "good")
    assert (failover.kind, failover.status, failover.attempt) == ("rate_limited", 429, 2)
    assert failover.reason


def test_a_failing_or_slow_callback_never_breaks_the_call() -> None:
    calls = 0

    def broken(event: keyrouter.Event) -> None:
        nonlocal calls
        calls += 1
        time.sleep(0.01)
        raise RuntimeError("listener bug")

    remove = keyrouter.on_event(broken)
    try:
        mock = MockOpenAI({REVOKED: INVALID, GOOD: ok()})
        client = keyrouter.KeyRoutedOpenAI(
            keys=[REVOKED, GOOD], http_client=mock.client(), objective="round_robin"
        )
        assert chat(client).choices[0].message.content == "hello"
    finally:
        remove()
    assert calls >= 3  # routed twice, a failover, a key state change


def test_no_per_call_event_is_built_when_nobody_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    monkeypatch.setattr(plan_module, "RequestRouted", lambda *a: built.append(a))
    logging.getLogger("keyrouter").setLevel(logging.INFO)
    try:
        client = keyrouter.KeyRoutedOpenAI(
            keys=[GOOD], http_client=MockOpenAI({GOOD: ok()}).client()
        )
        for _ in range(3):
            chat(client)
    finally:
        logging.getLogger("keyrouter").setLevel(logging.NOTSET)
    assert built == []
    remove = keyrouter.on_event(lambda e: None)
    try:
        chat(client)
    finally:
        remove()
    assert len(built) == 1


def test_usage_is_reported_for_pools_that_keep_it(events: list[keyrouter.Event]) -> None:
    import openai

    keyrouter.patch(openai=[keyrouter.Key(GOOD, name="good")], usage=True)
    chat(openai.OpenAI(http_client=MockOpenAI({GOOD: ok()}).client(), max_retries=0))
    (usage,) = [e for e in events if isinstance(e, keyrouter.UsageRecorded)]
    assert (usage.key, usage.model, usage.provider) == ("good", "gpt-4o-mini", "openai")
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (3, 1)
    assert usage.cost_usd is not None
