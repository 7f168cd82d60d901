"""The fake OpenAI server, exercised with the plain, unpatched ``openai`` SDK.

Every body is validated against the SDK's own pydantic types with no extra
fields allowed, so the fake cannot drift from what the SDK declares.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pydantic
import pytest
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

import keyrouter.testing
from keyrouter.testing import FakeKey, FakeProvider, Fault, KeyStats, RequestRecord
from keyrouter.testing.__main__ import parse_keys
from keyrouter.testing._limits import TokenBucket
from keyrouter.testing._openai import go_duration, schema_instance
from keyrouter.testing.pytest_plugin import FAKE_OPENAI_KEYS, fake_openai  # noqa: F401

MODEL = "gpt-4o-mini"
HI = [{"role": "user", "content": "abcdefgh"}]  # 8 characters: a 2-token prompt


class Clock:
    """A hand-driven clock for the token buckets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeProvider]:
    keys = [
        FakeKey("sk-a-0123456789", rpm=60, tpm=40_000, scope="org-1"),
        FakeKey("sk-b-0123456789", rpm=60, tpm=40_000, scope="org-1"),
        FakeKey("sk-free-01234567"),
        FakeKey("sk-revoked-0123456", status="invalid"),
        FakeKey("sk-broke-01234567", status="insufficient_quota"),
        FakeKey("sk-banned-0123456", status="forbidden"),
    ]
    with FakeProvider(keys=keys, now=clock, completion_tokens=18) as provider:
        yield provider


def client(fake: FakeProvider, key: str = "sk-a-0123456789", **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=fake.base_url, max_retries=0, **kw)


def aclient(fake: FakeProvider, key: str = "sk-a-0123456789") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=fake.base_url, max_retries=0)


def exact(model: type[pydantic.BaseModel], data: Any) -> Any:
    """Validate ``data`` as ``model`` and refuse any field the SDK type does not declare."""
    parsed = model.model_validate(data)
    _no_extras(parsed, model.__name__)
    return parsed


