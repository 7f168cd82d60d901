"""A scripted OpenAI stand-in on httpx2.MockTransport: per key, what to answer, and a log."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx2

Answer = Callable[[httpx2.Request], httpx2.Response]

COMPLETION = {
    "id": "chatcmpl-mock",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def error(
    status: int, code: str | None, kind: str, headers: dict[str, str] | None = None
) -> Answer:
    body = {"error": {"message": f"mock {code}", "type": kind, "param": None, "code": code}}
    return lambda request: httpx2.Response(status, json=body, headers=headers or {})


def ok(headers: dict[str, str] | None = None) -> Answer:
    return lambda request: httpx2.Response(200, json=COMPLETION, headers=headers or {})


RATE_LIMITED = error(429, "rate_limit_exceeded", "requests", {"retry-after": "30"})
NO_QUOTA = error(429, "insufficient_quota", "insufficient_quota")
INVALID = error(401, "invalid_api_key", "invalid_request_error")
FORBIDDEN = error(403, "unsupported_country_region_territory", "request_forbidden")
SERVER_ERROR = error(500, None, "server_error")


class MockOpenAI:
    """Answers each request according to the key it carries; counts hits per key."""

    def __init__(self, answers: dict[str, Answer], default: Answer | None = None) -> None:
        self.answers = answers
        self.default = default or INVALID
        self.hits: Counter[str] = Counter()
        self.hosts: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def key_of(self, request: httpx2.Request) -> str | None:
        auth = request.headers.get("authorization")
        return auth.removeprefix("Bearer ") if auth else None

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        key = self.key_of(request)
        with self._lock:
            self.hits[key or "<none>"] += 1
            self.hosts.append((request.url.host, key))
        answer = self.answers.get(key or "", self.default)
        return answer(request)

    def client(self, **kwargs: Any) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self), **kwargs)

    def async_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        async def handler(request: httpx2.Request) -> httpx2.Response:
            return self(request)

        return httpx2.AsyncClient(transport=httpx2.MockTransport(handler), **kwargs)


def chat(client: Any) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )


def body_of(request: httpx2.Request) -> dict[str, Any]:
    return json.loads(request.content)  # type: ignore[no-any-return]
