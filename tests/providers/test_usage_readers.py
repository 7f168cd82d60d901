"""Usage readers on each provider's real field names (cache and reasoning fields included)."""

from __future__ import annotations

from keyrouter.core.usage import Usage
from keyrouter.providers._usage import count_text, output_allowance, reader_for


def _read(wire: str, *objects: object) -> Usage | None:
    reader = reader_for(wire)
    for obj in objects:
        reader.feed(obj)
    return reader.usage()


def test_openai_chat_with_cached_and_reasoning_tokens() -> None:
    body = {
        "model": "o4-mini-2025-04-16",
        "usage": {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 192},
        },
    }
    assert _read("openai", body) == Usage(2006, 300, 1920, 0, 192)


def test_openai_stream_usage_comes_in_the_last_chunk_only() -> None:
    chunks = [
        {"choices": [{"delta": {"content": "hi"}}], "usage": None},
        {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 2}},
    ]
    assert _read("openai", *chunks) == Usage(8, 2)
    assert _read("openai", chunks[0]) is None


def test_openai_responses_api_plain_and_completed_event() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 20,
        "input_tokens_details": {"cached_tokens": 10},
        "output_tokens_details": {"reasoning_tokens": 5},
    }
    assert _read("openai", {"object": "response", "usage": usage}) == Usage(50, 20, 10, 0, 5)
    events = [
        {"type": "response.created", "response": {"usage": None}},
        {"type": "response.output_text.delta", "delta": "hi"},
        {"type": "response.completed", "response": {"model": "gpt-4.1", "usage": usage}},
    ]
    reader = reader_for("openai")
    for event in events:
        reader.feed(event)
    assert reader.usage() == Usage(50, 20, 10, 0, 5)
    assert reader.model == "gpt-4.1"


def test_anthropic_cache_fields_and_cumulative_message_delta() -> None:
    start = {
        "type": "message_start",
        "message": {
            "model": "claude-sonnet-4-5",
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 4000,
                "output_tokens": 1,
            },
        },
    }
    deltas = [
        {"type": "message_delta", "usage": {"output_tokens": 40}},
        {"type": "message_delta", "usage": {"output_tokens": 95}},  # cumulative: the last wins
    ]
    assert _read("anthropic", start, *deltas) == Usage(
        input_tokens=5025, output_tokens=95, cached_input_tokens=4000, cache_creation_tokens=1000
    )


def test_gemini_thoughts_count_as_output_and_the_last_chunk_is_final() -> None:
    first = {"usageMetadata": {"promptTokenCount": 12}, "modelVersion": "gemini-2.5-pro"}
    last = {
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 30,
            "thoughtsTokenCount": 100,
            "cachedContentTokenCount": 8,
            "totalTokenCount": 142,
        }
    }
    assert _read("gemini", first, last) == Usage(12, 130, 8, 0, 100)


def test_nonsense_is_no_usage_not_an_error() -> None:
    assert (
        _read("openai", "text", [1], {"usage": "lots"}, {"usage": {"prompt_tokens": -3}}) == Usage()
    )
    assert _read("anthropic", {"type": "message_start", "message": None}) is None


def test_text_is_counted_without_parsing() -> None:
    chunk = b'{"choices":[{"delta":{"content":"hello \\"you\\""}}]}'
    assert count_text(chunk) == 13  # escapes count as written
    assert output_allowance(b'{"max_completion_tokens": 64, "n": 2}') == 128
    assert output_allowance(b"not json") == 0.0