def _no_extras(value: Any, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{path}: undeclared fields {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_extras(item, f"{path}[{i}]")


def raw_post(fake: FakeProvider, path: str, body: Any, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{fake.base_url}{path}", json=body, headers=headers, timeout=5)


def drain(stream: Iterable[ChatCompletionChunk], into: list[ChatCompletionChunk]) -> None:
    """Read a stream to the end, keeping what arrived before any error."""
    for chunk in stream:
        into.append(chunk)


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """Split an SSE body into (event name, data) pairs, checking the blank-line framing."""
    assert text.endswith("\n\n")
    events = []
    for block in text[:-2].split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) <= {"event", "data"}, block
        events.append((fields.get("event"), fields["data"]))
    return events


# -- chat completions ---------------------------------------------------------------


def test_chat_completion_body_and_rate_limit_headers(fake: FakeProvider) -> None:
    raw = client(fake).chat.completions.with_raw_response.create(model=MODEL, messages=HI)
    completion = exact(ChatCompletion, json.loads(raw.content))
    headers = raw.headers

    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", completion.id)
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content.startswith("This is a simulated answer")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 18)
    assert completion.usage.total_tokens == 20
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0
    assert completion.system_fingerprint.startswith("fp_")
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"req_[0-9a-f]{32}", headers["x-request-id"])
    assert headers["openai-version"] == "2020-10-01"
    assert headers["openai-organization"] == "org-1"
    assert int(headers["openai-processing-ms"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "59"
    assert headers["x-ratelimit-reset-requests"] == "1s"  # one request back at 1/s
    assert headers["x-ratelimit-limit-tokens"] == "40000"
    assert headers["x-ratelimit-remaining-tokens"] == "39980"
    assert headers["x-ratelimit-reset-tokens"] == "30ms"  # 20 tokens at 40000/60 per second
    assert fake.stats("sk-a-0123456789") == KeyStats(requests=1, statuses={200: 1}, tokens=20)


def test_unlimited_key_omits_rate_limit_headers(fake: FakeProvider) -> None:
    raw = client(fake, "sk-free-01234567").chat.completions.with_raw_response.create(
        model=MODEL, messages=HI
    )
    assert not [name for name in raw.headers if name.startswith("x-ratelimit")]
    assert raw.headers["openai-organization"].startswith("user-")


def test_max_tokens_caps_the_answer_and_is_charged_in_full(fake: FakeProvider) -> None:
    completion = client(fake).chat.completions.create(model=MODEL, messages=HI, max_tokens=5)
    long_cap = client(fake).chat.completions.create(model=MODEL, messages=HI, max_tokens=100)

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5
    assert long_cap.usage.completion_tokens == 18
    assert fake.stats("sk-a-0123456789").tokens == (2 + 5) + (2 + 100)


def test_chat_stream_framing_chunks_and_final_usage(fake: FakeProvider) -> None:
    body = {
        "model": MODEL,
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    raw = raw_post(fake, "/chat/completions", body, "sk-a-0123456789")
    events = sse_events(raw.text)

    assert raw.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert raw.headers["transfer-encoding"] == "chunked"
    assert events[-1] == (None, "[DONE]")
    chunks = [exact(ChatCompletionChunk, json.loads(data)) for _, data in events[:-1]]
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == 20
    assert all(chunk.usage is None for chunk in chunks[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    whole = client(fake).chat.completions.create(model=MODEL, messages=HI)
    assert text == whole.choices[0].message.content


def test_chat_stream_with_the_sdk(fake: FakeProvider) -> None:
    stream = client(fake).chat.completions.create(model=MODEL, messages=HI, stream=True)
    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]

    assert pieces[0] == ""
    assert pieces[-1] is None
    assert len(pieces) == 18 + 2


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Step(pydantic.BaseModel):
    title: str = pydantic.Field(min_length=3, max_length=40)
    minutes: int = pydantic.Field(ge=5, le=90)
    done: bool


class Plan(pydantic.BaseModel):
    name: str
    priority: Priority
    kind: Literal["trip", "project"]
    budget: float | None
    steps: list[Step]
    tags: list[str]


def test_chat_parse_returns_an_instance_of_the_pydantic_model(fake: FakeProvider) -> None:
    completion = client(fake).chat.completions.parse(model=MODEL, messages=HI, response_format=Plan)

    plan = completion.choices[0].message.parsed
    assert isinstance(plan, Plan)
    assert plan.steps
    assert isinstance(plan.steps[0], Step)
    assert completion.usage.completion_tokens == len(completion.choices[0].message.content) // 4 + (
        1 if len(completion.choices[0].message.content) % 4 else 0
    )


# -- responses ----------------------------------------------------------------------------


def test_responses_json_body(fake: FakeProvider) -> None:
    raw = raw_post(fake, "/responses", {"model": MODEL, "input": "abcdefgh"}, "sk-a-0123456789")
    response = exact(Response, raw.json())

    assert re.fullmatch(r"resp_[0-9a-f]{50}", response.id)
    assert response.status == "completed"
    assert response.output_text.startswith("This is a simulated answer")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (2, 18)
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert raw.headers["x-ratelimit-remaining-requests"] == "59"


def test_responses_stream_events_in_order_with_sequence_numbers(fake: FakeProvider) -> None:
    body = {"model": MODEL, "input": "abcdefgh", "stream": True}
    events = sse_events(raw_post(fake, "/responses", body, "sk-a-0123456789").text)
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    parsed = [adapter.validate_python(json.loads(data)) for _, data in events]
    for event in parsed:
        _no_extras(event, event.type)

    names = [name for name, _ in events]
    assert names == [event.type for event in parsed]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[4:-4] == ["response.output_text.delta"] * 18
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in parsed] == list(range(len(parsed)))
    assert parsed[-1].response.usage.total_tokens == 20
    assert parsed[-4].text == "".join(event.delta for event in parsed[4:-4])


async def test_responses_stream_and_parse_with_async_sdk(fake: FakeProvider) -> None:
    async with aclient(fake) as sdk:
        stream = await sdk.responses.create(model=MODEL, input="abcdefgh", stream=True)
        kinds = [event.type async for event in stream]
        parsed = await sdk.responses.parse(model=MODEL, input="abcdefgh", text_format=Plan)

    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert isinstance(parsed.output_parsed, Plan)


# -- embeddings and models ----------------------------------------------------------------


def test_embeddings_base64_by_default_and_floats_on_request(fake: FakeProvider) -> None:
    sdk = client(fake)
    default = sdk.embeddings.create(model="text-embedding-3-small", input=["abcd", "efgh"])
    floats = raw_post(
        fake,
        "/embeddings",
        {"model": "text-embedding-3-small", "input": ["abcd", "efgh"], "encoding_format": "float"},
        "sk-a-0123456789",
    )
    as_base64 = raw_post(
        fake,
        "/embeddings",
        {
            "model": "text-embedding-3-small",
            "input": "abcd",
            "encoding_format": "base64",
            "dimensions": 8,
        },
        "sk-a-0123456789",
    ).json()

    parsed = exact(CreateEmbeddingResponse, floats.json())
    assert [len(item.embedding) for item in default.data] == [1536, 1536]
    assert default.data[0].embedding == parsed.data[0].embedding  # both encodings agree
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens == default.usage.total_tokens == 2
    packed = base64.b64decode(as_base64["data"][0]["embedding"])
    assert len(struct.unpack("<8f", packed)) == 8


def test_models_list_and_retrieve(fake: FakeProvider) -> None:
    sdk = client(fake)
    listed = [exact(Model, model.model_dump()) for model in sdk.models.list()]

    assert MODEL in {model.id for model in listed}
    assert sdk.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("gpt-nope")
    assert caught.value.code == "model_not_found"
    assert fake.stats("sk-a-0123456789").tokens == 0  # listing models is not charged


def test_unknown_route_is_404_with_openai_error_shape(fake: FakeProvider) -> None:
    raw = raw_post(fake, "/nothing/here", {}, "sk-a-0123456789")

    assert raw.status_code == 404
    assert raw.headers["content-type"] == "application/json; charset=utf-8"
    assert raw.json() == {
        "error": {
            "message": "Invalid URL (POST /v1/nothing/here)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_invalid_json_and_missing_parameters_are_400(fake: FakeProvider) -> None:
    bad = httpx.post(
        f"{fake.base_url}/chat/completions",
        content=b"{not json",
        headers={"authorization": "Bearer sk-a-0123456789"},
    )
    missing = raw_post(fake, "/chat/completions", {"model": MODEL}, "sk-a-0123456789")

    assert bad.status_code == 400
    assert "could not parse the JSON body" in bad.json()["error"]["message"]
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "messages"
    assert missing.json()["error"]["code"] == "missing_required_parameter"


# -- authentication -----------------------------------------------------------------------


def test_missing_key_is_401(fake: FakeProvider) -> None:
    raw = raw_post(fake, "/chat/completions", {"model": MODEL, "messages": HI}, None)

    assert raw.status_code == 401
    error = raw.json()["error"]
    assert error["message"].startswith("You didn't provide an API key.")
    assert (error["type"], error["code"]) == ("invalid_request_error", None)


@pytest.mark.parametrize("key", ["sk-unknown-0123456789", "sk-revoked-0123456"])
def test_unknown_or_invalid_key_is_401_with_redacted_key(fake: FakeProvider, key: str) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(fake, key).chat.completions.create(model=MODEL, messages=HI)

    error = caught.value
    assert error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    assert f"Incorrect API key provided: {key[:8]}****{key[-4:]}." in error.message
    assert not [name for name in error.response.headers if name.startswith("x-ratelimit")]
    assert fake.stats(key).count(401) == 1


def test_insufficient_quota_is_a_429_that_says_so(fake: FakeProvider) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client(fake, "sk-broke-01234567").chat.completions.create(model=MODEL, messages=HI)

    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert "retry-after" not in caught.value.response.headers


def test_forbidden_key_is_403(fake: FakeProvider) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(fake, "sk-banned-0123456").responses.create(model=MODEL, input="hi")

    assert caught.value.code == "unsupported_country_region_territory"


def test_errors_on_stream_requests_are_json_not_sse(fake: FakeProvider) -> None:
    body = {"model": MODEL, "messages": HI, "stream": True}
    raw = raw_post(fake, "/chat/completions", body, "sk-revoked-0123456")

    assert raw.status_code == 401
    assert raw.headers["content-type"] == "application/json; charset=utf-8"
    assert raw.json()["error"]["code"] == "invalid_api_key"


def test_key_revoked_and_key_added_at_run_time(fake: FakeProvider) -> None:
    client(fake).chat.completions.create(model=MODEL, messages=HI)
    fake.set_key_status("sk-a-0123456789", "invalid")
    fake.add_key(FakeKey("sk-new-0123456789"))

    with pytest.raises(openai.AuthenticationError):
        client(fake).chat.completions.create(model=MODEL, messages=HI)
    assert client(fake, "sk-new-0123456789").chat.completions.create(model=MODEL, messages=HI).id
    assert fake.stats("sk-a-0123456789").statuses == {200: 1, 401: 1}


# -- rate limits --------------------------------------------------------------------------


def test_rpm_limit_429_message_headers_and_refill(clock: Clock) -> None:
    with FakeProvider(keys=[FakeKey("sk-rpm-0123456789", rpm=2, scope="org-x")], now=clock) as fake:
        sdk = client(fake, "sk-rpm-0123456789")
        sdk.chat.completions.create(model=MODEL, messages=HI)
        sdk.chat.completions.create(model=MODEL, messages=HI)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model=MODEL, messages=HI)
        clock.advance(30)
        after_refill = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=HI)

    error = caught.value
    assert error.body["message"] == (
        "Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): "
        "Limit 2, Used 2, Requested 1. Please try again in 30s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )
    assert (error.type, error.code) == ("requests", "rate_limit_exceeded")
    headers = error.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("30", "30000")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert after_refill.headers["x-ratelimit-remaining-requests"] == "0"
    assert fake.stats("sk-rpm-0123456789").statuses == {200: 3, 429: 1}


def test_tpm_limit_and_request_too_large(clock: Clock) -> None:
    with FakeProvider(
        keys=[FakeKey("sk-tpm-0123456789", tpm=100, scope="org-t")], now=clock
    ) as fake:
        sdk = client(fake, "sk-tpm-0123456789")
        sdk.chat.completions.create(model=MODEL, messages=HI, max_tokens=60)
        with pytest.raises(openai.RateLimitError) as limited:
            sdk.chat.completions.create(model=MODEL, messages=HI, max_tokens=60)
        with pytest.raises(openai.RateLimitError) as too_large:
            sdk.chat.completions.create(model=MODEL, messages=HI, max_tokens=500)

    assert limited.value.type == "tokens"
    assert "on tokens per min (TPM): Limit 100, Used 62, Requested 62." in limited.value.message
    assert "Please try again in 14.4s." in limited.value.message  # 24 tokens at 100/60 per s
    assert limited.value.response.headers["retry-after-ms"] == "14400"
    assert limited.value.response.headers["retry-after"] == "15"
    assert too_large.value.body["message"].startswith("Request too large for gpt-4o-mini in org")
    assert "Limit 100, Requested 502." in too_large.value.message
    assert "retry-after" not in too_large.value.response.headers


def test_keys_in_one_scope_share_buckets(clock: Clock) -> None:
    keys = [
        FakeKey("sk-one-0123456789", rpm=3, scope="org-s"),
        FakeKey("sk-two-0123456789", rpm=3, scope="org-s"),
        FakeKey("sk-solo-0123456789", rpm=3),
    ]
    with FakeProvider(keys=keys, now=clock) as fake:
        for key in ("sk-one-0123456789", "sk-one-0123456789", "sk-two-0123456789"):
            client(fake, key).chat.completions.create(model=MODEL, messages=HI)
        with pytest.raises(openai.RateLimitError):
            client(fake, "sk-two-0123456789").chat.completions.create(model=MODEL, messages=HI)
        solo = client(fake, "sk-solo-0123456789").chat.completions.create(model=MODEL, messages=HI)

    assert solo.id
    assert fake.scope_stats("org-s") == KeyStats(
        requests=4, statuses={200: 3, 429: 1}, tokens=3 * (2 + 16)
    )


def test_scope_members_must_agree_on_limits() -> None:
    with pytest.raises(ValueError, match="already has rpm=3"):
        FakeProvider(keys=[FakeKey("sk-x1", rpm=3, scope="s"), FakeKey("sk-x2", rpm=4, scope="s")])


def test_time_scale_refills_in_compressed_real_time() -> None:
    with FakeProvider(keys=[FakeKey("sk-fast-0123456789", rpm=1)], time_scale=600) as fake:
        sdk = client(fake, "sk-fast-0123456789")
        first = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=HI)
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model=MODEL, messages=HI)
        for _ in range(200):  # a "minute" is 0.1 s here
            time.sleep(0.01)
            try:
                sdk.chat.completions.create(model=MODEL, messages=HI)
                break
            except openai.RateLimitError:
                continue
        else:
            pytest.fail("the bucket never refilled")

    assert first.headers["x-ratelimit-reset-requests"].endswith("ms")
    assert int(first.headers["x-ratelimit-reset-requests"][:-2]) <= 100
    assert 1 <= int(caught.value.response.headers["retry-after-ms"]) <= 100
    assert caught.value.response.headers["retry-after"] == "1"


# -- faults -------------------------------------------------------------------------------


def test_status_fault_fires_the_given_number_of_times(fake: FakeProvider) -> None:
    fake.inject(Fault.status(500), key="sk-a-0123456789", times=2)
    sdk = client(fake)
    errors = []
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            sdk.chat.completions.create(model=MODEL, messages=HI)
        errors.append(caught.value)
    other_key = client(fake, "sk-b-0123456789").chat.completions.create(model=MODEL, messages=HI)

    assert sdk.chat.completions.create(model=MODEL, messages=HI).id
    assert other_key.id
    assert errors[0].type == "server_error"
    assert errors[0].code is None
    request_id = errors[0].response.headers["x-request-id"]
    assert f"(Please include the request ID {request_id} in your email.)" in errors[0].message
    assert fake.stats("sk-a-0123456789") == KeyStats(
        requests=3, statuses={500: 2, 200: 1}, tokens=20
    )


@pytest.mark.parametrize(
    ("fault", "content_type", "expected"),
    [
        (Fault.status(503), "application/json", "server_is_overloaded"),
        (Fault.status(502), "application/json", "Bad gateway."),
        (Fault.status(503, plain=True), "text/plain", "upstream connect error or disconnect/reset"),
        (Fault.status(502, plain=True), "text/html", "<center>cloudflare</center>"),
    ],
)
def test_gateway_faults_have_the_real_bodies(
    fake: FakeProvider, fault: Fault, content_type: str, expected: str
) -> None:
    fake.inject(fault, times=1)
    with pytest.raises(openai.InternalServerError) as caught:
        client(fake).chat.completions.create(model=MODEL, messages=HI)

    response = caught.value.response
    assert response.status_code == fault.code
    assert response.headers["content-type"] == content_type
    assert expected in response.text


def test_reset_fault_drops_the_connection(fake: FakeProvider) -> None:
    fake.inject(Fault.reset(), times=1)
    with pytest.raises(openai.APIConnectionError):
        client(fake).chat.completions.create(model=MODEL, messages=HI)

    assert fake.stats("sk-a-0123456789").statuses == {0: 1}


def test_delay_fault_outlasts_a_short_client_timeout(fake: FakeProvider) -> None:
    fake.inject(Fault.delay(1.0), times=1)
    with pytest.raises(openai.APITimeoutError):
        client(fake, timeout=0.2).chat.completions.create(model=MODEL, messages=HI)


def test_stall_fault_stops_a_stream_after_n_chunks(fake: FakeProvider) -> None:
    fake.inject(Fault.stall_stream(after_chunks=3), times=1)
    sdk = client(fake, timeout=0.5)
    plain = sdk.chat.completions.create(model=MODEL, messages=HI)  # stall ignores non-streams
    received: list[ChatCompletionChunk] = []
    stream = sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
    with pytest.raises(openai.APITimeoutError):
        drain(stream, received)

    assert plain.choices[0].finish_reason == "stop"
    assert len(received) == 3


def test_truncate_fault_breaks_bodies_and_streams(fake: FakeProvider) -> None:
    fake.inject(Fault.truncate(), times=2)
    sdk = client(fake)
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model=MODEL, messages=HI)
    received: list[ChatCompletionChunk] = []
    stream = sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
    with pytest.raises(openai.APIConnectionError):
        drain(stream, received)

    assert 0 < len(received) < 20


