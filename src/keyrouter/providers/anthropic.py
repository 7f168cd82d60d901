"""Anthropic's Messages API wire format.

Authentication: the installed SDK (anthropic 2.12, `Anthropic.auth_headers` in `_client.py`)
sends the API key as `Authorization: Bearer <key>`; releases up to 1.17 sent it as
`X-Api-Key: <key>` (and an OAuth `auth_token`, if any, as `Authorization`). So the key is read
from `x-api-key` first, then from a Bearer token, and written back into whichever header the
request used.

Limits come as `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
remaining,reset}`, resets as RFC 3339 timestamps. Errors are
`{"type": "error", "error": {"type", "message", "details": {"error_code"}}, "request_id"}`.
A 429 is a rate limit unless `details.error_code` says a spend limit is reached (paused until
the month ends); 529 is capacity shared by every customer, which no other key fixes.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.providers._errors import annotated, error_object, text
from keyrouter.providers._estimate import count_tokens, json_object, model_name, output_cap
from keyrouter.providers._parse import (
    MAX_WAIT_SECONDS,
    ResetAt,
    header_families,
    observed_limits,
    parse_retry_after,
    parse_rfc3339,
    spent_reset,
)
from keyrouter.providers.base import Headers, MutableHeaders, success

__all__ = ["SPEND_LIMIT_CODES", "WIRE", "AnthropicWire", "error_fields"]

SPEND_LIMIT_CODES: Final = frozenset(
    {"enforced_spend_limit_reached", "contract_spend_limit_reached"}
)
"""429 `error.details.error_code`s that mean "no more usage this month", not "slow down"."""

_DIMENSIONS: Final = (
    ("requests", "requests"),
    ("tokens", "tokens"),
    ("input-tokens", "input_tokens"),
    ("output-tokens", "output_tokens"),
)
_PROMPT_FIELDS: Final = ("system", "messages", "tools")
_OUTPUT_FIELDS: Final = ("max_tokens",)
_DEFAULT_OUTPUT_TOKENS: Final = 4096.0  # max_tokens is required; this only covers bad bodies
_MEDIA_TOKENS: Final = 1600.0  # a large image; Anthropic bills about (width * height) / 750
_MEDIA_BLOCKS: Final = frozenset({"image", "document"})
_SKIP_KEYS: Final = frozenset({"type", "id", "tool_use_id", "cache_control", "media_type"})
_BEARER: Final = "bearer "
_API_KEY_HEADER: Final = "x-api-key"
_AUTH_HEADER: Final = "authorization"

# Messages seen on real 400 invalid_request_error answers that are about money, not the request.
_CREDIT_TOO_LOW: Final = "credit balance is too low"
_USAGE_LIMIT: Final = re.compile(
    r"regain access on (\d{4}-\d{2}-\d{2}) at (\d{2}):(\d{2}) UTC", re.IGNORECASE
)


def error_fields(body: bytes) -> tuple[str, str, str]:
    """(type, message, details.error_code) of an Anthropic error body; empty when absent."""
    found = error_object(body)
    if found is None:
        return "", "", ""
    _, error = found
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return text(error.get("type")), text(error.get("message")), text(code)


class AnthropicWire:
    """Reads and writes Anthropic's HTTP API (see the module docstring)."""

    name = "anthropic"
    default_hosts = frozenset({"api.anthropic.com"})

    def credential(self, headers: Headers) -> str | None:
        api_key = headers.get(_API_KEY_HEADER)
        if api_key is not None and api_key.strip():
            return api_key.strip()
        value = headers.get(_AUTH_HEADER)
        if value is None:
            return None
        if value[: len(_BEARER)].lower() == _BEARER:
            return value[len(_BEARER) :].strip() or None
        return value.strip() or None

    def write_credential(self, headers: MutableHeaders, secret: str) -> None:
        # Same header the SDK used: `X-Api-Key` (anthropic <= 1.17) or Bearer (2.x).
        if headers.get(_API_KEY_HEADER) is None and headers.get(_AUTH_HEADER) is not None:
            headers[_AUTH_HEADER] = f"Bearer {secret}"
        else:
            headers[_API_KEY_HEADER] = secret

    def estimate_demand(self, method: str, path: str, body: bytes) -> Demand:
        parsed = json_object(body) if method == "POST" and path.endswith("/messages") else None
        if parsed is None:
            return Demand({"requests": 1.0})
        prompt = prompt_tokens(parsed.get(name) for name in _PROMPT_FIELDS)
        output = output_cap(parsed, _OUTPUT_FIELDS, _DEFAULT_OUTPUT_TOKENS)
        # Anthropic charges the output limit against OTPM up front (max_tokens), then corrects.
        return Demand(
            {
                "requests": 1.0,
                "tokens": max(1.0, round(prompt + output)),
                "input_tokens": max(1.0, round(prompt)),
                "output_tokens": output,
            },
            model_name(parsed.get("model")),
        )

    def demand_bound(self, method: str, path: str, body: bytes) -> Demand | None:
        return None  # no cheaper reading of this API's bodies: the estimate serves

    def observations(self, headers: Headers, now: float) -> tuple[LimitObservation, ...]:
        return observed_limits(headers, now, _FAMILIES, _resets(headers, now))

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        if status < 400:
            return success(status)
        kind, message, code = error_fields(body) if body else ("", "", "")
        if status == 429:
            if code in SPEND_LIMIT_CODES:
                return Outcome(OutcomeKind.QUOTA_EXHAUSTED, status, code, _next_month(now))
            return Outcome(
                OutcomeKind.RATE_LIMITED,
                status,
                code or kind or "rate_limited",
                self._retry_at(headers, now),
            )
        if status == 402:
            return Outcome(OutcomeKind.QUOTA_EXHAUSTED, status, code or kind or "http_402")
        if status == 401:
            return Outcome(OutcomeKind.INVALID_KEY, status, kind or "http_401")
        if status == 403:
            return Outcome(OutcomeKind.FORBIDDEN, status, code or kind or "http_403")
        if status == 529:
            return Outcome(
                OutcomeKind.OVERLOADED, status, kind or "http_529", _retry_after(headers, now)
            )
        if status == 408 or status >= 500:
            return Outcome(OutcomeKind.SERVER_ERROR, status, kind or f"http_{status}")
        if status == 400 and message:
            money = _money_error(message, now)
            if money is not None:
                return money
        return Outcome(OutcomeKind.REQUEST_ERROR, status, code or kind or f"http_{status}")

    def _retry_at(self, headers: Headers, now: float) -> float | None:
        retry_at = _retry_after(headers, now)
        if retry_at is not None:
            return retry_at
        # No retry-after: the reset of whichever dimension is spent says when it refills.
        return spent_reset(headers, _FAMILIES, _resets(headers, now))

    def no_key_error(self, kind: OutcomeKind, message: str) -> tuple[int, bytes]:
        if kind in (OutcomeKind.INVALID_KEY, OutcomeKind.FORBIDDEN):
            status, err_type = 401, "authentication_error"
        elif kind is OutcomeKind.OVERLOADED:
            status, err_type = 529, "overloaded_error"
        elif kind is OutcomeKind.REQUEST_ERROR:  # a policy forbids the request: PermissionDenied
            status, err_type = 403, "permission_error"
        else:
            status, err_type = 429, "rate_limit_error"
        body = {
            "type": "error",
            "error": {"type": err_type, "message": message},
            "request_id": None,
        }
        return status, json.dumps(body).encode()

    def annotate_error(self, body: bytes, note: str) -> bytes | None:
        return annotated(body, note)


