"""A patched client returns exactly what an unpatched one does: same class, same data.

Each pair of calls goes to the same fake provider, once through a plain client holding the key
and once through keyrouter. The fake makes fresh ids and timestamps per response, so those
fields are set aside before the dumps are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pydantic
import pytest

import keyrouter
from keyrouter.testing import FakeProvider
from tests.integration._compare import dump
from tests.integration.conftest import GOOD

MESSAGES = [{"role": "user", "content": "Say hello"}]


class Weather(pydantic.BaseModel):
    city: str
    celsius: float
    sunny: bool


SYNC_CALLS: dict[str, Callable[[openai.OpenAI], Any]] = {
    "chat": lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
    "chat_stream": lambda c: list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    ),
    "raw_response": lambda c: c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ).parse(),
    "parse": lambda c: c.chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Weather
    ),
    "embeddings": lambda c: c.embeddings.create(model="text-embedding-3-small", input="hello"),
    "responses": lambda c: c.responses.create(model="gpt-4o-mini", input="Say hello"),
    "responses_stream": lambda c: list(
        c.responses.create(model="gpt-4o-mini", input="Say hello", stream=True)
    ),
    "models": lambda c: c.models.list().data,
}


async def _raw_parse(client: openai.AsyncOpenAI) -> Any:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    return raw.parse()


async def _alist(stream: Any) -> list[Any]:
    return [item async for item in await stream]


ASYNC_CALLS: dict[str, Callable[[openai.AsyncOpenAI], Any]] = {
    "chat": lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
    "chat_stream": lambda c: _alist(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    ),
    "parse": lambda c: c.chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Weather
    ),
    "raw_response": lambda c: _raw_parse(c),
    "embeddings": lambda c: c.embeddings.create(model="text-embedding-3-small", input="hello"),
    "responses": lambda c: c.responses.create(model="gpt-4o-mini", input="Say hello"),
    "responses_stream": lambda c: _alist(
        c.responses.create(model="gpt-4o-mini", input="Say hello", stream=True)
    ),
}


@pytest.mark.parametrize("name", sorted(SYNC_CALLS))
def test_sync_patched_and_plain_clients_agree(fake: FakeProvider, name: str) -> None:
    call = SYNC_CALLS[name]
    plain = call(openai.OpenAI(api_key=GOOD, base_url=fake.base_url))
    keyrouter.patch(openai=[GOOD])
    patched = call(openai.OpenAI(base_url=fake.base_url))
    assert type(patched) is type(plain)
    if isinstance(plain, list):
        assert [type(x) for x in patched] == [type(x) for x in plain]
    assert dump(patched) == dump(plain)
    assert fake.stats(GOOD).count(200) == 2


@pytest.mark.parametrize("name", sorted(ASYNC_CALLS))
async def test_async_patched_and_plain_clients_agree(fake: FakeProvider, name: str) -> None:
    call = ASYNC_CALLS[name]
    plain = await call(openai.AsyncOpenAI(api_key=GOOD, base_url=fake.base_url))
    routed = await call(keyrouter.KeyRoutedAsyncOpenAI(keys=[GOOD], base_url=fake.base_url))
    assert type(routed) is type(plain)
    assert dump(routed) == dump(plain)
    assert fake.stats(GOOD).count(200) == 2


def test_parse_returns_the_users_pydantic_model(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedOpenAI(keys=[GOOD], base_url=fake.base_url)
    parsed = SYNC_CALLS["parse"](client).choices[0].message.parsed
    assert isinstance(parsed, Weather)


def test_raw_response_exposes_the_providers_headers(fake: FakeProvider) -> None:
    client = keyrouter.KeyRoutedOpenAI(keys=[GOOD], base_url=fake.base_url)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    # The request the SDK keeps shows its own credential again, never the pool key.
    assert raw.http_request.headers["authorization"] == "Bearer keyrouter-pool-placeholder"