def test_garbage_and_error_in_200_faults(fake: FakeProvider) -> None:
    fake.inject(Fault.garbage(), times=1)
    fake.inject(Fault.error_in_200(), key="sk-b-0123456789", times=2)
    with pytest.raises(json.JSONDecodeError):
        client(fake).chat.completions.create(model=MODEL, messages=HI)
    body = raw_post(fake, "/chat/completions", {"model": MODEL, "messages": HI}, "sk-b-0123456789")
    stream = client(fake, "sk-b-0123456789").chat.completions.create(
        model=MODEL, messages=HI, stream=True
    )
    with pytest.raises(openai.APIError, match="The server had an error"):
        drain(stream, [])

    assert body.status_code == 200
    assert body.json()["error"]["type"] == "server_error"


def test_slow_stream_fault_spaces_the_chunks_and_ignores_non_streams(fake: FakeProvider) -> None:
    fake.inject(Fault.slow_stream(0.02), times=1)
    sdk = client(fake)
    plain = sdk.chat.completions.create(model=MODEL, messages=HI)
    started = time.monotonic()
    received: list[ChatCompletionChunk] = []
    drain(sdk.chat.completions.create(model=MODEL, messages=HI, stream=True), received)

    assert plain.choices[0].finish_reason == "stop"
    assert received[-1].choices[0].finish_reason == "stop"
    assert time.monotonic() - started >= 0.02 * len(received)


