"""Failover inside the transport: the SDK sees success, or its own error once."""

from __future__ import annotations

import httpx2
import openai
import pytest

import keyrouter
from keyrouter import KeyState
from tests.transports.mock_openai import (
    FORBIDDEN,
    INVALID,
    NO_QUOTA,
    RATE_LIMITED,
    SERVER_ERROR,
    MockOpenAI,
    chat,
    ok,
)

GOOD = "sk-good-000000000000000000000001"
LIMITED = "sk-limited-0000000000000000000002"
SPENT = "sk-spent-00000000000000000000003"
BAD = "sk-bad-0000000000000000000000004"
BANNED = "sk-banned-00000000000000000000005"
FLAKY = "sk-flaky-00000000000000000000006"

MIXED = {GOOD: ok(), LIMITED: RATE_LIMITED, SPENT: NO_QUOTA, BAD: INVALID, BANNED: FORBIDDEN}


def states() -> dict[str, KeyState]:
    return {s.key: s.state for s in keyrouter.snapshot()["openai"]}


def test_mixed_pool_succeeds_and_each_bad_key_is_hit_at_most_once() -> None:
    mock = MockOpenAI(MIXED)
    keyrouter.patch(openai=[BAD, SPENT, LIMITED, BANNED, GOOD])
    client = openai.OpenAI(http_client=mock.client())
    for _ in range(10):
        assert isinstance(chat(client), openai.types.chat.ChatCompletion)
    assert mock.hits[GOOD] == 10
    for key in (BAD, SPENT, LIMITED, BANNED):
        assert mock.hits[key] <= 1
    found = states()
    assert found[keyrouter.Key(BAD).label] is KeyState.INVALID
    assert found[keyrouter.Key(BANNED).label] is KeyState.DISABLED


async def test_mixed_pool_async() -> None:
    mock = MockOpenAI(MIXED)
    client = keyrouter.KeyRoutedAsyncOpenAI(
        keys=[BAD, SPENT, LIMITED, BANNED, GOOD], http_client=mock.async_client()
    )
    for _ in range(5):
        result = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert result.choices[0].message.content == "hello"
    assert mock.hits[GOOD] == 5
    assert all(mock.hits[k] <= 1 for k in (BAD, SPENT, LIMITED, BANNED))


def test_when_every_key_is_limited_the_sdk_raises_its_own_error_once() -> None:
    mock = MockOpenAI({LIMITED: RATE_LIMITED, SPENT: NO_QUOTA})
    client = keyrouter.KeyRoutedOpenAI(
        keys=[LIMITED, SPENT], http_client=mock.client(), max_wait=0.5
    )
    with pytest.raises(openai.RateLimitError) as info:
        chat(client)
    message = str(info.value)
    assert keyrouter.Key(LIMITED).label in message
    assert keyrouter.Key(SPENT).label in message
    assert "recovers in" in message
    assert LIMITED not in message
    assert SPENT not in message
    assert info.value.response.headers["x-should-retry"] == "false"
    assert sum(mock.hits.values()) == 2, "no SDK retries on top of keyrouter's failover"


def test_a_request_with_no_key_left_gets_a_made_up_error_in_openai_format() -> None:
    mock = MockOpenAI({LIMITED: RATE_LIMITED})
    client = keyrouter.KeyRoutedOpenAI(keys=[LIMITED], http_client=mock.client(), max_wait=0)
    with pytest.raises(openai.RateLimitError):
        chat(client)
    with pytest.raises(openai.RateLimitError) as info:
        chat(client)
    assert mock.hits[LIMITED] == 1, "the cooling key is not called again"
    assert info.value.code == "rate_limit_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 29


def test_every_key_invalid_raises_authentication_error() -> None:
    mock = MockOpenAI({BAD: INVALID})
    client = keyrouter.KeyRoutedOpenAI(keys=[BAD], http_client=mock.client())
    with pytest.raises(openai.AuthenticationError):
        chat(client)
    with pytest.raises(openai.AuthenticationError) as info:
        chat(client)
    assert mock.hits[BAD] == 1
    assert "no key is expected to recover" in str(info.value)


