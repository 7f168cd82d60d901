"""The fake Gemini server, exercised with the plain, unpatched ``google-genai`` SDK.

The SDK's types forbid undeclared fields, so validating raw bodies against them checks that
the fake invents nothing; every error is also read back through
``keyrouter.providers.gemini.WIRE``.  The last tests serve all three SDKs from one port
through the dispatcher.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from keyrouter.core.outcome import OutcomeKind
from keyrouter.providers.gemini import WIRE, next_pacific_midnight
from keyrouter.testing._anthropic import AnthropicEmulator
from keyrouter.testing._dispatch import Dispatcher, provider_of
from keyrouter.testing._gemini import GeminiEmulator
from keyrouter.testing._limits import FakeKey, Ledger
from keyrouter.testing._openai import OpenAIEmulator
from keyrouter.testing._server import Fault, FaultBook, Request, ServerThread

MODEL = "gemini-2.5-flash"
PROMPT = "abcdefgh"  # 8 characters: a 2-token prompt
KEYS = [
    FakeKey("AIza-a-0123", rpm=3, tpm=1000, scope="project-1"),
    FakeKey("AIza-b-0123", rpm=3, tpm=1000, scope="project-1"),
    FakeKey("AIza-tpm-012", rpm=100, tpm=10),
    FakeKey("AIza-free-01"),
    FakeKey("AIza-daily-1", rpm=100, scope="project-daily"),
    FakeKey("AIza-revoked", status="invalid"),
    FakeKey("AIza-banned", status="forbidden"),
    FakeKey("AIza-broke", status="insufficient_quota"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Fake:
    ledger: Ledger
    faults: FaultBook
    emulator: GeminiEmulator
    url: str
    clock: Clock
    clients: list[genai.Client] = field(default_factory=list)

    def client(self, key: str = "AIza-a-0123", version: str | None = None) -> genai.Client:
        """A client kept alive for the test: google-genai closes its HTTP client on GC."""
        options = types.HttpOptions(base_url=self.url, api_version=version)
        self.clients.append(genai.Client(api_key=key, http_options=options))
        return self.clients[-1]

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=headers or {}, timeout=10)


@pytest.fixture
def fake() -> Iterator[Fake]:
    clock = Clock()
    ledger = Ledger(KEYS, now=clock)
    faults = FaultBook()
    emulator = GeminiEmulator(ledger, faults, daily_requests={"project-daily": 2})
    server = ServerThread(emulator)
    server.start()
    fake = Fake(ledger, faults, emulator, f"http://127.0.0.1:{server.port}", clock)
    try:
        yield fake
    finally:
        for client in fake.clients:
            client.close()
        server.stop()


def body(text: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def outcome_of(error: errors.APIError) -> Any:
    response = error.response
    return WIRE.classify(
        error.code,
        dict(response.headers),
        response.content,
        time.time(),
    )


# -- generateContent --------------------------------------------------------------------------


def test_generate_content_parses_into_the_sdks_types(fake: Fake) -> None:
    client = fake.client()
    result = client.models.generate_content(
        model=MODEL,
        contents=PROMPT,
        config=types.GenerateContentConfig(system_instruction="Be brief."),
    )
    assert result.text is not None
    assert result.text.startswith("This is a simulated answer")
    usage = result.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (5, 16)
    assert usage.total_token_count == 21
    assert result.candidates is not None
    assert result.candidates[0].finish_reason == types.FinishReason.STOP
    assert result.model_version == MODEL


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_raw_body_has_only_declared_fields_and_no_limit_headers(fake: Fake, version: str) -> None:
    response = fake.post(
        f"/{version}/models/{MODEL}:generateContent", body(), {"x-goog-api-key": "AIza-free-01"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.headers["server"] == "scaffolding on HTTPServer2"
    assert not [name for name in response.headers if "ratelimit" in name or "retry" in name]
    # extra="forbid": an invented field would fail here
    types.GenerateContentResponse.model_validate(response.json())


def test_max_output_tokens_cuts_the_answer(fake: Fake) -> None:
    config = types.GenerateContentConfig(max_output_tokens=3)
    result = fake.client().models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert result.text == "This is a"
    assert result.candidates is not None
    assert result.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_only_input_tokens_count_against_the_token_quota(fake: Fake) -> None:
    client = fake.client("AIza-tpm-012")
    client.models.generate_content(model=MODEL, contents="x" * 40)  # 10 tokens in, 16 out
    assert fake.ledger.stats("AIza-tpm-012").tokens == 10
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="x" * 40)
    violation = caught.value.details["error"]["details"][0]["violations"][0]
    assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    assert violation["quotaValue"] == "10"


def test_the_key_may_come_in_the_query(fake: Fake) -> None:
    response = fake.post(f"/v1beta/models/{MODEL}:generateContent?key=AIza-free-01", body())
    assert response.status_code == 200
    assert fake.ledger.stats("AIza-free-01").count(200) == 1


# -- streaming --------------------------------------------------------------------------------


def test_stream_yields_chunks_with_usage_on_the_last(fake: Fake) -> None:
    chunks = list(fake.client().models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert len(chunks) == 16
    assert "".join(c.text or "" for c in chunks).split()[0] == "This"
    last = chunks[-1]
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == 16
    assert chunks[0].usage_metadata is not None
    assert chunks[0].usage_metadata.candidates_token_count is None
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert len({c.response_id for c in chunks}) == 1


def test_sse_framing_is_the_apis(fake: Fake) -> None:
    response = fake.post(
        f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        body(generationConfig={"maxOutputTokens": 2}),
        {"x-goog-api-key": "AIza-free-01"},
    )
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["content-disposition"] == "attachment"
    events = response.text.split("\r\n\r\n")
    assert events[-1] == ""
    assert len(events) == 3
    for event in events[:-1]:
        assert event.startswith("data: ")
        types.GenerateContentResponse.model_validate(json.loads(event[6:]))


def test_stream_without_alt_sse_is_one_json_array(fake: Fake) -> None:
    response = fake.post(
        f"/v1beta/models/{MODEL}:streamGenerateContent",
        body(generationConfig={"maxOutputTokens": 3}),
        {"x-goog-api-key": "AIza-free-01"},
    )
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    chunks = response.json()
    assert isinstance(chunks, list)
    assert len(chunks) == 3
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_async_generate_and_stream(fake: Fake) -> None:
    # The test extra installs aiohttp, so the plain SDK's async path talks to the fake over it.
    client = fake.client("AIza-free-01")
    result = await client.aio.models.generate_content(model=MODEL, contents=PROMPT)
    assert result.text is not None
    chunks = [
        c
        async for c in await client.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
    ]
    assert len(chunks) == 16
    with pytest.raises(errors.ClientError) as caught:
        await fake.client("AIza-revoked").aio.models.generate_content(model=MODEL, contents="x")
    assert caught.value.code == 400
    assert fake.ledger.stats("AIza-free-01").count(200) == 2


# -- limits and errors ---------------------------------------------------------------------------


def test_per_minute_quota_is_shared_by_the_project_and_refills(fake: Fake) -> None:
    for key in ("AIza-a-0123", "AIza-b-0123", "AIza-a-0123"):
        fake.client(key).models.generate_content(model=MODEL, contents=PROMPT)
    client = fake.client("AIza-b-0123")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    error = caught.value
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    kinds = [d["@type"].rsplit(".", 1)[-1] for d in error.details["error"]["details"]]
    assert kinds == ["QuotaFailure", "Help", "RetryInfo"]
    assert error.details["error"]["details"][2]["retryDelay"] == "20s"
    assert "Please retry in 20.000000s." in (error.message or "")
    assert not [n for n in error.response.headers if "ratelimit" in n or n == "retry-after"]
    outcome = outcome_of(error)
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.reason == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert outcome.retry_at == pytest.approx(time.time() + 20, abs=2)
    fake.clock.now += 20
    client.models.generate_content(model=MODEL, contents=PROMPT)


def test_daily_quota_is_spent_until_midnight_pacific(fake: Fake) -> None:
    client = fake.client("AIza-daily-1")
    client.models.generate_content(model=MODEL, contents=PROMPT)
    client.models.generate_content(model=MODEL, contents=PROMPT)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    violation = caught.value.details["error"]["details"][0]["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    now = time.time()
    outcome = WIRE.classify(429, {}, caught.value.response.content, now)
    assert outcome.kind is OutcomeKind.QUOTA_EXHAUSTED
    assert outcome.retry_at == next_pacific_midnight(now)
    fake.emulator.reset_daily()
    client.models.generate_content(model=MODEL, contents=PROMPT)


def test_a_per_minute_refusal_does_not_use_up_the_day(fake: Fake) -> None:
    fake.emulator.set_daily_limit("AIza-tpm-012", 2)
    client = fake.client("AIza-tpm-012")
    client.models.generate_content(model=MODEL, contents="x" * 40)
    with pytest.raises(errors.ClientError, match="PerMinute"):
        client.models.generate_content(model=MODEL, contents="x" * 40)
    fake.clock.now += 60
    client.models.generate_content(model=MODEL, contents="x" * 40)


@pytest.mark.parametrize(
    ("key", "code", "status", "kind"),
    [
        ("AIza-revoked", 400, "INVALID_ARGUMENT", OutcomeKind.INVALID_KEY),
        ("AIza-unknown", 400, "INVALID_ARGUMENT", OutcomeKind.INVALID_KEY),
        ("AIza-banned", 403, "PERMISSION_DENIED", OutcomeKind.FORBIDDEN),
        ("AIza-broke", 429, "RESOURCE_EXHAUSTED", OutcomeKind.QUOTA_EXHAUSTED),
    ],
)
def test_key_statuses_map_to_client_errors_and_wire_outcomes(
    fake: Fake, key: str, code: int, status: str, kind: OutcomeKind
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        fake.client(key).models.generate_content(model=MODEL, contents=PROMPT)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert outcome_of(caught.value).kind is kind
    assert fake.ledger.stats(key).count(code) == 1


def test_a_bad_key_on_a_stream_is_json_served_as_event_stream(fake: Fake) -> None:
    with pytest.raises(errors.ClientError) as caught:
        list(fake.client("AIza-revoked").models.generate_content_stream(model=MODEL, contents="x"))
    response = caught.value.response
    assert response.headers["content-type"] == "text/event-stream"
    reasons = [d.get("reason") for d in caught.value.details["error"]["details"]]
    assert "API_KEY_INVALID" in reasons
    assert outcome_of(caught.value).kind is OutcomeKind.INVALID_KEY


def test_no_key_is_403_unregistered_caller(fake: Fake) -> None:
    response = fake.post(f"/v1beta/models/{MODEL}:generateContent", body())
    assert response.status_code == 403
    assert "unregistered callers" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("code", "exception", "kind"),
    [
        (503, errors.ServerError, OutcomeKind.SERVER_ERROR),
        (500, errors.ServerError, OutcomeKind.SERVER_ERROR),
        (429, errors.ClientError, OutcomeKind.RATE_LIMITED),
        (404, errors.ClientError, OutcomeKind.REQUEST_ERROR),
    ],
)
def test_status_faults_use_googles_error_bodies(
    fake: Fake, code: int, exception: type[errors.APIError], kind: OutcomeKind
) -> None:
    fake.faults.inject(Fault.status(code), key="AIza-free-01", times=1)
    client = fake.client("AIza-free-01")
    with pytest.raises(exception) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    assert caught.value.code == code
    assert caught.value.details["error"]["code"] == code
    outcome = outcome_of(caught.value)
    assert outcome.kind is kind
    if code == 429:  # the detail-less capacity 429 real traffic shows
        assert outcome.retry_at is None
        assert "details" not in caught.value.details["error"]
    client.models.generate_content(model=MODEL, contents=PROMPT)


def test_an_error_chunk_inside_a_200_stream_raises(fake: Fake) -> None:
    fake.faults.inject(Fault.error_in_200(), times=1)
    with pytest.raises(errors.ServerError):
        list(fake.client().models.generate_content_stream(model=MODEL, contents=PROMPT))


# -- models and counting ----------------------------------------------------------------------


def test_models_list_get_and_count_tokens_are_free(fake: Fake) -> None:
    client = fake.client("AIza-tpm-012")
    names = [m.name for m in client.models.list()]
    assert f"models/{MODEL}" in names
    model = client.models.get(model=MODEL)
    assert model.input_token_limit == 1_048_576
    assert model.supported_actions == ["generateContent", "countTokens"]
    assert client.models.count_tokens(model=MODEL, contents="x" * 40).total_tokens == 10
    with pytest.raises(errors.ClientError) as caught:
        client.models.get(model="gemini-3.6-flahs")
    assert caught.value.code == 404
    assert fake.ledger.stats("AIza-tpm-012").tokens == 0


# -- one server, three APIs --------------------------------------------------------------------


def request(path: str, headers: dict[str, str] | None = None, query: str = "") -> Request:
    return Request("POST", path, query, headers or {}, b"")


@pytest.mark.parametrize(
    ("req", "provider"),
    [
        (request("/v1beta/models/m:generateContent"), "gemini"),
        (request("/v1/models/m:streamGenerateContent", query="alt=sse"), "gemini"),
        (request("/v1/models", {"x-goog-api-key": "k"}), "gemini"),
        (request("/v1/models", query="key=k"), "gemini"),
        (request("/v1/messages", {"authorization": "Bearer k"}), "anthropic"),
        (request("/v1/models", {"anthropic-version": "2023-06-01"}), "anthropic"),
        (request("/v1/models", {"x-api-key": "k"}), "anthropic"),
        (request("/v1/models", {"authorization": "Bearer k"}), "openai"),
        (request("/v1/chat/completions"), "openai"),
        (
            request("/v1/models/ft:gpt-4o-mini:org:custom:abc", {"authorization": "Bearer k"}),
            "openai",
        ),
        (request("/v1/models", query="monkey=1"), "openai"),
    ],
)
def test_provider_of(req: Request, provider: str) -> None:
    assert provider_of(req) == provider


def test_one_dispatcher_serves_all_three_sdks_with_one_ledger() -> None:
    ledger = Ledger([FakeKey("one-key-for-all", rpm=10)], now=time.monotonic)
    faults = FaultBook()
    handler = Dispatcher(
        openai=OpenAIEmulator(ledger, faults),
        anthropic=AnthropicEmulator(ledger, faults),
        gemini=GeminiEmulator(ledger, faults),
    )
    server = ServerThread(handler)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        key = "one-key-for-all"
        oai = openai.OpenAI(api_key=key, base_url=url + "/v1", max_retries=0)
        ant = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0)
        gem = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url))
        messages: Any = [{"role": "user", "content": PROMPT}]
        assert oai.chat.completions.create(model="gpt-4o-mini", messages=messages).choices
        assert ant.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=messages)
        assert gem.models.generate_content(model=MODEL, contents=PROMPT).text
        assert next(m.id for m in oai.models.list()).startswith("gpt")
        assert next(m.id for m in ant.models.list()).startswith("claude")
        assert str(next(iter(gem.models.list())).name).startswith("models/gemini")
        assert ledger.stats(key).count(200) == 6
        assert ledger.limits(key).requests.remaining == 7  # type: ignore[union-attr]
    finally:
        server.stop()