def test_status_faults_carry_given_headers_and_body(fake: FakeProvider) -> None:
    fault = Fault.status(429, headers={"Retry-After": "soon"}, body=b'{"error": 7}')
    fake.inject(fault, times=1)
    fake.inject(Fault.override_headers({"x-ratelimit-remaining-requests": "-1"}), times=1)
    refused = raw_post(
        fake, "/chat/completions", {"model": MODEL, "messages": HI}, "sk-a-0123456789"
    )
    answered = raw_post(
        fake, "/chat/completions", {"model": MODEL, "messages": HI}, "sk-a-0123456789"
    )

    assert (refused.status_code, refused.content) == (429, b'{"error": 7}')
    assert refused.headers.get_list("retry-after") == ["soon"]
    assert answered.status_code == 200
    assert answered.headers.get_list("x-ratelimit-remaining-requests") == ["-1"]
    assert answered.json()["object"] == "chat.completion"


def test_faults_without_times_last_until_cleared(fake: FakeProvider) -> None:
    fake.inject(Fault.status(503))
    for key in ("sk-a-0123456789", "sk-b-0123456789", "sk-a-0123456789"):
        with pytest.raises(openai.InternalServerError):
            client(fake, key).chat.completions.create(model=MODEL, messages=HI)
    fake.clear_faults()

    assert client(fake).chat.completions.create(model=MODEL, messages=HI).id


