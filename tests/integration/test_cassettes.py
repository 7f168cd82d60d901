"""Replays of recorded traffic (cassettes/openai/, recorded from the fake provider).

Record mode is "none": any request the cassette does not hold fails the test, so these prove
the exact sequence of upstream attempts keyrouter makes, including failover.
"""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pytest
import vcr
import vcr.errors

import keyrouter
from keyrouter import KeyState

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes" / "openai"
MESSAGES = [{"role": "user", "content": "Say hello"}]
KEY_A = "sk-replay-key-a-000000000000000001"
KEY_B = "sk-replay-key-b-000000000000000002"

replay = vcr.VCR(record_mode="none")


def client(*keys: str) -> keyrouter.KeyRoutedOpenAI:
    return keyrouter.KeyRoutedOpenAI(keys=list(keys), objective="round_robin", max_retries=0)


def test_cassettes_hold_no_credentials() -> None:
    for cassette in CASSETTES.parent.glob("*/*.yaml"):
        text = cassette.read_text().lower()
        assert "authorization:" not in text, cassette.name
        assert "api-key:" not in text, cassette.name
        assert not re.search(r"sk-[a-z0-9-]{16,}", text), f"a whole key in {cassette.name}"
        assert not re.search(r"aiza[a-z0-9_-]{20,}", text), f"a whole key in {cassette.name}"
        assert "x-goog-api-key:" not in text, cassette.name


def test_chat_completion_replays_into_the_sdks_type() -> None:
    with replay.use_cassette(str(CASSETTES / "chat_completion.yaml")) as cassette:
        result = client(KEY_A).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    assert cassette.all_played


def test_stream_with_usage_replays() -> None:
    with replay.use_cassette(str(CASSETTES / "chat_stream.yaml")) as cassette:
        chunks = list(
            client(KEY_A).chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert chunks[-1].usage is not None
    assert cassette.all_played


def test_embeddings_and_responses_replay() -> None:
    with replay.use_cassette(str(CASSETTES / "embeddings.yaml")):
        embedding = client(KEY_A).embeddings.create(model="text-embedding-3-small", input="hello")
    assert embedding.data[0].embedding
    with replay.use_cassette(str(CASSETTES / "responses.yaml")):
        response = client(KEY_A).responses.create(model="gpt-4o-mini", input="Say hello")
    assert response.output_text


def test_429_then_200_is_one_successful_call_with_the_first_key_cooling() -> None:
    routed = client(KEY_A, KEY_B)  # built before the cassette: a class patch still applies
    with replay.use_cassette(str(CASSETTES / "failover_429_then_200.yaml")) as cassette:
        result = routed.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.choices[0].message.content
    assert cassette.play_count == 2
    states = {s.key: s.state for s in routed.key_pool.snapshot()}
    assert states[keyrouter.Key(KEY_A).label] is KeyState.COOLING
    assert states[keyrouter.Key(KEY_B).label] is KeyState.AVAILABLE


def test_401_then_200_marks_the_first_key_invalid() -> None:
    routed = client(KEY_A, KEY_B)
    with replay.use_cassette(str(CASSETTES / "failover_401_then_200.yaml")) as cassette:
        routed.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert cassette.play_count == 2
    states = {s.key: s.state for s in routed.key_pool.snapshot()}
    assert states[keyrouter.Key(KEY_A).label] is KeyState.INVALID


def test_a_request_the_cassette_does_not_hold_fails_loudly() -> None:
    with (
        replay.use_cassette(str(CASSETTES / "chat_completion.yaml")),
        # openai 3.x lets vcrpy's error through; 2.x wraps it as a connection error.
        pytest.raises(
            (vcr.errors.CannotOverwriteExistingCassetteException, openai.APIConnectionError)
        ),
    ):
        client(KEY_A).embeddings.create(model="text-embedding-3-small", input="not recorded")


ROOT = CASSETTES.parent
GEMINI_V1 = {"api_version": "v1"}  # recorded on /v1; google-genai 2.x defaults to /v1beta


def test_anthropic_401_then_200_replays() -> None:
    bad, good = "sk-ant-replay-bad-0000000000000001", "sk-ant-replay-good-000000000000002"
    client = keyrouter.KeyRoutedAnthropic(keys=[bad, good], max_retries=0)
    path = ROOT / "anthropic" / "failover_401_then_200.yaml"
    with replay.use_cassette(str(path)) as cassette:
        message = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    assert message.content
    assert cassette.play_count == 2
    states = {s.key: s.state for s in client.key_pool.snapshot()}
    assert states[keyrouter.Key(bad).label] is KeyState.INVALID


def test_anthropic_messages_stream_replays() -> None:
    client = keyrouter.KeyRoutedAnthropic(keys=[KEY_A], max_retries=0)
    path = ROOT / "anthropic" / "messages_stream.yaml"
    with (
        replay.use_cassette(str(path)) as cassette,
        client.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0
    assert cassette.all_played


def test_gemini_400_api_key_invalid_then_200_replays() -> None:
    bad, good = "AIzaSyReplayBad000000000000000000001", "AIzaSyReplayGood00000000000000000002"
    client = keyrouter.KeyRoutedGenAIClient(keys=[bad, good], http_options=GEMINI_V1)
    path = ROOT / "gemini" / "failover_400_then_200.yaml"
    with replay.use_cassette(str(path)) as cassette:
        response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert response.text
    assert cassette.play_count == 2
    states = {s.key: s.state for s in client.key_pool.snapshot()}
    assert states[keyrouter.Key(bad).label] is KeyState.INVALID


def test_gemini_stream_replays() -> None:
    client = keyrouter.KeyRoutedGenAIClient(
        keys=["AIzaSyReplayGood00000000000000000002"], http_options=GEMINI_V1
    )
    with replay.use_cassette(str(ROOT / "gemini" / "generate_stream.yaml")) as cassette:
        chunks = list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
        )
    assert chunks[-1].usage_metadata is not None
    assert cassette.all_played


def test_azure_401_then_200_replays() -> None:
    bad, good = "azreplaybadkey0000000000000000001", "azreplaygoodkey000000000000000002"
    client = keyrouter.KeyRoutedAzureOpenAI(
        keys=[bad, good],
        azure_endpoint="https://example-resource.openai.azure.com",
        api_version="2024-10-21",
        max_retries=0,
    )
    with replay.use_cassette(str(ROOT / "azure" / "failover_401_then_200.yaml")) as cassette:
        result = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert result.choices
    assert cassette.play_count == 2
    states = {s.key: s.state for s in client.key_pool.snapshot()}
    assert states[keyrouter.Key(bad).label] is KeyState.INVALID
