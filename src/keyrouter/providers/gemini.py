"""The Gemini API's wire format (generativelanguage.googleapis.com, API keys, not Vertex AI).

Authentication is `x-goog-api-key: <key>`; current google-genai SDKs never put the key in the
URL, but older clients and hand-written code send `?key=<key>`. `write_credential` only sees
headers, so the query form is handled by `credential_from_url` / `rewrite_url`, which a
transport calls on the request URL (see `rewrite_url`).

Gemini sends no rate-limit headers at all: everything is in the error body,
`{"error": {"code", "message", "status", "details": [...]}}` with `google.rpc` detail
messages. A 429's `QuotaFailure.violations[].quotaId` says which quota ran out: `...PerMinute...`
ones refill (wait `RetryInfo.retryDelay`), `...PerDay...` ones reset at midnight Pacific time.
A bad key is a 400 (`ErrorInfo.reason = "API_KEY_INVALID"`), not a 401.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from datetime import time as wall_time
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.providers._errors import MAX_ERROR_BYTES, add_note, text
from keyrouter.providers._estimate import count_tokens, json_object, model_name
from keyrouter.providers._parse import parse_go_duration, parse_retry_after
from keyrouter.providers.base import Headers, MutableHeaders, success

__all__ = [
    "WIRE",
    "GeminiError",
    "GeminiWire",
    "credential_from_url",
    "error_of",
    "model_in_path",
    "next_pacific_midnight",
    "rewrite_url",
]

_KEY_HEADER: Final = "x-goog-api-key"
_TYPE_PREFIX: Final = "type.googleapis.com/"
_QUOTA_FAILURE: Final = "google.rpc.QuotaFailure"
_RETRY_INFO: Final = "google.rpc.RetryInfo"
_ERROR_INFO: Final = "google.rpc.ErrorInfo"
_INVALID_KEY_REASONS: Final = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_CREDITS_DEPLETED: Final = "prepayment credits are depleted"
_GENERATE_SUFFIXES: Final = (":generateContent", ":streamGenerateContent")
_PROMPT_FIELDS: Final = ("contents", "systemInstruction", "system_instruction", "tools", "content")
_MEDIA_KEYS: Final = frozenset({"inlineData", "inline_data", "fileData", "file_data"})
_MEDIA_TOKENS: Final = 258.0  # Gemini bills an image (up to 384 px a side) as 258 tokens
_PLAIN_KEYS: Final = frozenset({"role", "mimeType", "mime_type"})
_QUERY_KEY: Final = re.compile(r"(?:^|(?<=&))key=([^&]*)")


def _pacific() -> tzinfo:
    """America/Los_Angeles, or PST if the system has no tz database (later, so still safe)."""
    try:
        return ZoneInfo("America/Los_Angeles")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone(timedelta(hours=-8), "PST")


_PACIFIC: Final = _pacific()


class GeminiError:
    """The parts of a `google.rpc.Status` error body the router reads (empty when absent)."""

    __slots__ = ("code", "details", "message", "status")

    def __init__(self, error: Mapping[str, Any]) -> None:
        code, status, message = error.get("code"), error.get("status"), error.get("message")
        details = error.get("details")
        self.code = code if isinstance(code, int) and not isinstance(code, bool) else 0
        self.status = text(status)
        self.message = text(message)
        self.details: list[Mapping[str, Any]] = (
            [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
        )

    def detail(self, kind: str) -> list[Mapping[str, Any]]:
        """Every detail whose `@type` is `type.googleapis.com/<kind>`."""
        return [d for d in self.details if d.get("@type") == _TYPE_PREFIX + kind]

    def quota_ids(self) -> list[str]:
        """`quotaId` of every `QuotaFailure` violation."""
        found: list[str] = []
        for failure in self.detail(_QUOTA_FAILURE):
            violations = failure.get("violations")
            if isinstance(violations, list):
                found += [
                    v["quotaId"]
                    for v in violations
                    if isinstance(v, dict) and isinstance(v.get("quotaId"), str)
                ]
        return found

    def retry_delay(self) -> float | None:
        """`RetryInfo.retryDelay` ("22s", "0.5s") in seconds."""
        for info in self.detail(_RETRY_INFO):
            delay = info.get("retryDelay")
            if isinstance(delay, str):
                seconds = parse_go_duration(delay)
                if seconds is not None:
                    return seconds
        return None

    def reasons(self) -> list[str]:
        """`ErrorInfo.reason` of every ErrorInfo detail."""
        return [r for d in self.detail(_ERROR_INFO) if isinstance(r := d.get("reason"), str)]


def error_of(body: bytes) -> tuple[dict[str, Any], GeminiError] | None:
    """The decoded body and its error, or None if it carries no error object.

    Accepts the plain object and the one-element array a non-SSE stream sends.
    """
    raw = body[:MAX_ERROR_BYTES].lstrip()
    if raw[:1] == b"[":
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        value = value[0] if isinstance(value, list) and value else None
        parsed = value if isinstance(value, dict) else None
    else:
        parsed = json_object(raw)
    error = parsed.get("error") if parsed else None
    if parsed is None or not isinstance(error, dict):
        return None
    return parsed, GeminiError(error)


def next_pacific_midnight(now: float) -> float | None:
    """The next midnight in America/Los_Angeles: when Gemini's daily quotas reset."""
    try:
        local = datetime.fromtimestamp(now, _PACIFIC)
        midnight = datetime.combine(local.date() + timedelta(days=1), wall_time(0), _PACIFIC)
        return midnight.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def credential_from_url(url: str) -> str | None:
    """The key in a `?key=` query parameter, if the URL has one."""
    try:
        match = _QUERY_KEY.search(urlsplit(url).query)
    except ValueError:
        return None
    if match is None:
        return None
    return unquote(match.group(1)) or None