# -- observability, concurrency, transport ---------------------------------------------------


def test_stats_are_exact_under_64_threads() -> None:
    keys = [FakeKey(f"sk-thread-{i}-0123456789", rpm=150, scope=f"org-{i}") for i in range(3)]
    seen: Counter[tuple[str, int]] = Counter()
    tokens: Counter[str] = Counter()
    lock = threading.Lock()

    with FakeProvider(keys=keys) as fake:
        sdks = {key.secret: client(fake, key.secret) for key in keys}

        def work(n: int) -> None:
            for i in range(8):
                secret = keys[(n + i) % 3].secret
                try:
                    usage = sdks[secret].chat.completions.create(model=MODEL, messages=HI).usage
                    with lock:
                        seen[secret, 200] += 1
                        tokens[secret] += usage.total_tokens
                except openai.RateLimitError:
                    with lock:
                        seen[secret, 429] += 1

        with ThreadPoolExecutor(max_workers=64) as pool:
            list(pool.map(work, range(64)))
        stats = {key.secret: fake.stats(key.secret) for key in keys}

    assert sum(seen.values()) == 64 * 8
    assert sum(seen[k, 429] for k, _ in seen) > 0  # the limits were actually hit
    for secret, stat in stats.items():
        assert stat.statuses == {s: n for (k, s), n in seen.items() if k == secret and n}
        assert stat.requests == seen[secret, 200] + seen[secret, 429]
        assert stat.tokens == tokens[secret]


