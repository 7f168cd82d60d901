"""The Gemini API's wire format (generativelanguage.googleapis.com): routes, bodies, errors.

Everything provider-specific about Gemini lives here; the HTTP machinery is in ``_server``
and the per-minute arithmetic in ``_limits``.  Bodies follow the API reference and recorded
real traffic; the google-genai SDK's types forbid undeclared fields, so a body that parses
into them has no invented fields.

What the real API does and the fake copies:

- Routes under both ``/v1beta`` and ``/v1`` (google-genai 3.x defaults to ``v1``):
  ``models/{model}:generateContent``, ``:streamGenerateContent`` (``?alt=sse`` sends
  ``data: {...}\\r\\n\\r\\n`` events; without it, one chunked JSON array),
  ``:countTokens``, ``GET models`` and ``GET models/{model}``.
- The key comes in ``x-goog-api-key`` or ``?key=``.  No rate-limit headers, ever.
- A bad key is **400** ``INVALID_ARGUMENT`` with ``ErrorInfo.reason = "API_KEY_INVALID"``; no
  key is 403 ``PERMISSION_DENIED``; errors on a ``?alt=sse`` request are one JSON object
  served as ``text/event-stream``.
- A per-minute 429 carries ``QuotaFailure`` (which quota), ``Help`` and ``RetryInfo``
  (``retryDelay: "22s"``); a per-day 429 names a ``...PerDay...`` quota and still carries a
  short, useless ``retryDelay`` (daily quotas reset at midnight Pacific time).

Limits: a key's ``rpm``/``tpm`` are its project's per-minute request and *input*-token
quotas (Gemini meters input tokens only).  A daily request quota per project (scope) or
scope-less key is given with ``daily_requests`` or :meth:`GeminiEmulator.set_daily_limit`;
the day never ends by itself (call :meth:`GeminiEmulator.reset_daily`).

Key statuses: ``"invalid"`` is the 400 above, ``"forbidden"`` a 403 ``PERMISSION_DENIED``
(``CONSUMER_SUSPENDED``), ``"insufficient_quota"`` the 429 "Your prepayment credits are
depleted".  ``Fault.status(429)`` sends the detail-less capacity 429 seen in real traffic.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Unpack
from urllib.parse import parse_qs

from ._common import (
    JSON,
    Call,
    Completion,
    Emulator,
    EmulatorOptions,
    Headers,
    async_iter,
    estimate_tokens,
    json_body,
    scope_of,
    status_entry,
    texts,
    transport_fault,
)
from ._limits import Admission, FakeKey, Ledger
from ._server import Fault, FaultBook, Request, Response

__all__ = ["DEFAULT_MODELS", "GeminiEmulator", "api_key"]

DEFAULT_MODELS: Final[tuple[str, ...]] = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-flash-latest",
)

_PREFIXES: Final = ("/v1beta/", "/v1/")
_JSON_TYPE = "application/json; charset=UTF-8"
_SSE_TYPE = "text/event-stream"
_TYPE = "type.googleapis.com/google.rpc."
_SERVICE = "generativelanguage.googleapis.com"
_RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
_TEXT_FIELDS: Final = ("parts", "text", "contents")  # media parts are not counted

# (quotaMetric, quotaId) per limit, as the free tier names them in real 429 bodies.
_QUOTAS: Final[dict[str, tuple[str, str]]] = {
    "requests": (
        f"{_SERVICE}/generate_content_free_tier_requests",
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    ),
    "tokens": (
        f"{_SERVICE}/generate_content_free_tier_input_token_count",
        "GenerateContentInputTokensPerModelPerMinute-FreeTier",
    ),
    "daily": (
        f"{_SERVICE}/generate_content_free_tier_requests",
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    ),
}


@dataclass(frozen=True, slots=True)
class _Completion(Completion):
    """A generated answer keeps one ``responseId`` across all of its stream chunks."""

    response_id: str

    @property
    def finish_reason(self) -> str:
        return "MAX_TOKENS" if self.truncated else "STOP"


class GeminiEmulator(Emulator):
    """Answers Gemini API requests for the keys in a :class:`Ledger` (a ``_server.Handler``).

    ``daily_requests`` maps a scope name (or the secret of a scope-less key) to the number of
    requests it may make per day.
    """

    default_models = DEFAULT_MODELS

    def __init__(
        self,
        ledger: Ledger,
        faults: FaultBook,
        *,
        daily_requests: Mapping[str, int] | None = None,
        **options: Unpack[EmulatorOptions],
    ) -> None:
        super().__init__(ledger, faults, **options)
        self._lock = threading.Lock()
        self._daily_limits: dict[str, int] = {}
        self._daily_used: dict[str, int] = {}
        for project, limit in (daily_requests or {}).items():
            self.set_daily_limit(project, limit)

    # -- daily quotas ---------------------------------------------------------------------

    def set_daily_limit(self, project: str, limit: int | None) -> None:
        """Requests per day for a scope (or a scope-less key's secret); None removes it."""
        if limit is not None and limit < 0:
            raise ValueError(f"a daily limit must be non-negative, got {limit}")
        with self._lock:
            if limit is None:
                self._daily_limits.pop(project, None)
            else:
                self._daily_limits[project] = limit

    def reset_daily(self) -> None:
        """Start a new day: every daily count back to zero."""
        with self._lock:
            self._daily_used.clear()

    def _take_daily(self, key: FakeKey) -> int | None:
        """Count one request against the key's daily quota; its limit if already spent."""
        project = scope_of(key)
        with self._lock:
            limit = self._daily_limits.get(project)
            if limit is None:
                return None
            used = self._daily_used.get(project, 0)
            if used >= limit:
                return limit
            self._daily_used[project] = used + 1
            return None

    def _give_back_daily(self, key: FakeKey) -> None:
        project = scope_of(key)
        with self._lock:
            if self._daily_used.get(project, 0) > 0:
                self._daily_used[project] -= 1

    # -- the handler ----------------------------------------------------------------------

    def _secret(self, request: Request) -> str | None:
        return api_key(request)

    def _body(self, request: Request) -> JSON:
        return None  # parsed in _route, only for the methods that take a body

    def _streaming(self, request: Request, body: JSON) -> bool:
        return request.path.endswith(":streamGenerateContent")

    def _fault_response(
        self, fault: Fault, request: Request, body: JSON, streaming: bool
    ) -> Response:
        return _fault_response(fault, streaming, _query(request, "alt") == "sse")

    def _finish(
        self, request: Request, response: Response, *, streaming: bool, started: float
    ) -> None:
        sse = _query(request, "alt") == "sse"
        if streaming and sse and response.stream is None and response.status >= 400:
            _set_content_type(response, _SSE_TYPE)  # what the real API does
        response.headers[:0] = _google_headers(started)

    def _answer(self, request: Request, secret: str | None, body: JSON, started: float) -> Response:
        if secret is None:
            return _error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        key = self._ledger.lookup(secret)
        if key is None or key.status == "invalid":
            return _invalid_key()
        if key.status == "forbidden":
            return _suspended(key)
        if key.status == "insufficient_quota":
            return _error(
                429,
                "RESOURCE_EXHAUSTED",
                "Your prepayment credits are depleted. Please go to AI Studio at "
                "https://ai.studio/projects to manage your project and billing.",
            )
        call = self._route(request)
        if isinstance(call, Response):
            return call
        if call.free:
            return call.answer()
        daily = self._take_daily(key)
        if daily is not None:
            return _quota_exceeded("daily", daily, call.model, _seconds_to_next_minute())
        return self._charge(key, call, [])

    def _refuse(self, key: FakeKey, call: Call, admission: Admission, headers: Headers) -> Response:
        self._give_back_daily(key)  # a refused request does not count against the day
        return _rate_limited(admission, call.model)

    def _route(self, request: Request) -> Call | Response:
        method = request.method
        rest = _strip_prefix(request.path.rstrip("/"))
        if rest is None:
            return _not_found(f"Unknown path {request.path}")
        if method == "GET" and rest == "models":
            return Call("", 0, lambda: _json_response(self._model_list()), free=True)
        name, _, action = rest.partition(":")
        if not name.startswith("models/") or "/" in name.removeprefix("models/"):
            return _not_found(f"Unknown path {request.path}")
        model = name.removeprefix("models/")
        if method == "GET" and not action:
            if model not in self._models:
                return _unknown_model(model, "get")
            return Call(model, 0, lambda: _json_response(_model_object(model)), free=True)
        if method != "POST" or action not in (
            "generateContent",
            "streamGenerateContent",
            "countTokens",
        ):
            return _not_found(f"Unknown path {request.path}")
        body = json_body(request)
        if not isinstance(body, dict):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        contents = body.get("contents")
        if action == "countTokens":
            counted = _texts_of(contents) + _texts_of(body.get("generateContentRequest"))
            tokens = estimate_tokens(counted) if counted else 0
            answer = {"totalTokens": tokens}
            return Call(model, 0, lambda: _json_response(answer), free=True)
        if not isinstance(contents, list) or not contents:
            return _error(
                400,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified\n",
            )
        prompt = estimate_tokens(_texts_of(contents) + _texts_of(body.get("systemInstruction")))
        completion = _Completion(model, prompt, self._filler(), _max_output(body), _response_id())
        if action == "generateContent":
            return Call(model, prompt, lambda: _json_response(_generate_response(completion)))
        if _query(request, "alt") == "sse":
            return Call(model, prompt, lambda: _sse_response(_sse_chunks(completion)))
        return Call(model, prompt, lambda: _array_response(_stream_chunks(completion)))

    def _model_list(self) -> JSON:
        return {"models": [_model_object(model) for model in self._models]}


# -- request parsing ------------------------------------------------------------------------


def api_key(request: Request) -> str | None:
    """The key from ``x-goog-api-key``, else from a ``?key=`` query parameter."""
    value = request.header("x-goog-api-key")
    if value is not None and value.strip():
        return value.strip()
    key = _query(request, "key")
    return key or None


def _query(request: Request, name: str) -> str | None:
    values = parse_qs(request.query, keep_blank_values=True).get(name)
    return values[0] if values else None


def _strip_prefix(path: str) -> str | None:
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            return path.removeprefix(prefix)
    return None


def _texts_of(value: JSON) -> list[str]:
    return texts(value, _TEXT_FIELDS)


def _max_output(body: Mapping[str, JSON]) -> int | None:
    config = body.get("generationConfig")
    value = config.get("maxOutputTokens") if isinstance(config, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


# -- bodies ---------------------------------------------------------------------------------


def _usage(completion: _Completion, pieces: int | None) -> dict[str, JSON]:
    """``usageMetadata``; ``pieces=None`` is the first stream chunk (prompt only)."""
    usage: dict[str, JSON] = {"promptTokenCount": completion.prompt_tokens}
    if pieces is not None:
        usage["candidatesTokenCount"] = pieces
    usage["totalTokenCount"] = completion.prompt_tokens + (pieces or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": completion.prompt_tokens}]
    return usage


def _candidate(text: str, finish: str | None) -> dict[str, JSON]:
    candidate: dict[str, JSON] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return candidate


def _generate_response(completion: _Completion) -> dict[str, JSON]:
    pieces = completion.pieces
    return {
        "candidates": [_candidate("".join(pieces), completion.finish_reason)],
        "usageMetadata": _usage(completion, len(pieces)),
        "modelVersion": completion.model,
        "responseId": completion.response_id,
    }


def _chunks(completion: _Completion) -> Iterator[dict[str, JSON]]:
    """One chunk per piece; usage on each, candidate count from the last (as the API does)."""
    pieces = completion.pieces or [""]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        yield {
            "candidates": [_candidate(piece, completion.finish_reason if last else None)],
            "usageMetadata": _usage(completion, len(completion.pieces) if last else None),
            "modelVersion": completion.model,
            "responseId": completion.response_id,
        }


def _sse_chunks(completion: _Completion) -> Iterator[bytes]:
    for chunk in _chunks(completion):
        yield b"data: " + _compact(chunk) + b"\r\n\r\n"


def _stream_chunks(completion: _Completion) -> Iterator[bytes]:
    """Without ``alt=sse``: one JSON array, sent element by element."""
    for index, chunk in enumerate(_chunks(completion)):
        yield (b"[" if index == 0 else b",\r\n") + json.dumps(chunk, indent=2).encode()
    yield b"]"


def _model_object(model: str) -> dict[str, JSON]:
    words = model.removeprefix("gemini-").replace("-", " ").title()
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": f"Gemini {words}",
        "description": f"Simulated {model} served by the keyrouter fake provider.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


def _response_id() -> str:
    raw = uuid.uuid4().bytes
    return hashlib.sha256(raw).hexdigest()[:23]


# -- errors ---------------------------------------------------------------------------------


def _error(
    status: int, grpc_status: str, message: str, details: list[JSON] | None = None
) -> Response:
    error: dict[str, JSON] = {"code": status, "message": message, "status": grpc_status}
    if details:
        error["details"] = details
    body = json.dumps({"error": error}, indent=2).encode() + b"\n"
    return Response(status, [("content-type", _JSON_TYPE)], body)


def _invalid_key() -> Response:
    message = "API key not valid. Please pass a valid API key."
    details = [
        {
            "@type": _TYPE + "ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": _SERVICE},
        },
        {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
    ]
    return _error(400, "INVALID_ARGUMENT", message, details)


def _suspended(key: FakeKey) -> Response:
    number = _project_number(key)
    details = [
        {
            "@type": _TYPE + "ErrorInfo",
            "reason": "CONSUMER_SUSPENDED",
            "domain": "googleapis.com",
            "metadata": {"service": _SERVICE, "consumer": f"projects/{number}"},
        }
    ]
    message = f"Permission denied: Consumer 'api_key:{_masked(key.secret)}' has been suspended."
    return _error(403, "PERMISSION_DENIED", message, details)


def _not_found(message: str) -> Response:
    return _error(404, "NOT_FOUND", message)


def _unknown_model(model: str, method: str) -> Response:
    return _not_found(
        f"models/{model} is not found for API version v1beta, or is not supported for "
        f"{method}. Call ModelService.ListModels to see the list of available models and "
        "their supported methods."
    )


def _rate_limited(admission: Admission, model: str) -> Response:
    dimension = admission.dimension or "requests"
    wait = admission.retry_after
    return _quota_exceeded(dimension, admission.limit, model, wait)


def _quota_exceeded(quota: str, limit: int, model: str, retry_after: float | None) -> Response:
    metric, quota_id = _QUOTAS[quota]
    message = (
        "You exceeded your current quota, please check your plan and billing details. For "
        f"more information on this error, head to: {_RATE_LIMITS_URL}. To monitor your "
        "current usage, head to: https://ai.dev/rate-limit. \n"
        f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}"
    )
    details: list[JSON] = [
        {
            "@type": _TYPE + "QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": str(limit),
                }
            ],
        },
        {
            "@type": _TYPE + "Help",
            "links": [
                {"description": "Learn more about Gemini API quotas", "url": _RATE_LIMITS_URL}
            ],
        },
    ]
    if retry_after is not None:
        message += f"\nPlease retry in {retry_after:.6f}s."
        details.append({"@type": _TYPE + "RetryInfo", "retryDelay": f"{math.ceil(retry_after)}s"})
    return _error(429, "RESOURCE_EXHAUSTED", message, details)