def rewrite_url(url: str, secret: str) -> str | None:
    """`url` with its `key=` query parameter set to `secret`; None if it has no such parameter.

    For the transport, next to `write_credential`: when a request authenticates with `?key=`,
    the header alone would leave the old key in the URL, so call this on the request URL and
    send to the result when it is not None. Other parameters are kept byte for byte.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if _QUERY_KEY.search(parts.query) is None:
        return None
    query = _QUERY_KEY.sub(lambda _: "key=" + quote(secret, safe=""), parts.query)
    return urlunsplit(parts._replace(query=query))


class GeminiWire:
    """Reads and writes the Gemini API (see the module docstring)."""

    name = "gemini"
    default_hosts = frozenset({"generativelanguage.googleapis.com"})

    def credential(self, headers: Headers) -> str | None:
        value = headers.get(_KEY_HEADER)
        return (value.strip() or None) if value is not None else None

    def write_credential(self, headers: MutableHeaders, secret: str) -> None:
        headers[_KEY_HEADER] = secret

    def estimate_demand(self, method: str, path: str, body: bytes) -> Demand:
        parsed = json_object(body) if method == "POST" else None
        if parsed is None or ":" not in path:
            return Demand({"requests": 1.0})
        prompt = prompt_tokens(parsed.get(name) for name in _PROMPT_FIELDS)
        requests = parsed.get("requests")  # batchEmbedContents
        if isinstance(requests, list):
            prompt += prompt_tokens(r.get("content") for r in requests if isinstance(r, dict))
        output = _max_output(parsed) if path.endswith(_GENERATE_SUFFIXES) else 0.0
        return Demand(
            {"requests": 1.0, "tokens": max(1.0, round(prompt + output))}, model_in_path(path)
        )

    def demand_bound(self, method: str, path: str, body: bytes) -> Demand | None:
        return None  # no cheaper reading of this API's bodies: the estimate serves

    def observations(self, headers: Headers, now: float) -> tuple[LimitObservation, ...]:
        return ()  # Gemini reports no limits in headers

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        if status < 400:
            return success(status)
        found = error_of(body) if body else None
        error = found[1] if found else None
        grpc = error.status if error else ""
        if status == 429:
            return _classify_429(error, headers, now)
        if status == 400 and error is not None:
            invalid = [r for r in error.reasons() if r in _INVALID_KEY_REASONS]
            if invalid:
                return Outcome(OutcomeKind.INVALID_KEY, status, invalid[0])
            if grpc == "FAILED_PRECONDITION":
                return Outcome(OutcomeKind.FORBIDDEN, status, grpc)
        if status == 401:
            return Outcome(OutcomeKind.INVALID_KEY, status, grpc or "http_401")
        if status == 403:
            reasons = error.reasons() if error else []
            return Outcome(
                OutcomeKind.FORBIDDEN, status, reasons[0] if reasons else grpc or "http_403"
            )
        if status == 408 or status >= 500:
            return Outcome(OutcomeKind.SERVER_ERROR, status, grpc or f"http_{status}")
        return Outcome(OutcomeKind.REQUEST_ERROR, status, grpc or f"http_{status}")

    def no_key_error(
        self, kind: OutcomeKind, message: str, retry_after: float | None = None
    ) -> tuple[int, bytes]:
        """A Gemini error the SDK turns into `ClientError` (400 bad key, else 429).

        `retry_after` (seconds), when the caller knows it, becomes a `RetryInfo` detail, which
        is where Gemini clients look for a delay; without it no delay is invented.
        """
        if kind in (OutcomeKind.INVALID_KEY, OutcomeKind.FORBIDDEN):
            detail = {
                "@type": _TYPE_PREFIX + _ERROR_INFO,
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
            error["details"] = [detail]
            return 400, json.dumps({"error": error}).encode()
        if kind is OutcomeKind.REQUEST_ERROR:  # a policy forbids the request
            denied = {"code": 403, "message": message, "status": "PERMISSION_DENIED"}
            return 403, json.dumps({"error": denied}).encode()
        details: list[dict[str, str]] = []
        if retry_after is not None and retry_after >= 0:
            details.append({"@type": _TYPE_PREFIX + _RETRY_INFO, "retryDelay": f"{retry_after:g}s"})
        error = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}
        error["details"] = details
        return 429, json.dumps({"error": error}).encode()

    def annotate_error(self, body: bytes, note: str) -> bytes | None:
        found = error_of(body)
        if found is None:
            return None
        parsed, _ = found
        add_note(parsed["error"], note)
        wrapped = body.lstrip()[:1] == b"["
        return json.dumps([parsed] if wrapped else parsed).encode()


def _classify_429(error: GeminiError | None, headers: Headers, now: float) -> Outcome:
    if error is not None:
        if _CREDITS_DEPLETED in error.message.lower():
            return Outcome(OutcomeKind.QUOTA_EXHAUSTED, 429, "prepayment_credits_depleted")
        quota_ids = error.quota_ids()
        daily = next((q for q in quota_ids if "PerDay" in q), None)
        if daily is not None:
            # RetryInfo still says "retry in a few seconds" here; only midnight helps.
            return Outcome(OutcomeKind.QUOTA_EXHAUSTED, 429, daily, next_pacific_midnight(now))
        delay = error.retry_delay()
        reason = quota_ids[0] if quota_ids else error.status or "RESOURCE_EXHAUSTED"
        if delay is not None:
            return Outcome(OutcomeKind.RATE_LIMITED, 429, reason, now + delay)
    else:
        reason = "RESOURCE_EXHAUSTED"
    wait = parse_retry_after(headers.get("retry-after"), None, now)
    return Outcome(OutcomeKind.RATE_LIMITED, 429, reason, now + wait if wait is not None else None)


def model_in_path(path: str) -> str | None:
    """The model of `.../models/{model}:method` (`tunedModels/...` too), as the SDK names it.

    `v1beta/models/gemini-2.0-flash:generateContent` names `gemini-2.0-flash`; a tuned model
    keeps its `tunedModels/` prefix so a policy can tell it from a base model.
    """
    head = path.rpartition(":")[0]
    for marker in ("/models/", "/tunedModels/"):
        start = head.rfind(marker)
        if start >= 0:
            name = head[start + len(marker) :]
            prefix = "tunedModels/" if marker == "/tunedModels/" else ""
            return model_name(prefix + unquote(name)) if name and "/" not in name else None
    return None


def prompt_tokens(values: Iterable[object]) -> float:
    """Estimated tokens of the text in `values`; inline or uploaded media at a fixed cost."""
    return count_tokens(values, _split)


def _split(item: dict[str, object]) -> tuple[float, Iterable[object]]:
    """Each media key costs its fixed price and is not read on; the rest may hold text."""
    media = sum(_MEDIA_TOKENS for key in item if key in _MEDIA_KEYS)
    return media, (v for k, v in item.items() if k not in _MEDIA_KEYS and k not in _PLAIN_KEYS)


def _max_output(body: Mapping[str, object]) -> float:
    """`generationConfig.maxOutputTokens` when set.

    Gemini's per-minute token quotas count input tokens only, so an unset cap adds nothing.
    """
    config = body.get("generationConfig", body.get("generation_config"))
    value = config.get("maxOutputTokens") if isinstance(config, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return 0.0


WIRE: Final = GeminiWire()
