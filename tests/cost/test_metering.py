"""The metering wrapper: compressed bodies, bytes untouched, a body closed half way."""

from __future__ import annotations

import gzip
import json
import time

import httpx2
import openai

import keyrouter
from keyrouter.core.registry import global_pool
from tests.transports.mock_openai import COMPLETION

KEY = "sk-metering-test-000000000000000001"
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 200},
}


def _client(answer: httpx2.Response) -> openai.OpenAI:
    transport = httpx2.MockTransport(lambda request: answer)
    return openai.OpenAI(http_client=openai.DefaultHttpxClient(transport=transport))


def test_a_gzip_body_is_read_for_usage_and_reaches_the_sdk_unchanged() -> None:
    body = json.dumps({**COMPLETION, "model": "gpt-4o-2024-08-06", "usage": USAGE}).encode()
    chunks = [gzip.compress(body)[i : i + 7] for i in range(0, len(gzip.compress(body)), 7)]
    answer = httpx2.Response(
        200,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        stream=httpx2.ByteStream(b"".join(chunks)),
    )
    keyrouter.patch(openai=[KEY], usage=True)
    reply = _client(answer).chat.completions.create(model="gpt-4o", messages=[])
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 1200
    (record,) = keyrouter.usage_records()
    assert record.usage == keyrouter.Usage(
        input_tokens=1200, output_tokens=300, cached_input_tokens=1000, reasoning_tokens=200
    )
    assert record.model == "gpt-4o-2024-08-06"
    # 200 uncached at 2.50, 1000 cached at 1.25, 300 out at 10.00 per million
    assert record.cost_usd is not None
    assert abs(record.cost_usd - (200 * 2.5 + 1000 * 1.25 + 300 * 10.0) / 1e6) < 1e-12


def test_a_stream_closed_early_is_still_settled() -> None:
    events = b"".join(
        b"data: "
        + json.dumps({"choices": [{"delta": {"content": "word " * 20}}]}).encode()
        + b"\n\n"
        for _ in range(50)
    )
    answer = httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, stream=httpx2.ByteStream(events)
    )
    budget = keyrouter.Budget(usd=1.0, period="day")
    keyrouter.patch(openai=[KEY], budgets=budget)
    stream = _client(answer).chat.completions.create(model="gpt-4o", messages=[], stream=True)
    next(iter(stream))
    stream.close()
    (record,) = keyrouter.usage_records()
    assert record.estimated
    assert record.usage.output_tokens > 0
    pool = global_pool("openai")
    assert pool is not None
    assert pool.spending is not None
    claim, _ = pool.spending._rules[0].claim_for(pool.keys[0], time.time())
    spend = pool.spending.ledger.spend(claim.budget_id, claim.period)
    assert spend.reserved_usd == 0.0  # the reservation was replaced by the estimate's cost
    assert spend.spent_usd == record.cost_usd
