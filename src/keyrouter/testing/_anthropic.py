"""Anthropic's Messages API wire format: routes, bodies, SSE events, error bodies and headers.

Everything provider-specific about Anthropic lives here; the HTTP machinery is in ``_server``
and the rate-limit arithmetic in ``_limits``.  Bodies follow the API reference and recorded
real traffic, restricted to the fields the official SDK's types declare.

Limits: the shared :class:`~keyrouter.testing._limits.Ledger` has one request bucket and one
token bucket per scope.  A request is charged its prompt plus the output it actually
generates (Anthropic charges ``max_tokens`` up front and refunds the unused part when the
answer ends; the fake charges the settled amount at once).  The real API meters input and
output tokens in separate buckets; the fake has one, and reports it under all three token
header families (``tokens``, ``input-tokens``, ``output-tokens``), so the headers never
promise more than the bucket holds.

Key statuses: ``"invalid"`` is a 401 ``authentication_error``, ``"forbidden"`` a 403
``permission_error``, and ``"insufficient_quota"`` the monthly spend-limit 429
(``rate_limit_error`` with ``details.error_code = "enforced_spend_limit_reached"``, no
``retry-after``), which the SDK raises as ``EnforcedSpendLimitReachedError``.  The 402
``billing_error`` and the 529 ``overloaded_error`` come from ``Fault.status(402)`` /
``Fault.status(529)``.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from ._common import (
    JSON,
    Call,
    Completion,
    Emulator,
    Headers,
    async_iter,
    bearer,
    estimate_tokens,
    limit_headers,
    prepend,
    scope_of,
    status_entry,
    texts,
    transport_fault,
)
from ._limits import Admission, FakeKey, LimitState
from ._server import Fault, Request, Response

__all__ = ["DEFAULT_MODELS", "AnthropicEmulator", "rfc3339"]

DEFAULT_MODELS: Final[tuple[str, ...]] = (
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5-20251101",
    "claude-haiku-4-5-20251001",
    "claude-haiku-4-5",
)

_JSON_TYPE = "application/json"
_SSE_TYPE = "text/event-stream; charset=utf-8"
_MODEL_CREATED = "2025-05-14T00:00:00Z"
_TEXT_FIELDS: Final = ("content", "text")  # string contents, text blocks, tool results
_RATE_LIMITS_URL = "https://docs.claude.com/en/api/rate-limits"
_HEADER_FAMILIES: Final = ("tokens", "input-tokens", "output-tokens")
_ORG_NAMESPACE = uuid.UUID("6f1c1d0e-2b53-4f5e-9a43-6b3b8f6c1a10")


def rfc3339(seconds_from_now: float) -> str:
    """A reset time as Anthropic sends it: UTC, whole seconds (rounded up), ``Z`` suffix."""
    moment = math.ceil(time.time() + max(0.0, seconds_from_now))
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Completion(Completion):
    """A Messages answer; ``max_tokens`` is required, so ``limit`` is always set."""

    @property
    def stop_reason(self) -> str:
        return "max_tokens" if self.truncated else "end_turn"

    @property
    def output_tokens(self) -> int:
        return len(self.pieces)


class AnthropicEmulator(Emulator):
    """Anthropic's messages, token counting and models, for the ledger's keys.

    The key comes in ``x-api-key`` or as a Bearer token; answers carry ``anthropic-ratelimit-*``
    headers and, like every real answer, a ``request-id``.
    """

    default_models = DEFAULT_MODELS

    def _secret(self, request: Request) -> str | None:
        return api_key(request)

    def _fault_response(
        self, fault: Fault, request: Request, body: JSON, streaming: bool
    ) -> Response:
        return _fault_response(fault, streaming)

    def _finish(
        self, request: Request, response: Response, *, streaming: bool, started: float
    ) -> None:
        if not any(name == "request-id" for name, _ in response.headers):
            response.headers.insert(0, ("request-id", _request_id()))  # on every response

    # -- auth, route, admission ---------------------------------------------------------

    def _answer(self, request: Request, secret: str | None, body: JSON, started: float) -> Response:
        if secret is None:
            return _error(401, "authentication_error", "x-api-key header is required")
        key = self._ledger.lookup(secret)
        if key is None or key.status == "invalid":
            return _error(401, "authentication_error", "invalid x-api-key")
        if key.status == "forbidden":
            return _error(
                403,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            )
        common = [("anthropic-organization-id", _organization(key))]
        if key.status == "insufficient_quota":
            return _error(
                429,
                "rate_limit_error",
                "Your organization has reached the monthly usage limit of its API tier. "
                "Access resumes at the start of next month, or sooner if you move to a "
                "higher tier.",
                error_code="enforced_spend_limit_reached",
                extra=common + _limit_headers(self._ledger.limits(secret)),
                retry=False,
            )
        call = self._route(request, body)
        if isinstance(call, Response):
            return prepend(call, common)
        if call.free:
            return prepend(call.answer(), common)
        return self._charge(key, call, common)

    def _limit_headers(self, state: LimitState) -> Headers:
        return _limit_headers(state)

    def _refuse(self, key: FakeKey, call: Call, admission: Admission, headers: Headers) -> Response:
        return _rate_limited(admission, _organization(key), headers)

    def _route(self, request: Request, body: JSON) -> Call | Response:
        method, path = request.method, request.path.rstrip("/")
        if method == "POST" and path in ("/v1/messages", "/v1/messages/count_tokens"):
            if not isinstance(body, dict):
                return _error(400, "invalid_request_error", "Request body is not valid JSON.")
            if path == "/v1/messages":
                return self._messages(body)
            return self._count_tokens(body)
        if method == "GET" and path == "/v1/models":
            return Call("", 0, lambda: _json_response(self._model_page()), free=True)
        if method == "GET" and path.startswith("/v1/models/"):
            model = path.removeprefix("/v1/models/")
            if model not in self._models:
                return _error(404, "not_found_error", f"model: {model}")
            return Call(model, 0, lambda: _json_response(_model_info(model)), free=True)
        return _error(404, "not_found_error", "Not Found")

    # -- messages -------------------------------------------------------------------------

    def _messages(self, body: dict[str, JSON]) -> Call | Response:
        invalid = _validate(body, need_max_tokens=True)
        if invalid is not None:
            return invalid
        model: str = body["model"]
        prompt = estimate_tokens(_prompt_texts(body))
        completion = _Completion(model, prompt, self._filler(), body["max_tokens"])
        charge = prompt + completion.output_tokens
        if body.get("stream") is True:
            return Call(model, charge, lambda: _sse_response(_message_events(completion)))
        return Call(model, charge, lambda: _json_response(_message(completion)))

    def _count_tokens(self, body: dict[str, JSON]) -> Call | Response:
        invalid = _validate(body, need_max_tokens=False)
        if invalid is not None:
            return invalid
        tokens = estimate_tokens(_prompt_texts(body))
        return Call(body["model"], 0, lambda: _json_response({"input_tokens": tokens}), True)

    def _model_page(self) -> JSON:
        data = [_model_info(model) for model in self._models]
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }


# -- request parsing ------------------------------------------------------------------------


def api_key(request: Request) -> str | None:
    """The key from ``x-api-key`` (SDKs up to 1.17) or ``Authorization: Bearer`` (2.x)."""
    value = request.header("x-api-key")
    if value is not None and value.strip():
        return value.strip()
    return bearer(request)


def _validate(body: dict[str, JSON], *, need_max_tokens: bool) -> Response | None:
    """The 400 Anthropic sends for a missing or malformed required field, if any."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error(400, "invalid_request_error", "model: Field required")
    if need_max_tokens:
        limit = body.get("max_tokens")
        if limit is None:
            return _error(400, "invalid_request_error", "max_tokens: Field required")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return _error(
                400, "invalid_request_error", "max_tokens: Input should be greater than 0"
            )
    messages = body.get("messages")
    if messages is None:
        return _error(400, "invalid_request_error", "messages: Field required")
    if not isinstance(messages, list) or not messages:
        return _error(400, "invalid_request_error", "messages: at least one message is required")
    return None


