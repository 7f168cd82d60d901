"""What a request reserves: the cheap bound of its demand where the next key has room to
spare, the estimate wherever the difference could matter."""

from __future__ import annotations

from typing import Any

import httpx2

import keyrouter
from keyrouter.core.quota import Demand
from keyrouter.providers.openai import WIRE
from tests.transports.mock_openai import MockOpenAI, chat, ok

KEY = "sk-bound-0000000000000000000000001"


def limits(remaining_tokens: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "1000000",
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
        "x-ratelimit-reset-tokens": "30s",
    }


def reserved_demands(remaining_tokens: int, calls: int = 3) -> list[Demand]:
    """The demand reserved for each call after the first, seen from inside the request."""
    seen: list[Demand] = []
    client: Any = None

    def answer(request: httpx2.Request) -> httpx2.Response:
        pool = client._client._transport.__dict__["_keyrouter_route"].own_pool
        for scope in pool.book.scopes.values():
            seen.extend(scope.quota.in_flight.values())
        return ok(limits(remaining_tokens))(request)

    mock = MockOpenAI({KEY: answer})
    client = keyrouter.KeyRoutedOpenAI(keys=[KEY], http_client=mock.client())
    for _ in range(calls):
        chat(client)
    return seen[1:]


def estimate_and_bound() -> tuple[float, float]:
    body = b'{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}'
    bound = WIRE.demand_bound("POST", "/v1/chat/completions", body)
    assert bound is not None
    return WIRE.estimate_demand("POST", "/v1/chat/completions", body).get("tokens"), bound.get(
        "tokens"
    )


def test_a_roomy_pool_reserves_the_bound() -> None:
    estimate, bound = estimate_and_bound()
    assert bound > estimate
    demands = reserved_demands(remaining_tokens=990_000)
    assert [d.get("tokens") for d in demands] == [bound, bound]
    assert all(d.model == "gpt-4o-mini" for d in demands)


def test_a_pool_near_its_limit_reserves_the_estimate() -> None:
    estimate, _ = estimate_and_bound()
    demands = reserved_demands(remaining_tokens=200_000)
    assert [d.get("tokens") for d in demands] == [estimate, estimate]