def test_server_errors_fail_over_and_open_the_circuit() -> None:
    mock = MockOpenAI({FLAKY: SERVER_ERROR, GOOD: ok()})
    client = keyrouter.KeyRoutedOpenAI(
        keys=[FLAKY, GOOD], http_client=mock.client(), objective="round_robin"
    )
    for _ in range(8):
        chat(client)
    assert mock.hits[GOOD] == 8
    assert mock.hits[FLAKY] == 3, "threshold of 3 failures, then the circuit is open"
    flaky = next(s for s in client.key_pool.snapshot() if s.key == keyrouter.Key(FLAKY).label)
    assert flaky.state is KeyState.CIRCUIT_OPEN
    assert "openai" not in keyrouter.snapshot(), "the client's own pool is not the global one"


def test_single_key_transient_failure_is_left_to_the_sdks_retries() -> None:
    calls = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return SERVER_ERROR(request) if len(calls) == 1 else ok()(request)

    mock = MockOpenAI({GOOD: answer})
    client = keyrouter.KeyRoutedOpenAI(keys=[GOOD], http_client=mock.client(), max_retries=1)
    client = client.with_options()  # copies keep the pool
    assert chat(client).choices[0].message.content == "hello"
    assert len(calls) == 2


def test_connection_errors_fail_over() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    mock = MockOpenAI({FLAKY: refuse, GOOD: ok()})
    client = keyrouter.KeyRoutedOpenAI(
        keys=[FLAKY, GOOD], http_client=mock.client(), objective="round_robin", max_retries=0
    )
    for _ in range(4):
        assert chat(client).choices[0].message.content == "hello"
    assert mock.hits[GOOD] == 4


def test_connection_errors_on_every_key_reach_the_sdk_as_its_connection_error() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    mock = MockOpenAI({FLAKY: refuse})
    client = keyrouter.KeyRoutedOpenAI(keys=[FLAKY], http_client=mock.client(), max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        chat(client)


def test_request_errors_are_not_failed_over() -> None:
    bad_request = MockOpenAI(
        {
            GOOD: lambda r: httpx2.Response(
                400,
                json={
                    "error": {
                        "message": "bad",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": None,
                    }
                },
            )
        }
    )
    client = keyrouter.KeyRoutedOpenAI(
        keys=[GOOD, GOOD.replace("1", "9")], http_client=bad_request.client()
    )
    with pytest.raises(openai.BadRequestError):
        chat(client)
    assert sum(bad_request.hits.values()) == 1


def test_a_key_is_only_written_into_requests_to_the_clients_host() -> None:
    mock = MockOpenAI({GOOD: ok()})
    keyrouter.patch(openai=[GOOD])
    client = openai.OpenAI(http_client=mock.client())
    chat(client)
    placeholder_auth = {"authorization": "Bearer keyrouter-pool-placeholder"}
    client._client.get("https://elsewhere.example/v1/models", headers=placeholder_auth)
    client._client.get("https://api.openai.com.evil.example/v1/models", headers=placeholder_auth)
    keys_by_host = {}
    for host, key in mock.hosts:
        keys_by_host.setdefault(host, set()).add(key)
    assert keys_by_host["api.openai.com"] == {GOOD}
    assert GOOD not in keys_by_host["elsewhere.example"]
    assert GOOD not in keys_by_host["api.openai.com.evil.example"]


def test_an_explicit_credential_of_the_user_passes_through_untouched() -> None:
    mine = "sk-users-own-key-000000000000000"
    mock = MockOpenAI({GOOD: ok(), mine: ok()})
    keyrouter.patch(openai=[GOOD])
    client = openai.OpenAI(api_key=mine, http_client=mock.client())
    chat(client)
    routed = openai.OpenAI(http_client=mock.client())
    routed.chat.completions.create(
        model="m", messages=[], extra_headers={"Authorization": f"Bearer {mine}"}
    )
    assert mock.hits[mine] == 2
    assert mock.hits[GOOD] == 0


def test_client_built_with_a_pool_key_routes() -> None:
    mock = MockOpenAI({BAD: INVALID, GOOD: ok()})
    keyrouter.patch(openai=[BAD, GOOD])
    client = openai.OpenAI(api_key=BAD, http_client=mock.client())
    chat(client)
    assert mock.hits[GOOD] == 1


def test_routed_client_with_no_pool_in_force_answers_with_a_clear_error() -> None:
    mock = MockOpenAI({GOOD: ok()})
    keyrouter.patch()
    client = openai.OpenAI(http_client=mock.client())
    with pytest.raises(openai.AuthenticationError, match="no openai key pool is active"):
        chat(client)
    assert not mock.hits
    with keyrouter.pool(openai=[GOOD]):
        chat(client)
    assert mock.hits[GOOD] == 1