def _prompt_texts(body: dict[str, JSON]) -> list[str]:
    return texts(body.get("system"), _TEXT_FIELDS) + texts(body.get("messages"), _TEXT_FIELDS)


# -- bodies ---------------------------------------------------------------------------------


def _usage(completion: _Completion, output_tokens: int) -> dict[str, JSON]:
    return {
        "input_tokens": completion.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message(completion: _Completion, message_id: str | None = None) -> dict[str, JSON]:
    return {
        "model": completion.model,
        "id": message_id or _message_id(),
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": completion.text}],
        "stop_reason": completion.stop_reason,
        "stop_sequence": None,
        "usage": _usage(completion, completion.output_tokens),
    }


def _message_events(completion: _Completion) -> Iterator[bytes]:
    """The event sequence the API streams: start, one text block, delta with usage, stop."""
    start = _message(completion)
    start.update(content=[], stop_reason=None, usage=_usage(completion, 1))
    yield _event("message_start", {"type": "message_start", "message": start})
    block = {"type": "text", "text": ""}
    yield _event(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    yield _event("ping", {"type": "ping"})
    for piece in completion.pieces:
        delta = {"type": "text_delta", "text": piece}
        yield _event(
            "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        )
    yield _event("content_block_stop", {"type": "content_block_stop", "index": 0})
    usage = {
        "input_tokens": completion.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": completion.output_tokens,
    }
    stop: dict[str, JSON] = {"stop_reason": completion.stop_reason, "stop_sequence": None}
    yield _event("message_delta", {"type": "message_delta", "delta": stop, "usage": usage})
    yield _event("message_stop", {"type": "message_stop"})


def _model_info(model: str) -> dict[str, JSON]:
    family = model.split("-")[1] if model.count("-") >= 1 else model
    return {
        "type": "model",
        "id": model,
        "display_name": f"Claude {family.capitalize()}",
        "created_at": _MODEL_CREATED,
        "lifecycle": "active",
        "max_input_tokens": 200_000,
        "max_tokens": 64_000,
    }


# -- errors and headers ---------------------------------------------------------------------


def _error_body(kind: str, message: str, error_code: str | None = None) -> dict[str, JSON]:
    error: dict[str, JSON] = {"type": kind, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": _request_id()}


def _error(
    status: int,
    kind: str,
    message: str,
    *,
    error_code: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    retry: bool | None = None,
) -> Response:
    """An error as the API sends it; ``x-should-retry`` defaults to what the API says."""
    body = _error_body(kind, message, error_code)
    should_retry = retry if retry is not None else status in (408, 409, 429) or status >= 529
    headers = [
        *(extra or []),
        ("request-id", body["request_id"]),
        ("x-should-retry", "true" if should_retry else "false"),
        ("content-type", _JSON_TYPE),
    ]
    return Response(status, headers, json.dumps(body, separators=(",", ":")).encode())


def _rate_limited(
    admission: Admission, organization: str, headers: list[tuple[str, str]]
) -> Response:
    unit = "requests per minute" if admission.dimension == "requests" else "tokens per minute"
    message = (
        f"This request would exceed the rate limit for your organization ({organization}) of "
        f"{admission.limit:,} {unit}. For details, refer to: {_RATE_LIMITS_URL}. You can see "
        "the response headers for current usage. Please reduce the prompt length or the "
        "maximum tokens requested, or try again later. You may also contact sales at "
        "https://www.anthropic.com/contact-sales to discuss your options for a rate limit "
        "increase."
    )
    retry: list[tuple[str, str]] = []
    if admission.retry_after is not None:
        retry = [("retry-after", str(max(1, math.ceil(admission.retry_after))))]
    return _error(429, "rate_limit_error", message, extra=retry + headers)


def _limit_headers(state: LimitState) -> Headers:
    """One token bucket, reported under all three token families (see the module docstring)."""
    return limit_headers(state, _HEADER_FAMILIES, _header, rfc3339)


def _header(name: str, field: str) -> str:
    return f"anthropic-ratelimit-{name}-{field}"


def _organization(key: FakeKey) -> str:
    """A stable organization UUID per scope (per key when it has none)."""
    return str(uuid.uuid5(_ORG_NAMESPACE, scope_of(key)))


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58(length: int) -> str:
    raw = uuid.uuid4().bytes + uuid.uuid4().bytes
    return "".join(_BASE58[b % len(_BASE58)] for b in raw[:length])


def _request_id() -> str:
    return "req_011C" + _base58(20)


def _message_id() -> str:
    return "msg_01" + _base58(22)


# -- faults ---------------------------------------------------------------------------------

_STATUS_FAULTS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: (
        "billing_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits.",
    ),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not Found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_CLOUDFLARE_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_GARBAGE = b"<!DOCTYPE html><html><head><title>api.anthropic.com</title></head></html>"


def _fault_response(fault: Fault, streaming: bool) -> Response:
    broken = transport_fault(fault, _JSON_TYPE, _GARBAGE)
    if broken is not None:
        return broken
    if fault.kind == "error_in_200":
        body = _error_body("overloaded_error", "Overloaded")
        if streaming:
            return _sse_response(iter([_event("error", body)]))
        return Response(200, [("content-type", _JSON_TYPE)], json.dumps(body).encode())
    if fault.plain:
        return Response(fault.code, [("content-type", "text/html")], _CLOUDFLARE_502.encode())
    kind, message = status_entry(_STATUS_FAULTS, fault.code)
    extra = [("retry-after", "1")] if fault.code == 429 else []
    return _error(fault.code, kind, message, extra=extra)


# -- framing --------------------------------------------------------------------------------


def _json_response(payload: JSON) -> Response:
    return Response(200, [("content-type", _JSON_TYPE)], json.dumps(payload).encode())


def _event(name: str, payload: JSON) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode()


def _sse_response(events: Iterator[bytes]) -> Response:
    headers = [("content-type", _SSE_TYPE), ("cache-control", "no-cache")]
    return Response(200, headers, stream=async_iter(events))
