"""The fake Anthropic server, exercised with the plain, unpatched ``anthropic`` SDK.

Bodies are validated against the SDK's own types with no undeclared fields, and every
response the fake sends is also read back through ``keyrouter.providers.anthropic.WIRE``,
so the emulation and the wire format are checked against each other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
from anthropic.types import (
    Message,
    MessageParam,
    MessageTokensCount,
    ModelInfo,
    RawMessageStreamEvent,
)
from anthropic.types.shared import ErrorResponse

from keyrouter.core.outcome import OutcomeKind
from keyrouter.providers.anthropic import WIRE
from keyrouter.testing._anthropic import AnthropicEmulator
from keyrouter.testing._limits import FakeKey, Ledger
from keyrouter.testing._server import Fault, FaultBook, ServerThread

MODEL = "claude-haiku-4-5"
HI: list[MessageParam] = [{"role": "user", "content": "abcdefgh"}]  # 8 chars: 2 tokens
KEYS = [
    FakeKey("sk-ant-a-0123", rpm=3, tpm=40_000, scope="org-1"),
    FakeKey("sk-ant-b-0123", rpm=3, tpm=40_000, scope="org-1"),
    FakeKey("sk-ant-solo-01", rpm=100, tpm=60),
    FakeKey("sk-ant-free-01"),
    FakeKey("sk-ant-revoked", status="invalid"),
    FakeKey("sk-ant-banned", status="forbidden"),
    FakeKey("sk-ant-broke", status="insufficient_quota"),
]
EVENT_ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)


class Clock:
    """A hand-driven clock for the token buckets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Fake:
    ledger: Ledger
    faults: FaultBook
    url: str
    clock: Clock

    def client(self, key: str = "sk-ant-a-0123") -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=key, base_url=self.url, max_retries=0)

    def aclient(self, key: str = "sk-ant-a-0123") -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key=key, base_url=self.url, max_retries=0)

    def post(self, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=headers, timeout=10)


@pytest.fixture
def fake() -> Iterator[Fake]:
    clock = Clock()
    ledger = Ledger(KEYS, now=clock)
    faults = FaultBook()
    server = ServerThread(AnthropicEmulator(ledger, faults, completion_tokens=16))
    server.start()
    try:
        yield Fake(ledger, faults, f"http://127.0.0.1:{server.port}", clock)
    finally:
        server.stop()


def exact(model: Any, data: Any) -> Any:
    """Validate ``data`` as ``model`` and refuse any field the SDK type does not declare."""
    parsed = (
        model.model_validate(data)
        if isinstance(model, type) and issubclass(model, pydantic.BaseModel)
        else pydantic.TypeAdapter(model).validate_python(data)
    )
    _no_extras(parsed, getattr(model, "__name__", "event"))
    return parsed


