"""patch()/unpatch(): idempotent, exact, and reaching every client created in between."""

from __future__ import annotations

import httpx2
import openai
import pytest
import wrapt

import keyrouter
from keyrouter.entry._sdks import bindings_for, client_transports
from keyrouter.transports import installed_route
from tests.transports.mock_openai import COMPLETION, MockOpenAI, chat, ok

GOOD = "sk-good-000000000000000000000001"
OTHER = "sk-other-00000000000000000000002"


def test_unpatch_restores_the_exact_original_init() -> None:
    originals = {cls: cls.__dict__["__init__"] for cls in (openai.OpenAI, openai.AsyncOpenAI)}
    keyrouter.patch(openai=[GOOD])
    keyrouter.patch(openai=[GOOD])
    for cls in originals:
        wrapper = cls.__dict__["__init__"]
        assert isinstance(wrapper, wrapt.FunctionWrapper)
        assert wrapper.__wrapped__ is originals[cls], "patching twice wraps once"
    keyrouter.unpatch()
    keyrouter.unpatch()
    for cls, original in originals.items():
        assert cls.__dict__["__init__"] is original


def test_clients_created_after_patch_route_and_before_do_not() -> None:
    mock = MockOpenAI({GOOD: ok(), "sk-before-00000000000000000000003": ok()})
    before = openai.OpenAI(api_key="sk-before-00000000000000000000003", http_client=mock.client())
    keyrouter.patch(openai=[GOOD])
    after = openai.OpenAI(http_client=mock.client())
    binding = bindings_for("openai")[0]
    assert all(installed_route(t) is None for t, _ in client_transports(before, binding))
    assert all(installed_route(t) is not None for t, _ in client_transports(after, binding))
    chat(before)
    chat(after)
    assert mock.hits[GOOD] == 1


def test_patch_again_replaces_the_pool() -> None:
    mock = MockOpenAI({GOOD: ok(), OTHER: ok()})
    keyrouter.patch(openai=[GOOD])
    client = openai.OpenAI(http_client=mock.client())
    chat(client)
    keyrouter.patch(openai=[OTHER])
    chat(client)
    assert mock.hits == {GOOD: 1, OTHER: 1}


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEYS", f"{GOOD},{OTHER}")
    mock = MockOpenAI({GOOD: ok(), OTHER: ok()})
    keyrouter.patch()
    client = openai.OpenAI(http_client=mock.client())
    for _ in range(4):
        chat(client)
    assert mock.hits == {GOOD: 2, OTHER: 2}


def test_ambient_key_is_used_outside_scopes_when_no_global_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ambient = "sk-ambient-000000000000000000004"
    monkeypatch.setenv("OPENAI_API_KEY", ambient)
    mock = MockOpenAI({GOOD: ok(), ambient: ok()})
    keyrouter.patch()
    client = openai.OpenAI(http_client=mock.client())
    chat(client)
    with keyrouter.pool(openai=[GOOD]):
        chat(client)
    assert mock.hits == {ambient: 1, GOOD: 1}


def test_with_options_copies_keep_routing() -> None:
    mock = MockOpenAI({GOOD: ok()})
    keyrouter.patch(openai=[GOOD])
    client = openai.OpenAI(http_client=mock.client()).with_options(timeout=5)
    chat(client)
    assert mock.hits[GOOD] == 1


def test_bad_configuration_is_refused_at_patch_time_without_echoing_keys() -> None:
    with pytest.raises(keyrouter.ConfigError, match="openai") as info:
        keyrouter.patch(openai=[GOOD, GOOD])
    assert GOOD not in str(info.value)
    with pytest.raises(keyrouter.ConfigError, match="max_attempts"):
        keyrouter.patch(openai=[GOOD], max_attempts=0)
    with pytest.raises(keyrouter.ConfigError, match="objective"):
        keyrouter.patch(openai=[GOOD], objective="fastest")
    assert not keyrouter.snapshot()


def test_key_routed_client_needs_keys() -> None:
    with pytest.raises(keyrouter.ConfigError, match="keys"):
        keyrouter.KeyRoutedOpenAI()


def test_key_routed_clients_are_real_sdk_clients() -> None:
    client = keyrouter.KeyRoutedOpenAI(keys=[GOOD])
    assert isinstance(client, openai.OpenAI)
    assert isinstance(keyrouter.KeyRoutedAsyncOpenAI(keys=[GOOD]), openai.AsyncOpenAI)
    assert GOOD not in repr(client.key_pool.snapshot())


def test_on_event_reports_a_key_going_invalid_and_can_be_removed() -> None:
    from tests.transports.mock_openai import INVALID

    events: list[keyrouter.Event] = []
    remove = keyrouter.on_event(events.append)
    mock = MockOpenAI({GOOD: ok(), OTHER: INVALID})
    client = keyrouter.KeyRoutedOpenAI(
        keys=[OTHER, GOOD], http_client=mock.client(), objective="round_robin"
    )
    chat(client)
    remove()
    chat(client)
    changes = [e for e in events if isinstance(e, keyrouter.KeyStateChanged)]
    assert len(changes) == 1
    assert changes[0].key == keyrouter.Key(OTHER).label
    assert changes[0].new is keyrouter.KeyState.INVALID


def test_azure_clients_are_never_given_openai_pool_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    ambient = "azure-key-0000000000000000000000"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", ambient)
    seen: list[tuple[str | None, str | None]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.headers.get("api-key"), request.headers.get("authorization")))
        return httpx2.Response(200, json=COMPLETION)

    keyrouter.patch(openai=[GOOD])
    client = openai.AzureOpenAI(
        azure_endpoint="https://res.openai.azure.com",
        api_version="2024-10-21",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    chat(client)
    assert seen == [(ambient, None)]


def test_clients_with_their_own_kind_of_credential_are_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anthropic
    from google import genai

    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "oauth-token-000000000000000000000")
    keyrouter.patch()
    oauth = anthropic.Anthropic()
    (binding,) = [b for b in bindings_for("anthropic") if b.is_async is False]
    assert all(installed_route(t) is None for t, _ in client_transports(oauth, binding))
    assert oauth.auth_token == "oauth-token-000000000000000000000"

    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    keyrouter.patch(gemini=["AIzaSyPatchGood0000000000000000000001"])
    vertex = genai.Client(api_key="AIzaSyVertexExpress000000000000000002")
    (gemini_binding,) = bindings_for("gemini")
    assert all(
        installed_route(t) is None for t, _ in client_transports(vertex._api_client, gemini_binding)
    )
