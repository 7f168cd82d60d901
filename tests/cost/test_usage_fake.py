"""Usage of every call, read through the unmodified SDKs against the fake provider: each
provider, plain and streamed, with and without reported usage; budgets refuse before sending."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import keyrouter
from keyrouter.core.registry import global_pool
from keyrouter.testing import FakeKey, FakeProvider

OPENAI = "sk-usage-test-openai-000000000001"
ANTHROPIC = "sk-ant-api03-usage-test-00000000001"
GEMINI = "AIzaSyUsageTest0000000000000000000001"
HI = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider([FakeKey(OPENAI), FakeKey(ANTHROPIC), FakeKey(GEMINI)]) as provider:
        keyrouter.patch(openai=[OPENAI], anthropic=[ANTHROPIC], gemini=[GEMINI], usage=True)
        yield provider


def _only_record() -> keyrouter.UsageRecord:
    records = keyrouter.usage_records()
    assert len(records) == 1
    return records[0]


def test_openai_chat_plain(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    record = _only_record()
    assert reply.usage is not None
    assert record.usage.input_tokens == reply.usage.prompt_tokens
    assert record.usage.output_tokens == reply.usage.completion_tokens
    assert not record.estimated
    assert record.model == reply.model
    assert record.key == keyrouter.Key(OPENAI).fingerprint
    assert record.status == 200
    price = keyrouter.price_of("gpt-4o-mini")
    assert price is not None
    expected = (
        reply.usage.prompt_tokens * price.input + reply.usage.completion_tokens * price.output
    ) / 1e6
    assert record.cost_usd == pytest.approx(expected)


def test_openai_chat_stream_with_include_usage(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    reported = chunks[-1].usage
    assert reported is not None
    record = _only_record()
    assert (record.usage.input_tokens, record.usage.output_tokens) == (
        reported.prompt_tokens,
        reported.completion_tokens,
    )
    assert not record.estimated


def test_openai_chat_stream_without_usage_is_estimated(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        if c.choices
    )
    record = _only_record()
    assert record.estimated
    assert record.usage.output_tokens == round(len(text) / 4)
    assert 0 < record.usage.input_tokens < 10  # "Say hello": the prompt alone, not its cap
    assert record.cost_usd is not None


def test_include_usage_opt_in_asks_the_stream_for_its_usage(fake: FakeProvider) -> None:
    keyrouter.patch(openai=[OPENAI], usage="include")
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    record = _only_record()
    assert not record.estimated
    assert record.usage.output_tokens == chunks[-1].usage.completion_tokens


async def test_openai_responses_plain_and_streamed_async(fake: FakeProvider) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url, max_retries=0)
    reply = await client.responses.create(model="gpt-4o", input="hi")
    async with client.responses.stream(model="gpt-4o", input="hi") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    plain, streamed = keyrouter.usage_records()
    assert reply.usage is not None
    assert final.usage is not None
    assert (plain.usage.input_tokens, plain.usage.output_tokens) == (
        reply.usage.input_tokens,
        reply.usage.output_tokens,
    )
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )
    assert not plain.estimated
    assert not streamed.estimated


def test_anthropic_plain_and_stream(fake: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, max_retries=0)
    reply = client.messages.create(model="claude-sonnet-4-20250514", max_tokens=64, messages=HI)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=HI) as stream:
        final = stream.get_final_message()
    plain, streamed = keyrouter.usage_records()
    assert plain.usage.input_tokens == reply.usage.input_tokens
    assert plain.usage.output_tokens == reply.usage.output_tokens
    assert streamed.usage.output_tokens == final.usage.output_tokens  # message_delta's count
    assert streamed.usage.input_tokens == final.usage.input_tokens  # from message_start
    assert plain.cost_usd is not None
    assert plain.cost_usd > 0


def test_gemini_plain_and_stream(fake: FakeProvider) -> None:
    client = genai.Client(http_options=types.HttpOptions(base_url=fake.gemini_base_url))
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    plain, streamed = keyrouter.usage_records()
    assert reply.usage_metadata is not None
    assert plain.usage.input_tokens == reply.usage_metadata.prompt_token_count
    assert plain.usage.output_tokens == reply.usage_metadata.candidates_token_count
    last = chunks[-1].usage_metadata
    assert last is not None
    assert streamed.usage.output_tokens == last.candidates_token_count  # the last chunk's
    assert plain.model == "gemini-2.5-flash"


def test_calls_without_a_model_or_usage_are_not_recorded(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    assert client.models.list().data
    assert keyrouter.usage_records() == []


def test_unpriced_model_costs_unknown_not_zero(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    client.chat.completions.create(model="my-private-finetune", messages=HI)
    record = _only_record()
    assert record.cost_usd is None
    totals = keyrouter.usage_totals("model")
    assert totals["my-private-finetune"].unpriced_calls == 1


def test_a_spent_pool_budget_refuses_before_sending(fake: FakeProvider) -> None:
    keyrouter.patch(openai=[OPENAI], budgets=keyrouter.Budget(usd=0.0, period="day"))
    client = openai.OpenAI(base_url=fake.base_url)
    with pytest.raises(
        openai.RateLimitError, match=r"budget .* resets at \d{4}-\d\d-\d\dT00:00:00Z"
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert fake.stats(OPENAI).count(200) == 0  # nothing was sent, no SDK retry either
    assert len(fake.requests) == 0


def test_spent_budgets_raise_each_sdks_own_error(fake: FakeProvider) -> None:
    spent = keyrouter.Budget(usd=0.0, period="month")
    keyrouter.patch(anthropic=[ANTHROPIC], gemini=[GEMINI], budgets=spent)
    claude = anthropic.Anthropic(base_url=fake.anthropic_base_url)
    with pytest.raises(anthropic.RateLimitError, match="budget"):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=HI)
    gemini = genai.Client(http_options=types.HttpOptions(base_url=fake.gemini_base_url))
    with pytest.raises(genai.errors.ClientError, match="budget"):
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert len(fake.requests) == 0


def test_pools_that_keep_no_usage_leave_responses_alone(fake: FakeProvider) -> None:
    keyrouter.patch(openai=[OPENAI])
    pool = global_pool("openai")
    assert pool is not None
    assert pool.spending is None  # nothing meters, nothing is reserved
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert keyrouter.usage_records() == []


def test_a_scoped_pool_has_its_own_budget(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
    spent = keyrouter.Budget(usd=0.0, period="day", name="tenant-a")
    with keyrouter.pool(openai=[OPENAI], budget=spent), pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # the global pool serves
    assert fake.stats(OPENAI).count(200) == 1


def test_budgets_from_a_config_pool_policy_apply() -> None:
    from keyrouter.core.policy import PoolPolicy
    from keyrouter.entry._pools import build_pool

    policy = PoolPolicy(budgets=({"usd": 5, "period": "day", "thresholds": [0.9]},))
    built = build_pool("openai", [OPENAI], objective="headroom", policy=policy)
    assert built.spending is not None
    assert [r.budget for r in built.spending._rules] == [
        keyrouter.Budget(usd=5, period="day", thresholds=(0.9,))
    ]
    with pytest.raises(keyrouter.ConfigError, match="budgets"):
        build_pool(
            "openai",
            [OPENAI],
            objective="headroom",
            policy=PoolPolicy(budgets=({"usd": 5, "per": "team"},)),
        )