def _no_extras(value: Any, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{path}: undeclared fields {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_extras(item, f"{path}[{i}]")


def text_of(message: Message) -> str:
    """The text of a message's single text block."""
    block = message.content[0]
    assert block.type == "text"
    return block.text


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, data) pairs, checking the ``event: X\\ndata: {...}\\n\\n`` framing."""
    assert text.endswith("\n\n")
    pairs = []
    for block in text.split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ")
        assert data_line.startswith("data: ")
        pairs.append((name_line.removeprefix("event: "), json.loads(data_line[6:])))
    return pairs


# -- messages -------------------------------------------------------------------------------


def test_create_returns_a_message_the_sdk_types_declare(fake: Fake) -> None:
    raw = fake.client().messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=HI, system="Be brief."
    )
    message = exact(Message, json.loads(raw.http_response.content))
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 5  # "Be brief." + "abcdefgh": 17 chars
    assert message.usage.output_tokens == 16
    assert text_of(message).startswith("This is a simulated answer")
    assert raw.headers["request-id"].startswith("req_011C")
    assert raw.headers["content-type"] == "application/json"


def test_every_response_carries_the_twelve_limit_headers_as_rfc3339(fake: Fake) -> None:
    raw = fake.client().messages.with_raw_response.create(model=MODEL, max_tokens=5, messages=HI)
    names = [n for n in raw.headers if n.startswith("anthropic-ratelimit-")]
    assert len(names) == 12
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "3"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "2"
    reset = raw.headers["anthropic-ratelimit-requests-reset"]
    assert reset.endswith("Z")
    assert datetime.strptime(reset, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() >= (
        time.time() - 2
    )
    found = {o.dimension: o for o in WIRE.observations(dict(raw.headers), time.time())}
    assert set(found) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert found["tokens"].remaining == 40_000 - 2 - 5


def test_max_tokens_cuts_the_answer_and_says_so(fake: Fake) -> None:
    message = fake.client().messages.create(model=MODEL, max_tokens=3, messages=HI)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    assert text_of(message) == "This is a"


def test_charge_is_prompt_plus_generated_output(fake: Fake) -> None:
    fake.client().messages.create(model=MODEL, max_tokens=1000, messages=HI)
    assert fake.ledger.stats("sk-ant-a-0123").tokens == 2 + 16


def test_keys_of_one_organization_report_one_organization(fake: Fake) -> None:
    ids = {
        fake.client(key)
        .messages.with_raw_response.create(model=MODEL, max_tokens=1, messages=HI)
        .headers["anthropic-organization-id"]
        for key in ("sk-ant-a-0123", "sk-ant-b-0123", "sk-ant-free-01")
    }
    assert len(ids) == 2


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "sk-ant-free-01"},  # anthropic <= 1.17
        {"authorization": "Bearer sk-ant-free-01"},  # anthropic 2.x
    ],
)
def test_either_credential_header_is_accepted(fake: Fake, headers: dict[str, str]) -> None:
    body = {"model": MODEL, "max_tokens": 2, "messages": HI}
    response = fake.post("/v1/messages", body, {"anthropic-version": "2023-06-01", **headers})
    assert response.status_code == 200
    assert fake.ledger.stats("sk-ant-free-01").count(200) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": MODEL, "messages": HI}, "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": HI}, "model: Field required"),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        ({"model": MODEL, "max_tokens": 0, "messages": HI}, "max_tokens: Input should be"),
    ],
)
def test_invalid_requests_are_400_and_not_the_keys_fault(
    fake: Fake, body: dict[str, Any], message: str
) -> None:
    response = fake.post("/v1/messages", body, {"x-api-key": "sk-ant-free-01"})
    assert response.status_code == 400
    error = exact(ErrorResponse, response.json())
    assert error.error.type == "invalid_request_error"
    assert error.error.message.startswith(message)
    outcome = WIRE.classify(400, dict(response.headers), response.content, time.time())
    assert outcome.kind is OutcomeKind.REQUEST_ERROR


# -- streaming ------------------------------------------------------------------------------


def test_stream_helper_accumulates_text_and_usage(fake: Fake) -> None:
    with fake.client().messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == text_of(final)
    assert len(text.split()) == 16
    assert final.usage.output_tokens == 16
    assert final.usage.input_tokens == 2
    assert final.stop_reason == "end_turn"


def test_raw_stream_events_are_framed_and_typed_like_the_api(fake: Fake) -> None:
    body = {"model": MODEL, "max_tokens": 4, "messages": HI, "stream": True}
    response = fake.post("/v1/messages", body, {"x-api-key": "sk-ant-free-01"})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    for name, data in events:
        assert data["type"] == name
        if name != "ping":
            exact(RawMessageStreamEvent, data)
    start, delta = events[0][1], events[-2][1]
    assert start["message"]["content"] == []
    assert start["message"]["stop_reason"] is None
    assert delta["delta"]["stop_reason"] == "max_tokens"
    assert delta["usage"]["output_tokens"] == 4


def test_create_with_stream_true_yields_sdk_events(fake: Fake) -> None:
    stream = fake.client().messages.create(model=MODEL, max_tokens=2, messages=HI, stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds.count("content_block_delta") == 2


async def test_async_create_and_stream(fake: Fake) -> None:
    client = fake.aclient("sk-ant-free-01")
    message = await client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert message.usage.output_tokens == 5
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens == 16
    await client.close()


# -- limits and errors ------------------------------------------------------------------------


def test_rate_limit_is_shared_by_the_organization_and_refills(fake: Fake) -> None:
    for key in ("sk-ant-a-0123", "sk-ant-b-0123", "sk-ant-a-0123"):
        fake.client(key).messages.create(model=MODEL, max_tokens=1, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as caught:
        fake.client("sk-ant-b-0123").messages.create(model=MODEL, max_tokens=1, messages=HI)
    response = caught.value.response
    assert response.headers["retry-after"] == "20"  # 3 rpm: one request every 20 s
    assert response.headers["x-should-retry"] == "true"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    error = exact(ErrorResponse, response.json())
    assert "3 requests per minute" in error.error.message
    now = time.time()
    outcome = WIRE.classify(429, dict(response.headers), response.content, now)
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert outcome.retry_at == pytest.approx(now + 20)
    fake.clock.now += 20
    fake.client("sk-ant-b-0123").messages.create(model=MODEL, max_tokens=1, messages=HI)
    assert fake.ledger.scope_stats("org-1").count(429) == 1


def test_a_token_limit_refusal_names_tokens(fake: Fake) -> None:
    client = fake.client("sk-ant-solo-01")
    client.messages.create(model=MODEL, max_tokens=1000, messages=HI)  # 18 of 60 tokens
    client.messages.create(model=MODEL, max_tokens=1000, messages=HI)
    client.messages.create(model=MODEL, max_tokens=1000, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=1000, messages=HI)
    assert "60 tokens per minute" in caught.value.message


def test_a_rate_limited_stream_fails_before_the_first_event(fake: Fake) -> None:
    client = fake.client("sk-ant-a-0123")
    for _ in range(3):
        client.messages.create(model=MODEL, max_tokens=1, messages=HI)
    with (
        pytest.raises(anthropic.RateLimitError),
        client.messages.stream(model=MODEL, max_tokens=5, messages=HI) as stream,
    ):
        stream.get_final_message()


@pytest.mark.parametrize(
    ("key", "exception", "status", "kind"),
    [
        ("sk-ant-revoked", anthropic.AuthenticationError, 401, OutcomeKind.INVALID_KEY),
        ("sk-ant-unknown", anthropic.AuthenticationError, 401, OutcomeKind.INVALID_KEY),
        ("sk-ant-banned", anthropic.PermissionDeniedError, 403, OutcomeKind.FORBIDDEN),
        (
            "sk-ant-broke",
            anthropic.EnforcedSpendLimitReachedError,
            429,
            OutcomeKind.QUOTA_EXHAUSTED,
        ),
    ],
)
def test_key_statuses_map_to_sdk_exceptions_and_wire_outcomes(
    fake: Fake, key: str, exception: type[anthropic.APIStatusError], status: int, kind: OutcomeKind
) -> None:
    with pytest.raises(exception) as caught:
        fake.client(key).messages.create(model=MODEL, max_tokens=1, messages=HI)
    response = caught.value.response
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["request_id"] == response.headers["request-id"]
    outcome = WIRE.classify(status, dict(response.headers), response.content, time.time())
    assert outcome.kind is kind
    assert fake.ledger.stats(key).count(status) == 1


def test_spend_limit_429_has_no_retry_after_and_pauses_until_next_month(fake: Fake) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        fake.client("sk-ant-broke").messages.create(model=MODEL, max_tokens=1, messages=HI)
    assert caught.value.error_code == "enforced_spend_limit_reached"
    response = caught.value.response
    assert "retry-after" not in response.headers
    assert response.headers["x-should-retry"] == "false"
    outcome = WIRE.classify(429, dict(response.headers), response.content, time.time())
    assert outcome.retry_at is not None
    assert datetime.fromtimestamp(outcome.retry_at, UTC).day == 1


def test_no_key_is_401(fake: Fake) -> None:
    response = fake.post("/v1/messages", {"model": MODEL, "max_tokens": 1, "messages": HI}, {})
    assert response.status_code == 401
    assert exact(ErrorResponse, response.json()).error.type == "authentication_error"
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("code", "exception", "kind"),
    [
        (529, anthropic.OverloadedError, OutcomeKind.OVERLOADED),
        (402, anthropic.PaymentRequiredError, OutcomeKind.QUOTA_EXHAUSTED),
        (500, anthropic.InternalServerError, OutcomeKind.SERVER_ERROR),
        (504, anthropic.GatewayTimeoutError, OutcomeKind.SERVER_ERROR),
        (429, anthropic.RateLimitError, OutcomeKind.RATE_LIMITED),
        (404, anthropic.NotFoundError, OutcomeKind.REQUEST_ERROR),
    ],
)
def test_status_faults_use_anthropics_error_bodies(
    fake: Fake, code: int, exception: type[anthropic.APIStatusError], kind: OutcomeKind
) -> None:
    fake.faults.inject(Fault.status(code), key="sk-ant-free-01", times=1)
    with pytest.raises(exception) as caught:
        fake.client("sk-ant-free-01").messages.create(model=MODEL, max_tokens=1, messages=HI)
    response = caught.value.response
    assert response.status_code == code
    exact(ErrorResponse, response.json())
    assert WIRE.classify(code, dict(response.headers), response.content, time.time()).kind is kind
    # The fault was used up: the next request is served.
    fake.client("sk-ant-free-01").messages.create(model=MODEL, max_tokens=1, messages=HI)


def test_overloaded_is_an_internal_server_error_to_older_code(fake: Fake) -> None:
    assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)
    fake.faults.inject(Fault.status(529), times=1)
    with pytest.raises(anthropic.InternalServerError) as caught:
        fake.client().messages.create(model=MODEL, max_tokens=1, messages=HI)
    assert caught.value.response.headers["x-should-retry"] == "true"


def test_an_error_event_inside_a_200_stream_raises(fake: Fake) -> None:
    fake.faults.inject(Fault.error_in_200(), times=1)
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        fake.client().messages.stream(model=MODEL, max_tokens=5, messages=HI) as stream,
    ):
        stream.get_final_message()


def test_a_dropped_connection_is_a_connection_error(fake: Fake) -> None:
    fake.faults.inject(Fault.reset(), times=1)
    with pytest.raises(anthropic.APIConnectionError):
        fake.client().messages.create(model=MODEL, max_tokens=1, messages=HI)
    assert fake.ledger.stats("sk-ant-a-0123").count(0) == 1


# -- count_tokens and models ------------------------------------------------------------------


def test_count_tokens_is_free(fake: Fake) -> None:
    client = fake.client("sk-ant-solo-01")
    counted = client.messages.count_tokens(model=MODEL, messages=HI, system="abcd")
    exact(MessageTokensCount, counted.model_dump())
    assert counted.input_tokens == 3
    assert fake.ledger.stats("sk-ant-solo-01").tokens == 0


def test_models_list_and_retrieve(fake: Fake) -> None:
    client = fake.client()
    raw = client.models.with_raw_response.list()
    page = json.loads(raw.http_response.content)
    assert page["has_more"] is False
    models = [exact(ModelInfo, item) for item in page["data"]]
    assert MODEL in [m.id for m in models]
    assert page["first_id"] == models[0].id
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-sonet-4-5")
    assert fake.ledger.stats("sk-ant-a-0123").tokens == 0
    assert fake.ledger.limits("sk-ant-a-0123").requests is not None
    assert fake.ledger.limits("sk-ant-a-0123").requests.remaining == 3  # type: ignore[union-attr]
