"""OpenAI's wire format (also Azure OpenAI and OpenAI-compatible servers that copy it).

Authentication is `Authorization: Bearer <key>`. Limits come as
`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with Go-style reset durations; errors as
`{"error": {"message", "type", "param", "code"}}`. A 429 means "retry later" unless its code
says the money is gone (`insufficient_quota` and kin), which no waiting fixes.
"""

from __future__ import annotations

import json
import re
from typing import Final

from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.providers._errors import annotated, error_object, text
from keyrouter.providers._estimate import json_object, model_name, output_cap, text_tokens
from keyrouter.providers._parse import (
    ResetAt,
    header_families,
    observed_limits,
    parse_go_duration,
    parse_retry_after,
    spent_reset,
)
from keyrouter.providers.base import Headers, MutableHeaders, success

__all__ = ["WIRE", "OpenAIWire"]

SPEND_CODES: Final = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
        "billing_hard_limit_reached",
        "billing_not_active",
    }
)
_DIMENSIONS: Final = (("requests", "requests"), ("tokens", "tokens"))
_DEFAULT_OUTPUT_TOKENS: Final = 256.0
_OUTPUT_FIELDS: Final = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_PROMPT_FIELDS: Final = ("messages", "input", "prompt", "instructions", "tools")
_BEARER: Final = "bearer "
_BOUND_MAX_BYTES: Final = 4096
"""Larger bodies are parsed: the bound would overstate their text by more than it saves."""
_BOUND_REFUSING: Final = re.compile(
    b"data:|" + b"|".join(f'"{name}"'.encode() for name in (*_OUTPUT_FIELDS, "n"))
)
"""What only a parse can price: inline media, an output cap, several choices."""
_MODEL: Final = re.compile(rb'"model":\s*"([^"\\]{1,256})"')
_ONE_REQUEST: Final = Demand({"requests": 1.0})


def error_fields(body: bytes) -> tuple[str, str, str]:
    """(code, type, message) of an OpenAI-shaped error body; empty strings when absent."""
    found = error_object(body)
    if found is None:
        return "", "", ""
    _, error = found
    return text(error.get("code")), text(error.get("type")), text(error.get("message"))


class OpenAIWire:
    """Reads and writes OpenAI's HTTP API (see the module docstring)."""

    name = "openai"
    default_hosts = frozenset({"api.openai.com"})
    auth_header = "authorization"

    def credential(self, headers: Headers) -> str | None:
        value = headers.get(self.auth_header)
        if value is None:
            return None
        if value[: len(_BEARER)].lower() == _BEARER:
            return value[len(_BEARER) :].strip()
        return value.strip()

    def write_credential(self, headers: MutableHeaders, secret: str) -> None:
        headers[self.auth_header] = f"Bearer {secret}"

    def estimate_demand(self, method: str, path: str, body: bytes) -> Demand:
        parsed = json_object(body) if method == "POST" else None
        if parsed is None:
            return Demand({"requests": 1.0})
        prompt = text_tokens([parsed[name] for name in _PROMPT_FIELDS if name in parsed])
        if path.endswith("/embeddings"):
            output = 0.0
        else:
            choices = parsed.get("n", 1)
            n = choices if type(choices) is int and 1 <= choices <= 128 else 1
            output = n * output_cap(parsed, _OUTPUT_FIELDS, _DEFAULT_OUTPUT_TOKENS)
        tokens = round(prompt + output)
        return Demand(
            {"requests": 1.0, "tokens": tokens if tokens >= 1 else 1.0},
            model_name(parsed.get("model")),
        )

    def demand_bound(self, method: str, path: str, body: bytes) -> Demand | None:
        """At least what `estimate_demand` would say, read off the raw body without parsing it,
        or None when the body has to be parsed (not small, inline media, an output cap, `n`).

        Every character of the text the estimate counts takes at least one byte of the body,
        so a quarter of the body's length bounds the prompt; with no output cap and no `n`
        in it, the output is the default for certain.
        """
        if method != "POST":
            return _ONE_REQUEST
        if len(body) > _BOUND_MAX_BYTES or body[:1] != b"{" or _BOUND_REFUSING.search(body):
            return None
        output = 0.0 if path.endswith("/embeddings") else _DEFAULT_OUTPUT_TOKENS
        found = _MODEL.findall(body)
        model = found[0].decode("utf-8", "replace") if len(found) == 1 else None
        return Demand({"requests": 1.0, "tokens": round(len(body) / 4 + output)}, model)

    def observations(self, headers: Headers, now: float) -> tuple[LimitObservation, ...]:
        return observed_limits(headers, now, _FAMILIES, _go_reset(now))

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        if status < 400:
            return success(status)
        code, kind, _ = error_fields(body) if body else ("", "", "")
        if status == 429:
            if code in SPEND_CODES or kind in SPEND_CODES:
                return Outcome(OutcomeKind.QUOTA_EXHAUSTED, status, code or kind)
            return Outcome(
                OutcomeKind.RATE_LIMITED,
                status,
                code or "rate_limited",
                self._retry_at(headers, now),
            )
        if status == 401:
            return Outcome(OutcomeKind.INVALID_KEY, status, code or "http_401")
        if status == 403:
            return Outcome(OutcomeKind.FORBIDDEN, status, code or "http_403")
        if status == 402:
            return Outcome(OutcomeKind.QUOTA_EXHAUSTED, status, code or "http_402")
        if status == 408 or status >= 500:
            return Outcome(OutcomeKind.SERVER_ERROR, status, code or f"http_{status}")
        return Outcome(OutcomeKind.REQUEST_ERROR, status, code or f"http_{status}")

    def _retry_at(self, headers: Headers, now: float) -> float | None:
        wait = parse_retry_after(headers.get("retry-after"), headers.get("retry-after-ms"), now)
        if wait is not None:
            return now + wait
        # No retry-after: the reset of whichever dimension is spent says when it refills.
        return spent_reset(headers, _FAMILIES, _go_reset(now))

    def no_key_error(self, kind: OutcomeKind, message: str) -> tuple[int, bytes]:
        if kind in (OutcomeKind.INVALID_KEY, OutcomeKind.FORBIDDEN):
            status, err_type, code = 401, "invalid_request_error", "invalid_api_key"
        elif kind is OutcomeKind.QUOTA_EXHAUSTED:
            status, err_type, code = 429, "insufficient_quota", "insufficient_quota"
        elif kind is OutcomeKind.REQUEST_ERROR:  # a policy forbids the request: PermissionDenied
            status, err_type, code = 403, "invalid_request_error", "forbidden_by_policy"
        else:
            status, err_type, code = 429, "requests", "rate_limit_exceeded"
        body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        return status, json.dumps(body).encode()

    def annotate_error(self, body: bytes, note: str) -> bytes | None:
        return annotated(body, note)


def _header(dimension: str, field: str) -> str:
    return f"x-ratelimit-{field}-{dimension}"


def _go_reset(now: float) -> ResetAt:
    """Resets are Go durations from now (`6m0s`)."""

    def reset_at(value: str | None) -> float | None:
        wait = parse_go_duration(value)
        return now + wait if wait is not None else None

    return reset_at


_FAMILIES: Final = header_families(_DIMENSIONS, _header)

WIRE: Final = OpenAIWire()
