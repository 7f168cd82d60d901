"""Azure OpenAI: keys in `api-key`, several resources in one pool, the SDK's redirect guard kept."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import openai
import pytest

import keyrouter
from keyrouter import KeyState
from keyrouter.testing import FakeKey, FakeProvider
from tests.integration._compare import dump

KEY_A = "azkeyresourceaaaaaaaaaaaaaaaa0001"
KEY_B = "azkeyresourcebbbbbbbbbbbbbbbb0002"
REVOKED = "azkeyrevokedcccccccccccccccccc0003"
VERSION = "2024-10-21"
# The HTTP package of the installed SDK major (httpx2 for openai 3.x, httpx before).
http = importlib.import_module("httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx")
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def resources() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    with (
        FakeProvider([FakeKey(KEY_A), FakeKey(REVOKED, status="invalid")]) as one,
        FakeProvider([FakeKey(KEY_B)]) as two,
    ):
        yield one, two


def test_patched_azure_client_agrees_with_a_plain_one(
    resources: tuple[FakeProvider, FakeProvider],
) -> None:
    one, _ = resources
    plain = openai.AzureOpenAI(api_key=KEY_A, azure_endpoint=one.url, api_version=VERSION)
    expected = plain.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    keyrouter.patch(azure=[KEY_A])
    routed = openai.AzureOpenAI(azure_endpoint=one.url, api_version=VERSION)
    result = routed.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(result) is type(expected)
    assert dump(result) == dump(expected)
    assert one.stats(KEY_A).count(200) == 2


def test_failover_across_keys_and_resources(resources: tuple[FakeProvider, FakeProvider]) -> None:
    one, two = resources
    client = keyrouter.KeyRoutedAzureOpenAI(
        keys=[REVOKED, KEY_A, keyrouter.azure_key(KEY_B, two.url)],
        azure_endpoint=one.url,
        api_version=VERSION,
        objective="round_robin",
    )
    for _ in range(6):
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert one.stats(REVOKED).requests == 1
    assert {r.key for r in two.requests} == {KEY_B}
    assert KEY_B not in {r.key for r in one.requests}
    assert one.stats(KEY_A).count(200) + two.stats(KEY_B).count(200) == 6
    states = {s.key: s.state for s in client.key_pool.snapshot()}
    assert states[keyrouter.Key(REVOKED).label] is KeyState.INVALID


def test_azure_key_on_another_resource_gets_its_deployment_name() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def handler(request: object) -> object:
        seen.append((request.url.host, request.url.path, request.headers.get("api-key")))
        return http.Response(
            200,
            json={
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hi"},
                    }
                ],
            },
        )

    client = keyrouter.KeyRoutedAzureOpenAI(
        keys=[keyrouter.azure_key(KEY_B, "https://eu.openai.azure.com", deployment="gpt4o-eu")],
        azure_endpoint="https://us.openai.azure.com",
        api_version=VERSION,
        http_client=http.Client(transport=http.MockTransport(handler)),
    )
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert seen == [("eu.openai.azure.com", "/openai/deployments/gpt4o-eu/chat/completions", KEY_B)]


def test_the_sdks_strip_on_redirect_guard_still_protects_pool_keys() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: object) -> object:
        if request.url.host == "res.openai.azure.com":
            return http.Response(307, headers={"location": "https://elsewhere.example/x"})
        seen["api-key"] = request.headers.get("api-key")
        seen["authorization"] = request.headers.get("authorization")
        return http.Response(404, json={"error": {"message": "nope", "type": "x"}})

    client = keyrouter.KeyRoutedAzureOpenAI(
        keys=[KEY_A],
        azure_endpoint="https://res.openai.azure.com",
        api_version=VERSION,
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(handler), follow_redirects=True),
    )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert seen == {"api-key": None, "authorization": None}


def test_entra_id_clients_are_left_alone() -> None:
    keyrouter.patch(azure=[KEY_A])
    client = openai.AzureOpenAI(
        azure_ad_token="entra-token",
        azure_endpoint="https://res.openai.azure.com",
        api_version=VERSION,
    )
    from keyrouter.entry._sdks import bindings_for, client_transports
    from keyrouter.transports import installed_route

    binding = bindings_for("azure")[0]
    assert all(installed_route(t) is None for t, _ in client_transports(client, binding))


async def test_async_azure_client_fails_over_and_streams(
    resources: tuple[FakeProvider, FakeProvider],
) -> None:
    one, _ = resources
    client = keyrouter.KeyRoutedAsyncAzureOpenAI(
        keys=[REVOKED, KEY_A], azure_endpoint=one.url, api_version=VERSION
    )
    result = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert isinstance(result, openai.types.chat.ChatCompletion)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    assert one.stats(REVOKED).requests == 1
    assert one.stats(KEY_A).count(200) == 2
