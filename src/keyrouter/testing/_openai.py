"""OpenAI's wire format: routes, bodies, SSE events, error bodies and headers.

Everything provider-specific about OpenAI lives here; the HTTP machinery is in
``_server`` and the rate-limit arithmetic in ``_limits``.  Bodies follow the
API reference and recorded real traffic, restricted to the fields the
official SDK's types declare, so every body parses into those types as is.

Token counting is a deliberate, documented approximation: a prompt costs
``max(1, ceil(characters / 4))`` tokens, and a completion is a list of
"pieces" (words, or 4-character slices of JSON) that count one token each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
    texts,
    transport_fault,
)
from ._limits import Admission, FakeKey, LimitState
from ._server import Fault, Request, Response

__all__ = [
    "DEFAULT_MODELS",
    "OpenAIEmulator",
    "estimate_tokens",
    "go_duration",
    "schema_instance",
]

DEFAULT_MODELS: Final[tuple[str, ...]] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

_API_VERSION = "2020-10-01"
_MODEL_CREATED = 1_715_367_049  # a fixed, plausible creation time for listed models
_JSON_TYPE = "application/json"
_ERROR_TYPE = "application/json; charset=utf-8"
_SSE_TYPE = "text/event-stream; charset=utf-8"
_TEXT_FIELDS: Final = ("content", "text", "output")  # where messages and input items hold text
_JSON_OBJECT_SCHEMA: Final[Mapping[str, JSON]] = {
    "type": "object",
    "properties": {"result": {"type": "string", "const": "This is a simulated answer."}},
}
_RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"


# -- public helpers -----------------------------------------------------------------


def go_duration(seconds: float) -> str:
    """Format a duration the way OpenAI's ``x-ratelimit-reset-*`` headers do (Go style).

    Rounded to milliseconds: ``0s``, ``12ms``, ``1s``, ``20.5s``, ``6m0s``, ``1h2m3.5s``.
    """
    millis = max(0, round(seconds * 1000))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    sec = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{minutes}m{sec}s"
    return f"{sec}s"


def schema_instance(schema: Mapping[str, JSON]) -> JSON:
    """A JSON value that validates against ``schema`` (the subset structured outputs use).

    Handles objects, arrays, strings (enum, const, common formats, length bounds),
    numbers and integers (bounds), booleans, null, ``anyOf``/``oneOf``/``allOf``,
    type lists, and ``$ref`` into ``$defs``/``definitions``, with recursion cut
    off by preferring ``null`` or empty arrays once nesting gets deep.
    """
    return _SchemaWriter(schema).value(schema, depth=0)


# -- the handler --------------------------------------------------------------------


class OpenAIEmulator(Emulator):
    """OpenAI's chat completions, responses, embeddings and models, for the ledger's keys.

    The key is a Bearer token; every answer carries ``x-ratelimit-*`` headers.
    """

    default_models = DEFAULT_MODELS

    def _secret(self, request: Request) -> str | None:
        return bearer(request)

    def _fault_response(
        self, fault: Fault, request: Request, body: JSON, streaming: bool
    ) -> Response:
        return _fault_response(fault, request.path, streaming, _model_of(body))

    # -- the normal path: auth, route, validation, admission, answer --------------

    def _answer(self, request: Request, secret: str | None, body: JSON, started: float) -> Response:
        if secret is None:
            return _error(401, _MISSING_KEY, "invalid_request_error", extra=_auth_headers())
        key = self._ledger.lookup(secret)
        if key is None or key.status == "invalid":
            return _error(
                401,
                _incorrect_key(secret),
                "invalid_request_error",
                code="invalid_api_key",
                extra=_auth_headers(),
            )
        if key.status == "forbidden":
            return _error(
                403,
                "Country, region, or territory not supported",
                "request_forbidden",
                code="unsupported_country_region_territory",
                extra=_base_headers(),
            )
        common = self._key_headers(key, started)
        if key.status == "insufficient_quota":
            return _error(
                429,
                _QUOTA,
                "insufficient_quota",
                code="insufficient_quota",
                extra=common + _limit_headers(self._ledger.limits(secret)),
            )
        call = self._route(request, body)
        if isinstance(call, Response):
            return prepend(call, common)
        if call.free:
            return prepend(call.answer(), common + _limit_headers(self._ledger.limits(key.secret)))
        return self._charge(key, call, common)

    def _limit_headers(self, state: LimitState) -> Headers:
        return _limit_headers(state)

    def _refuse(self, key: FakeKey, call: Call, admission: Admission, headers: Headers) -> Response:
        return _rate_limited(admission, call.model, _organization(key), headers)

    def _key_headers(self, key: FakeKey, started: float) -> list[tuple[str, str]]:
        elapsed_ms = max(1, round((time.monotonic() - started) * 1000))
        return [
            ("openai-organization", _organization(key)),
            ("openai-processing-ms", str(elapsed_ms)),
            ("openai-version", _API_VERSION),
            ("x-request-id", _request_id()),
            ("access-control-expose-headers", "X-Request-ID"),
        ]

    def _route(self, request: Request, body: JSON) -> Call | Response:
        method, path = request.method, request.path.rstrip("/")
        post = self._post_route(path) if method == "POST" else None
        if post is not None:
            if not isinstance(body, dict):
                return _error(400, _BAD_JSON, "invalid_request_error")
            return post(body)
        if method == "GET" and path == "/v1/models":
            return Call("", 0, lambda: _json_response(200, self._model_list()), free=True)
        if method == "GET" and path.startswith("/v1/models/"):
            return self._model(path.removeprefix("/v1/models/"))
        return _error(404, f"Invalid URL ({method} {request.path})", "invalid_request_error")

    # -- models -------------------------------------------------------------------

    def _model_list(self) -> JSON:
        return {"object": "list", "data": [_model_object(model) for model in self._models]}

    def _model(self, model: str) -> Call | Response:
        if model not in self._models:
            return _model_not_found(model)
        return Call(model, 0, lambda: _json_response(200, _model_object(model)), free=True)

    # -- chat completions ---------------------------------------------------------

    def _chat(self, body: dict[str, JSON]) -> Call | Response:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter", "invalid_request_error")
        messages = body.get("messages")
        if messages is None:
            return _missing("messages")
        if not isinstance(messages, list) or not messages:
            return _error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum "
                "length 1, but got an empty array instead.",
                "invalid_request_error",
                param="messages",
                code="empty_array",
            )
        choices = _int_param(body, "n", 1)
        prompt = estimate_tokens(texts(messages, _TEXT_FIELDS))
        pieces = self._pieces(_chat_schema(body))
        limit = _first_int(body, "max_completion_tokens", "max_tokens")
        charge = prompt + (limit if limit is not None else len(pieces)) * choices
        completion = _Completion(model, prompt, pieces, limit, choices)
        if body.get("stream") is True:
            usage = _include_usage(body)
            return Call(model, charge, lambda: _sse_response(_chat_events(completion, usage)))
        return Call(model, charge, lambda: _json_response(200, _chat_completion(completion)))

    # -- responses ----------------------------------------------------------------

    def _responses(self, body: dict[str, JSON]) -> Call | Response:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _missing("model")
        prompt_texts = texts(body.get("input"), _TEXT_FIELDS)
        if isinstance(body.get("instructions"), str):
            prompt_texts.append(body["instructions"])
        prompt = estimate_tokens(prompt_texts)
        pieces = self._pieces(_responses_schema(body))
        limit = _first_int(body, "max_output_tokens")
        charge = prompt + (limit if limit is not None else len(pieces))
        completion = _Completion(model, prompt, pieces, limit, 1)
        if body.get("stream") is True:
            return Call(model, charge, lambda: _sse_response(_response_events(completion, body)))
        ids = _ResponseIds.new()
        return Call(
            model, charge, lambda: _json_response(200, _response_object(completion, body, ids))
        )

    # -- embeddings ---------------------------------------------------------------

    def _embeddings(self, body: dict[str, JSON]) -> Call | Response:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _missing("model")
        inputs = _embedding_inputs(body.get("input"))
        if inputs is None:
            return _missing("input")
        tokens = sum(_embedding_tokens(item) for item in inputs)
        dimensions = _int_param(body, "dimensions", 3072 if model.endswith("-large") else 1536)
        as_base64 = body.get("encoding_format") == "base64"
        return Call(
            model,
            tokens,
            lambda: _json_response(
                200, _embedding_list(model, inputs, dimensions, tokens, as_base64=as_base64)
            ),
        )

    def _post_route(self, path: str) -> Callable[[dict[str, JSON]], Call | Response] | None:
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/responses": self._responses,
            "/v1/embeddings": self._embeddings,
        }
        return routes.get(path)

    def _pieces(self, schema: Mapping[str, JSON] | None) -> list[str]:
        """The completion, as the token-sized pieces it is streamed in."""
        if schema is None:
            return self._filler()
        text = json.dumps(schema_instance(schema), separators=(",", ":"))
        return [text[i : i + 4] for i in range(0, len(text), 4)]


# -- completions shared by chat and responses ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Completion(Completion):
    """A chat answer may be asked for ``choices`` times over (``n``); each is the same."""

    choices: int

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) * self.choices


def _chat_schema(body: Mapping[str, JSON]) -> Mapping[str, JSON] | None:
    """The schema the answer must follow (``None``: plain text)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return _JSON_OBJECT_SCHEMA
    spec = fmt.get("json_schema")
    if fmt.get("type") == "json_schema" and isinstance(spec, dict):
        schema = spec.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _responses_schema(body: Mapping[str, JSON]) -> Mapping[str, JSON] | None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return _JSON_OBJECT_SCHEMA
    if fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _chat_usage(completion: _Completion) -> dict[str, JSON]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_completion(completion: _Completion) -> dict[str, JSON]:
    finish = "length" if completion.truncated else "stop"
    message: dict[str, JSON] = {
        "role": "assistant",
        "content": completion.text,
        "refusal": None,
        "annotations": [],
    }
    return {
        "id": _id("chatcmpl-", 29),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
            for i in range(completion.choices)
        ],
        "usage": _chat_usage(completion),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def _chat_events(completion: _Completion, include_usage: bool) -> Iterator[bytes]:
    head = {
        "id": _id("chatcmpl-", 29),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": completion.model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }

    def chunk(choices: list[JSON], **extra: JSON) -> bytes:
        tail = {"usage": None} if include_usage else {}
        return _data({**head, "choices": choices, **tail, **extra})

    def choice(index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    finish = "length" if completion.truncated else "stop"
    for index in range(completion.choices):
        yield chunk([choice(index, {"role": "assistant", "content": "", "refusal": None})])
        for piece in completion.pieces:
            yield chunk([choice(index, {"content": piece})])
        yield chunk([choice(index, {}, finish)])
    if include_usage:
        yield chunk([], usage=_chat_usage(completion))
    yield b"data: [DONE]\n\n"


def _include_usage(body: Mapping[str, JSON]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


# -- the Responses API ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ResponseIds:
    """The ids and timestamp one response keeps across all of its stream events."""

    response: str
    message: str
    created: int

    @classmethod
    def new(cls) -> _ResponseIds:
        return cls(_id("resp_", 50, hexa=True), _id("msg_", 50, hexa=True), int(time.time()))


def _response_object(
    completion: _Completion, body: Mapping[str, JSON], ids: _ResponseIds, *, done: bool = True
) -> dict[str, JSON]:
    finished = "incomplete" if completion.truncated else "completed"
    return {
        "id": ids.response,
        "object": "response",
        "created_at": ids.created,
        "status": finished if done else "in_progress",
        "background": False,
        "completed_at": int(time.time()) if done else None,
        "error": None,
        "incomplete_details": (
            {"reason": "max_output_tokens"} if done and completion.truncated else None
        ),
        "instructions": _optional_str(body, "instructions"),
        "max_output_tokens": completion.limit,
        "max_tool_calls": None,
        "model": completion.model,
        "moderation": None,
        "output": [_output_message(completion, ids.message)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": _optional_str(body, "previous_response_id"),
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default" if done else "auto",
        "temperature": _number(body.get("temperature"), 1.0),
        "text": {"format": _text_format(body), "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": _number(body.get("top_p"), 1.0),
        "truncation": "disabled",
        "usage": _response_usage(completion) if done else None,
        "user": None,
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
    }


def _output_message(completion: _Completion, mid: str, *, done: bool = True) -> dict[str, JSON]:
    finished = "incomplete" if completion.truncated else "completed"
    return {
        "id": mid,
        "type": "message",
        "status": finished if done else "in_progress",
        "content": [_output_text(completion.text)] if done else [],
        "phase": "final_answer",
        "role": "assistant",
    }


def _output_text(text: str) -> dict[str, JSON]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _response_usage(completion: _Completion) -> dict[str, JSON]:
    return {
        "input_tokens": completion.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _text_format(body: Mapping[str, JSON]) -> JSON:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        echoed = {
            k: fmt[k] for k in ("type", "name", "schema", "description", "strict") if k in fmt
        }
        echoed.setdefault("strict", False)
        return echoed
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return {"type": "text"}


def _response_events(completion: _Completion, body: Mapping[str, JSON]) -> Iterator[bytes]:
    ids = _ResponseIds.new()
    pending = _response_object(completion, body, ids, done=False)
    part = {"item_id": ids.message, "output_index": 0, "content_index": 0}
    text = completion.text
    final = "response.incomplete" if completion.truncated else "response.completed"
    events: list[tuple[str, dict[str, JSON]]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
        (
            "response.output_item.added",
            {"item": _output_message(completion, ids.message, done=False), "output_index": 0},
        ),
        ("response.content_part.added", {**part, "part": _output_text("")}),
        *[
            ("response.output_text.delta", {**part, "delta": piece, "logprobs": []})
            for piece in completion.pieces
        ],
        ("response.output_text.done", {**part, "text": text, "logprobs": []}),
        ("response.content_part.done", {**part, "part": _output_text(text)}),
        (
            "response.output_item.done",
            {"item": _output_message(completion, ids.message), "output_index": 0},
        ),
        (final, {"response": _response_object(completion, body, ids)}),
    ]
    for sequence, (name, payload) in enumerate(events):
        yield _event(name, {"type": name, **payload, "sequence_number": sequence})


# -- embeddings -------------------------------------------------------------------------


def _embedding_inputs(value: JSON) -> list[JSON] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, int) for item in value):
            return [value]  # one pre-tokenized input
        return list(value)
    return None


def _embedding_tokens(item: JSON) -> int:
    if isinstance(item, list):
        return max(1, len(item))
    return estimate_tokens([str(item)])


def _embedding_list(
    model: str, inputs: list[JSON], dimensions: int, tokens: int, *, as_base64: bool
) -> dict[str, JSON]:
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(json.dumps(item), dimensions)
        encoded: JSON = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _vector(seed: str, dimensions: int) -> list[float]:
    """A deterministic unit vector per input, exact in float32 so both encodings agree."""
    digest = hashlib.sha256(seed.encode()).digest()
    raw = [((digest[i % 32] ^ (i * 37 % 251)) - 127.5) / 128.0 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _model_object(model: str) -> dict[str, JSON]:
    owner = "system" if model.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o")) else "openai"
    return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": owner}


# -- request parsing ----------------------------------------------------------------------


def _model_of(body: JSON) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else "gpt-4o-mini"


def _int_param(body: Mapping[str, JSON], name: str, default: int) -> int:
    value = body.get(name)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


def _first_int(body: Mapping[str, JSON], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _optional_str(body: Mapping[str, JSON], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def _number(value: JSON, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


# -- responses, errors and headers -------------------------------------------------------------

_FINGERPRINT = "fp_" + hashlib.sha256(b"keyrouter-fake").hexdigest()[:10]
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
_ENVOY_503 = (
    "upstream connect error or disconnect/reset before headers. "
    "reset reason: connection termination"
)
_CLOUDFLARE_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_GARBAGE = b"<!DOCTYPE html><html><head><title>api.openai.com</title></head><body>ok</body></html>"


def _incorrect_key(secret: str) -> str:
    """OpenAI's message for a wrong key shows only its first 8 and last 4 characters."""
    shown = f"{secret[:8]}****{secret[-4:]}" if len(secret) > 12 else f"{secret[:3]}****"
    return (
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


def _server_error_message(request_id: str) -> str:
    return (
        "The server had an error processing your request. Sorry about that! You can retry your "
        "request, or contact us through our help center at help.openai.com if you keep seeing "
        f"this error. (Please include the request ID {request_id} in your email.)"
    )


def _error_body(
    message: str, kind: str | None, *, param: str | None = None, code: str | int | None = None
) -> dict[str, JSON]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error(
    status: int,
    message: str,
    kind: str | None,
    *,
    param: str | None = None,
    code: str | int | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    body = _dumps(_error_body(message, kind, param=param, code=code))
    # Recorded 5xx JSON errors say plain application/json; auth and 429 errors add a charset.
    content_type = _JSON_TYPE if status >= 500 else _ERROR_TYPE
    return Response(status, [*(extra or []), ("content-type", content_type)], body)


def _missing(param: str) -> Response:
    return _error(
        400,
        f"Missing required parameter: '{param}'.",
        "invalid_request_error",
        param=param,
        code="missing_required_parameter",
    )


def _model_not_found(model: str) -> Response:
    return _error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        code="model_not_found",
    )


def _rate_limited(
    admission: Admission, model: str, organization: str, headers: list[tuple[str, str]]
) -> Response:
    unit = "requests per min (RPM)" if admission.dimension == "requests" else "tokens per min (TPM)"
    where = f"for {model or 'this model'} in organization {organization} on {unit}"
    if admission.retry_after is None:
        message = (
            f"Request too large {where}: Limit {admission.limit}, Requested {admission.requested}. "
            "The input or output tokens must be reduced in order to run successfully. "
            f"Visit {_RATE_LIMITS_URL} to learn more."
        )
        return _error(429, message, admission.dimension, code="rate_limit_exceeded", extra=headers)
    wait_ms = max(1, math.ceil(admission.retry_after * 1000))
    message = (
        f"Rate limit reached {where}: Limit {admission.limit}, Used {admission.used}, "
        f"Requested {admission.requested}. Please try again in {go_duration(wait_ms / 1000)}. "
        f"Visit {_RATE_LIMITS_URL} to learn more."
    )
    retry = [("retry-after", str(math.ceil(wait_ms / 1000))), ("retry-after-ms", str(wait_ms))]
    return _error(
        429, message, admission.dimension, code="rate_limit_exceeded", extra=retry + headers
    )


def _fault_response(fault: Fault, path: str, streaming: bool, model: str) -> Response:
    broken = transport_fault(fault, _JSON_TYPE, _GARBAGE)
    if broken is not None:
        return broken
    if fault.kind == "error_in_200":
        return _error_in_200(path, streaming)
    return _status_fault(fault.code, model, plain=fault.plain)


def _error_in_200(path: str, streaming: bool) -> Response:
    """A 200 that carries an error: the JSON body, or the stream's first event."""
    request_id = _request_id()
    message = _server_error_message(request_id)
    error = _error_body(message, "server_error")
    headers = [("x-request-id", request_id), *_base_headers()]
    if not streaming:
        return Response(200, [*headers, ("content-type", _JSON_TYPE)], _dumps(error))
    if path.rstrip("/") == "/v1/responses":
        event = {"type": "error", "code": "server_error", "message": message, "param": None}
        return _sse_response(iter([_event("error", {**event, "sequence_number": 0})]), headers)
    return _sse_response(iter([_data(error)]), headers)


def _status_fault(code: int, model: str, *, plain: bool) -> Response:
    if plain:
        if code == 502:
            return Response(502, [("content-type", "text/html")], _CLOUDFLARE_502.encode())
        text = _ENVOY_503 if code == 503 else f"{code} upstream error"
        return Response(code, [("content-type", "text/plain")], text.encode())
    request_id = _request_id()
    headers = [("x-request-id", request_id), *_base_headers()]
    args: dict[int, tuple[str, str | None, str | int | None]] = {
        400: ("Invalid request.", "invalid_request_error", None),
        401: (_incorrect_key("sk-unknown-key"), "invalid_request_error", "invalid_api_key"),
        403: (
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        404: (
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        429: (
            f"Rate limit reached for {model}. Please try again later.",
            "requests",
            "rate_limit_exceeded",
        ),
        500: (_server_error_message(request_id), "server_error", None),
        502: ("Bad gateway.", "cf_bad_gateway", 502),
        503: (
            "Our servers are currently overloaded. Please try again later.",
            "service_unavailable_error",
            "server_is_overloaded",
        ),
        504: ("Gateway timeout.", "cf_gateway_timeout", 504),
    }
    default = ("The server had an error while processing your request.", "server_error", None)
    message, kind, error_code = args.get(
        code, default if code >= 500 else ("Invalid request.", "invalid_request_error", None)
    )
    return _error(code, message, kind, code=error_code, extra=headers)


def _json_response(status: int, payload: JSON) -> Response:
    return Response(status, [("content-type", _JSON_TYPE)], _dumps(payload))


def _sse_response(
    events: Iterator[bytes], headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(200, [*(headers or []), ("content-type", _SSE_TYPE)], stream=async_iter(events))


def _dumps(payload: JSON) -> bytes:
    return json.dumps(payload, indent=2).encode()


def _data(payload: JSON) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _event(name: str, payload: JSON) -> bytes:
    return f"event: {name}\n".encode() + _data(payload)


def _limit_headers(state: LimitState) -> Headers:
    return limit_headers(state, ("tokens",), _header, go_duration)


def _header(name: str, field: str) -> str:
    return f"x-ratelimit-{field}-{name}"


def _base_headers() -> list[tuple[str, str]]:
    return [("openai-processing-ms", "1"), ("openai-version", _API_VERSION)]


def _auth_headers() -> list[tuple[str, str]]:
    return [
        ("x-request-id", _request_id()),
        *_base_headers(),
        ("www-authenticate", 'Bearer realm="OpenAI API"'),
    ]


def _organization(key: FakeKey) -> str:
    """The key's scope, or a stable per-key ``user-...`` id like OpenAI's personal orgs."""
    if key.scope is not None:
        return key.scope
    return "user-" + hashlib.sha256(key.secret.encode()).hexdigest()[:24]


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _id(prefix: str, length: int, *, hexa: bool = False) -> str:
    raw = uuid.uuid4().bytes + uuid.uuid4().bytes + uuid.uuid4().bytes + uuid.uuid4().bytes
    if hexa:
        return prefix + raw.hex()[:length]
    return prefix + "".join(_ALNUM[b % len(_ALNUM)] for b in raw[:length])


# -- JSON schema -> instance ------------------------------------------------------------------

_MAX_DEPTH = 6
_FORMATS: Final[dict[str, str]] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "duration": "P1D",
}


class _SchemaWriter:
    """Writes one instance of a schema; holds the root so ``$ref`` can be resolved."""

    def __init__(self, root: Mapping[str, JSON]) -> None:
        self._root = root

    def value(self, schema: JSON, depth: int) -> JSON:
        if not isinstance(schema, dict):
            return None if schema is False else "value"
        if "$ref" in schema:
            return self.value(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for combinator in ("anyOf", "oneOf"):
            if isinstance(schema.get(combinator), list) and schema[combinator]:
                return self.value(self._pick(schema[combinator], depth), depth + 1)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged.update(self._resolve(part["$ref"]) if "$ref" in part else part)
            return self.value(merged, depth + 1)
        return self._typed(schema, _schema_type(schema, depth), depth)

    def _typed(self, schema: Mapping[str, JSON], kind: str, depth: int) -> JSON:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return _integer(schema)
        if kind == "number":
            return _number_in(schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema)

    def _object(self, schema: Mapping[str, JSON], depth: int) -> JSON:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        names = (
            list(properties)
            if depth < _MAX_DEPTH or not isinstance(required, list)
            else [name for name in properties if name in required]
        )
        return {name: self.value(properties[name], depth + 1) for name in names}

    def _array(self, schema: Mapping[str, JSON], depth: int) -> JSON:
        minimum = schema.get("minItems", 0)
        count = minimum if isinstance(minimum, int) else 0
        if depth < _MAX_DEPTH:
            count = max(count, 1)
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [self.value(item, depth + 1) for item in prefix]
        return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]

    def _pick(self, options: list[JSON], depth: int) -> JSON:
        """Prefer a non-null branch, except when nesting is deep (to end recursion)."""
        nulls = [o for o in options if isinstance(o, dict) and o.get("type") == "null"]
        others = [o for o in options if o not in nulls]
        if depth >= _MAX_DEPTH and nulls:
            return nulls[0]
        return others[0] if others else options[0]

    def _resolve(self, ref: JSON) -> JSON:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        node: JSON = self._root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node


def _schema_type(schema: Mapping[str, JSON], depth: int) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        if "null" in kinds and (depth >= _MAX_DEPTH or len(kinds) == 1):
            return "null"
        kinds = [k for k in kinds if k != "null"] or ["null"]
        return kinds[0]
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _string(schema: Mapping[str, JSON]) -> str:
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, "example") if isinstance(fmt, str) else "example"
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and re.search(pattern, text) is None:
        text = _pattern_guess(pattern, text)
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = text + "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


def _pattern_guess(pattern: str, fallback: str) -> str:
    """A few candidates for common patterns; exact regex inversion is out of scope."""
    for candidate in ("a", "A", "0", "abc", "example", "a1", "2024-01-01", "x@example.com"):
        if re.fullmatch(pattern, candidate) or re.search(pattern, candidate):
            return candidate
    return fallback


def _integer(schema: Mapping[str, JSON]) -> int:
    value = int(_within(schema, 1, 1, whole=True))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    return value


def _number_in(schema: Mapping[str, JSON]) -> float:
    return float(_within(schema, 1.5, 0.5, whole=False))


def _within(schema: Mapping[str, JSON], start: float, step: float, *, whole: bool) -> float:
    """``start`` moved inside the schema's bounds (rounded inwards first when ``whole``)."""
    low = _bound(schema, "minimum", "exclusiveMinimum", step)
    high = _bound(schema, "maximum", "exclusiveMaximum", -step)
    value = start
    if low is not None:
        value = max(value, math.ceil(low) if whole else low)
    if high is not None:
        value = min(value, math.floor(high) if whole else high)
    return value


def _bound(schema: Mapping[str, JSON], inclusive: str, exclusive: str, step: float) -> float | None:
    """The tightest bound, nudged inside when exclusive (``step`` sets direction)."""
    candidates: list[float] = []
    value = schema.get(inclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        candidates.append(float(value))
    value = schema.get(exclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        candidates.append(float(value) + step)
    if not candidates:
        return None
    return max(candidates) if step > 0 else min(candidates)