async def test_256_concurrent_async_clients() -> None:
    with FakeProvider(keys=[FakeKey("sk-async-0123456789")]) as fake:
        async with openai.AsyncOpenAI(
            api_key="sk-async-0123456789", base_url=fake.base_url, max_retries=0
        ) as sdk:
            results = await asyncio.gather(
                *(sdk.chat.completions.create(model=MODEL, messages=HI) for _ in range(256))
            )
        stats = fake.stats("sk-async-0123456789")

    assert len({result.id for result in results}) == 256
    assert stats.statuses == {200: 256}


def test_request_log_records_method_path_key_status_host(clock: Clock) -> None:
    with FakeProvider(keys=[FakeKey("sk-log-0123456789")], now=clock, log_size=3) as fake:
        sdk = client(fake, "sk-log-0123456789")
        for _ in range(4):
            sdk.models.list()
        sdk.chat.completions.create(model=MODEL, messages=HI)
        logged = fake.requests
        fake.reset_stats()

        assert len(logged) == 3
        assert logged[-1] == RequestRecord(
            "POST", "/v1/chat/completions", "sk-log-0123456789", 200, fake.host
        )
        assert logged[0].path == "/v1/models"
        assert fake.requests == []
        assert fake.stats("sk-log-0123456789") == KeyStats()