def _seconds_to_next_minute() -> float:
    """The short retryDelay real per-day 429s carry anyway (waiting it does not help)."""
    return 60.0 - (time.time() % 60.0)


def _project_number(key: FakeKey) -> int:
    digest = hashlib.sha256(scope_of(key).encode()).digest()
    return 100_000_000_000 + int.from_bytes(digest[:5], "big") % 900_000_000_000


def _masked(secret: str) -> str:
    return secret[:8] + "..." if len(secret) > 8 else "..."


# -- faults ---------------------------------------------------------------------------------

_STATUS_FAULTS: Final[dict[int, tuple[str, str]]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_GFE_502 = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 502 (Server "
    "Error)!!1</title>\n  <p><b>502.</b> <ins>That's an error.</ins>\n  <p>The server "
    "encountered a temporary error and could not complete your request.<p>Please try again "
    "in 30 seconds.  <ins>That's all we know.</ins>\n"
)
_GARBAGE = b"<!DOCTYPE html><html><head><title>Google</title></head><body>ok</body></html>"


def _fault_response(fault: Fault, streaming: bool, sse: bool) -> Response:
    broken = transport_fault(fault, _JSON_TYPE, _GARBAGE)
    if broken is not None:
        return broken
    if fault.kind == "error_in_200":
        status, message = _STATUS_FAULTS[500]
        error = {"error": {"code": 500, "message": message, "status": status}}
        if streaming and sse:
            return _sse_response(iter([b"data: " + _compact(error) + b"\r\n\r\n"]))
        return Response(200, [("content-type", _JSON_TYPE)], json.dumps(error).encode())
    if fault.plain:
        return Response(
            fault.code, [("content-type", "text/html; charset=UTF-8")], _GFE_502.encode()
        )
    status, message = status_entry(_STATUS_FAULTS, fault.code)
    return _error(fault.code, status, message)


# -- framing --------------------------------------------------------------------------------


def _google_headers(started: float) -> list[tuple[str, str]]:
    elapsed = max(1, round((time.monotonic() - started) * 1000))
    return [
        ("vary", "Origin"),
        ("vary", "X-Origin"),
        ("vary", "Referer"),
        ("server", "scaffolding on HTTPServer2"),
        ("server-timing", f"gfet4t7; dur={elapsed}"),
        ("x-xss-protection", "0"),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-content-type-options", "nosniff"),
    ]


def _set_content_type(response: Response, value: str) -> None:
    response.headers = [(k, v) for k, v in response.headers if k != "content-type"]
    response.headers.append(("content-type", value))


def _compact(payload: JSON) -> bytes:
    return json.dumps(payload, separators=(",", ": ")).encode()


def _json_response(payload: JSON) -> Response:
    body = json.dumps(payload, indent=2).encode() + b"\n"
    return Response(200, [("content-type", _JSON_TYPE)], body)


def _sse_response(events: Iterator[bytes]) -> Response:
    headers = [("content-type", _SSE_TYPE), ("content-disposition", "attachment")]
    return Response(200, headers, stream=async_iter(events))


def _array_response(chunks: Iterator[bytes]) -> Response:
    return Response(200, [("content-type", _JSON_TYPE)], stream=async_iter(chunks))
