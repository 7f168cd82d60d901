"""`keyrouter.snapshot()`: per key, state and limits, and usage and cost this period."""

from __future__ import annotations

import openai

import keyrouter
from keyrouter.core.keys import fingerprint
from tests.transports.mock_openai import MockOpenAI, chat, ok

A = "sk-snap-a-0000000000000000000000001"
B = "sk-snap-b-0000000000000000000000002"


def test_usage_and_cost_this_month_per_key() -> None:
    keyrouter.patch(openai=[A, B], usage=True, objective="round_robin")
    client = openai.OpenAI(http_client=MockOpenAI({A: ok(), B: ok()}).client(), max_retries=0)
    for _ in range(3):
        chat(client)
    snaps = keyrouter.snapshot("openai")["openai"]
    assert [s.fingerprint for s in snaps] == [fingerprint(A), fingerprint(B)]
    assert {s.period[:6] for s in snaps if s.period} == {"month:"}
    usage = [s.period_usage for s in snaps]
    assert all(u is not None for u in usage)
    assert sorted(u.calls for u in usage if u) == [1, 2]
    assert sum(u.usage.input_tokens for u in usage if u) == 9
    assert all(u.cost_usd > 0 for u in usage if u)
    day = keyrouter.snapshot("openai", period="day")["openai"]
    assert {s.period[:4] for s in day if s.period} == {"day:"}


def test_a_pool_that_keeps_no_usage_says_so() -> None:
    keyrouter.patch(openai=[A])
    chat(openai.OpenAI(http_client=MockOpenAI({A: ok()}).client(), max_retries=0))
    (snap,) = keyrouter.snapshot("openai")["openai"]
    assert snap.period_usage is None
    assert snap.successes == 1