def test_keep_alive_serves_several_requests_on_one_connection(fake: FakeProvider) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    headers = {"authorization": "Bearer sk-a-0123456789"}
    try:
        connection.request("GET", "/v1/models", headers=headers)
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        connection.request("GET", f"/v1/models/{MODEL}", headers=headers)
        second = connection.getresponse()
        model = json.loads(second.read())
    finally:
        connection.close()

    assert (first.status, second.status) == (200, 200)
    assert sock is not None
    assert connection.sock is None
    assert model["id"] == MODEL


def test_stop_is_idempotent_and_frees_the_port() -> None:
    fake = FakeProvider(keys=[FakeKey("sk-x")]).start()
    port = fake.port
    fake.stop()
    fake.stop()

    with pytest.raises(RuntimeError):
        _ = fake.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


# -- building blocks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.012, "12ms"),
        (1, "1s"),
        (20.5, "20.5s"),
        (360, "6m0s"),
        (3723.5, "1h2m3.5s"),
        (1296.001, "21m36.001s"),
        (299439.057, "83h10m39.057s"),
    ],
)
def test_go_duration_matches_openai_header_format(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_token_bucket_refills_continuously(clock: Clock) -> None:
    bucket = TokenBucket(capacity=60, rate=1.0, now=clock)
    bucket.take(60)

    assert not bucket.fits(1)
    assert bucket.seconds_until(1) == 1.0
    assert bucket.seconds_until(61) == float("inf")
    clock.advance(0.5)
    assert bucket.level() == 0.5
    assert bucket.seconds_until_full() == 59.5
    clock.advance(1000)
    assert bucket.level() == 60


class Node(pydantic.BaseModel):
    label: str = pydantic.Field(pattern=r"^[a-z]+$")
    weight: float = pydantic.Field(gt=0, lt=1)
    count: int = pydantic.Field(multiple_of=5, ge=7)
    children: list[Node]
    parent: Node | None = None
    extra: dict[str, int]


class Pick(pydantic.BaseModel):
    choice: Step | Priority
    code: str = pydantic.Field(min_length=12)
    items: list[int] = pydantic.Field(min_length=3)
    pair: tuple[int, str]


@pytest.mark.parametrize("model", [Plan, Node, Pick])
def test_schema_instance_validates_against_its_model(model: type[pydantic.BaseModel]) -> None:
    model.model_validate(schema_instance(model.model_json_schema()))


def test_schema_instance_handles_type_lists_const_and_refs() -> None:
    schema = {
        "$defs": {"Id": {"type": "string", "format": "uuid"}},
        "type": "object",
        "properties": {
            "id": {"$ref": "#/$defs/Id"},
            "maybe": {"type": ["null", "integer"]},
            "fixed": {"const": 7},
            "both": {"allOf": [{"$ref": "#/$defs/Id"}]},
        },
    }

    assert schema_instance(schema) == {
        "id": "00000000-0000-4000-8000-000000000000",
        "maybe": 1,
        "fixed": 7,
        "both": "00000000-0000-4000-8000-000000000000",
    }


# -- packaging: CLI, plugin, public API -----------------------------------------------------


def test_cli_key_spec() -> None:
    keys = parse_keys("sk-a:rpm=60:tpm=40000:scope=org-1, sk-b:invalid,sk-c:insufficient_quota")

    assert keys == [
        FakeKey("sk-a", rpm=60, tpm=40_000, scope="org-1"),
        FakeKey("sk-b", status="invalid"),
        FakeKey("sk-c", status="insufficient_quota"),
    ]
    with pytest.raises(ValueError, match="unknown key option"):
        parse_keys("sk-a:rpm")


def test_cli_serves_until_interrupted() -> None:
    src = Path(keyrouter.testing.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "keyrouter.testing", "--keys", "sk-cli:rpm=5"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            answer = httpx.get(f"{base_url}/models", headers={"authorization": "Bearer sk-cli"})
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=10)
        finally:
            process.kill()

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
    assert answer.headers["x-ratelimit-limit-requests"] == "5"
    assert code == 0


def test_pytest_plugin_fixture(fake_openai: FakeProvider) -> None:  # noqa: F811
    answer = client(fake_openai, FAKE_OPENAI_KEYS[0]).chat.completions.create(
        model=MODEL, messages=HI
    )

    assert answer.choices[0].message.content
    assert fake_openai.stats(FAKE_OPENAI_KEYS[0]).count(200) == 1


_WITHOUT_SDK = """
import json, sys, urllib.request
for name in ("openai", "pydantic", "httpx", "httpx2", "anyio"):
    sys.modules[name] = None  # any import of these now fails
from keyrouter.testing import FakeKey, FakeProvider
with FakeProvider(keys=[FakeKey("sk-solo")]) as fake:
    request = urllib.request.Request(
        fake.base_url + "/chat/completions",
        data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"authorization": "Bearer sk-solo", "content-type": "application/json"},
    )
    print(json.load(urllib.request.urlopen(request))["object"])
"""


def test_works_without_the_sdk_installed() -> None:
    src = Path(keyrouter.testing.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _WITHOUT_SDK], env=env, capture_output=True, text=True, timeout=30
    )

    assert done.stdout.strip() == "chat.completion", done.stderr
    assert set(keyrouter.testing.__all__) >= {"FakeProvider", "FakeKey", "Fault", "KeyStats"}