def prompt_tokens(values: Iterable[object]) -> float:
    """Estimated tokens of the text in `values`; images and documents at a fixed cost.

    Base64 image data would otherwise count as a huge prompt (a 100 kB image is not 25k tokens).
    """
    return count_tokens(values, _split)


def _split(item: dict[str, object]) -> tuple[float, Iterable[object]]:
    """A media block costs its fixed price and is not read on; other blocks hold text."""
    if item.get("type") in _MEDIA_BLOCKS and isinstance(item.get("source"), dict):
        return _MEDIA_TOKENS, ()
    return 0.0, (v for k, v in item.items() if k not in _SKIP_KEYS)


def _retry_after(headers: Headers, now: float) -> float | None:
    wait = parse_retry_after(headers.get("retry-after"), headers.get("retry-after-ms"), now)
    return now + wait if wait is not None else None


def _header(family: str, field: str) -> str:
    return f"anthropic-ratelimit-{family}-{field}"


_FAMILIES: Final = header_families(_DIMENSIONS, _header)


def _resets(headers: Headers, now: float) -> ResetAt:
    """Resets are RFC 3339 times on the server's clock, measured from its `Date`."""
    origin = _server_now(headers, now)

    def reset_at(value: str | None) -> float | None:
        return _reset_at(value, origin, now)

    return reset_at


def _server_now(headers: Headers, now: float) -> float:
    """The server's clock at the response (its `Date`), or ours when it sent none.

    Resets are absolute times on the server's clock; measuring them from its own `Date` keeps
    a skewed local clock (or a replayed recording) from shifting every reset.
    """
    served = _http_date(headers.get("date"))
    return served if served is not None else now


@functools.lru_cache(maxsize=64)
def _http_date(value: str | None) -> float | None:
    """An HTTP `Date` as epoch seconds (cached: it changes once a second)."""
    if value is None or len(value) > 64:
        return None
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


_rfc3339 = functools.lru_cache(maxsize=256)(parse_rfc3339)
"""Resets repeat across responses within a second; parse each once."""


def _reset_at(value: str | None, origin: float, now: float) -> float | None:
    moment = _rfc3339(value)
    if moment is None:
        return None
    wait = moment - origin
    if wait != wait or wait > MAX_WAIT_SECONDS:  # NaN or absurd
        return None
    return now + max(0.0, wait)


def _next_month(now: float) -> float | None:
    """Start of the next calendar month, UTC: when a monthly spend limit lifts."""
    try:
        moment = datetime.fromtimestamp(now, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    try:
        return datetime(year, month, 1, tzinfo=UTC).timestamp()
    except (OverflowError, ValueError):
        return None


def _money_error(message: str, now: float) -> Outcome | None:
    """A 400 `invalid_request_error` that is really about money.

    Anthropic answers "credit balance is too low" (prepaid credits gone) and "You have reached
    your specified API usage limits. You will regain access on <date> at <time> UTC." (a
    workspace spend limit) with 400, not 402/429. Both stop the key, not the request.
    """
    if _CREDIT_TOO_LOW in message.lower():
        return Outcome(OutcomeKind.QUOTA_EXHAUSTED, 400, "credit_balance_too_low")
    match = _USAGE_LIMIT.search(message)
    if match is None:
        return None
    retry_at: float | None
    try:
        day = datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
        retry_at = day.timestamp() + int(match.group(2)) * 3600 + int(match.group(3)) * 60
    except (ValueError, OverflowError):
        retry_at = None
    if retry_at is None or not now <= retry_at <= now + MAX_WAIT_SECONDS:
        retry_at = _next_month(now)
    return Outcome(OutcomeKind.QUOTA_EXHAUSTED, 400, "usage_limit_reached", retry_at)


WIRE: Final = AnthropicWire()
