"""Policies through the real SDKs: a forbidden model fails before anything is sent."""

from __future__ import annotations

import anthropic
import openai
import pytest
from google.genai import errors, types

import keyrouter
from keyrouter import Key
from keyrouter.testing import FakeKey, FakeProvider
from tests.integration.conftest import GOOD, GOOD_2

MESSAGES = [{"role": "user", "content": "hi"}]


def test_a_model_no_key_may_serve_is_refused_by_the_sdk_before_anything_is_sent(
    fake: FakeProvider,
) -> None:
    keys = [Key(GOOD, name="mini", allow_models=["gpt-4o-mini"]), Key(GOOD_2, deny_models="gpt-4o")]
    client = keyrouter.KeyRoutedOpenAI(keys=keys, base_url=fake.base_url)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    message = str(caught.value)
    assert "policy" in message
    assert "mini: policy allow_models" in message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fake.stats(GOOD).requests == 0
    assert fake.stats(GOOD_2).requests == 0
    # An allowed model goes to the keys that allow it, and only to them.
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="o3", messages=MESSAGES)
    assert fake.stats(GOOD).count(200) + fake.stats(GOOD_2).count(200) == 5
    assert fake.stats(GOOD).count(200) <= 4


def test_anthropic_and_gemini_raise_their_own_permission_errors(fake: FakeProvider) -> None:
    claude = keyrouter.KeyRoutedAnthropic(
        keys=[Key("sk-ant-policy-000000000000000000001", allow_models=["claude-haiku-*"])],
        base_url=fake.anthropic_base_url,
    )
    with pytest.raises(anthropic.PermissionDeniedError, match="policy allow_models"):
        claude.messages.create(model="claude-opus-4-1", max_tokens=8, messages=MESSAGES)
    gemini_key = "AIzaSyPolicy0000000000000000000000001"
    with FakeProvider([FakeKey(gemini_key)]) as provider:
        client = keyrouter.KeyRoutedGenAIClient(
            keys=[Key(gemini_key, deny_models="*-pro")],
            http_options=types.HttpOptions(base_url=provider.gemini_base_url),
        )
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-pro", contents="hi")
        assert caught.value.code == 403
        assert "deny_models" in str(caught.value)
        assert provider.stats(gemini_key).requests == 0
        assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    assert fake.stats(GOOD).requests == 0


def test_a_scoped_pool_uses_only_its_labels(fake: FakeProvider) -> None:
    keyrouter.patch(openai=[Key(GOOD, labels=["team-a"]), Key(GOOD_2, labels=["team-b"])])
    client = openai.OpenAI(base_url=fake.base_url)
    team_a = [Key(GOOD, labels=["team-a"]), Key(GOOD_2, labels=["team-b"])]
    with keyrouter.pool(openai=team_a, labels=["team-a"]):
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fake.stats(GOOD).count(200) == 3
    assert fake.stats(GOOD_2).requests == 0


def test_a_key_out_of_its_schedule_is_named_in_the_error(fake: FakeProvider) -> None:
    now_hour = __import__("time").gmtime().tm_hour
    closed = keyrouter.Schedule(hours=f"{(now_hour + 2) % 24}-{(now_hour + 3) % 24}")
    client = keyrouter.KeyRoutedOpenAI(
        keys=[Key(GOOD, name="night", schedule=closed)], base_url=fake.base_url, max_wait=0
    )
    with pytest.raises(openai.RateLimitError, match="night \\(policy schedule: serves only"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert fake.stats(GOOD).requests == 0
