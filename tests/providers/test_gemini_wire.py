"""The Gemini API's wire format: error bodies, quota ids, keys and demand.

Body literals copy the shapes of recorded real traffic (the detail-less 2026-02 429, the
API_KEY_INVALID 400, the 500/503/404 bodies) and of real free-tier 429 bodies quoted in
public bug reports (QuotaFailure + Help + RetryInfo).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.genai import errors
from hypothesis import given
from hypothesis import strategies as st

from keyrouter.core.outcome import OutcomeKind
from keyrouter.providers.gemini import (
    WIRE,
    credential_from_url,
    next_pacific_midnight,
    rewrite_url,
)

NOW = 1_700_000_000.0
PACIFIC = ZoneInfo("America/Los_Angeles")
TYPE = "type.googleapis.com/google.rpc."
HELP = {
    "@type": TYPE + "Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def body(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}, indent=2).encode()


def violation(quota_id: str, metric: str = "generate_content_free_tier_requests") -> dict[str, Any]:
    return {
        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
        "quotaValue": "10",
    }


def quota_failure(*quota_ids: str) -> dict[str, Any]:
    return {"@type": TYPE + "QuotaFailure", "violations": [violation(q) for q in quota_ids]}


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": TYPE + "RetryInfo", "retryDelay": delay}


QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
PER_MINUTE_429 = body(
    429,
    "RESOURCE_EXHAUSTED",
    QUOTA_MESSAGE,
    quota_failure("GenerateContentInputTokensPerModelPerMinute-FreeTier"),
    HELP,
    retry_info("26s"),
)
PER_DAY_429 = body(
    429,
    "RESOURCE_EXHAUSTED",
    QUOTA_MESSAGE,
    quota_failure(
        "GenerateContentInputTokensPerModelPerMinute-FreeTier",
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
    ),
    HELP,
    retry_info("5s"),  # real per-day 429s say this too; waiting 5 s does not help
)
CAPACITY_429 = body(
    429,
    "RESOURCE_EXHAUSTED",
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
)
CREDITS_429 = body(
    429,
    "RESOURCE_EXHAUSTED",
    "Your prepayment credits are depleted. Please go to AI Studio at "
    "https://ai.studio/projects to manage your project and billing.",
)
INTERACTIONS_429 = (
    b'{"error":{"message":"Resource has been exhausted (e.g. check quota).",'
    b'"code":"too_many_requests"}}'
)
BAD_KEY_400 = body(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    {
        "@type": TYPE + "ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    },
    {
        "@type": TYPE + "LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key.",
    },
)
SUSPENDED_403 = body(
    403,
    "PERMISSION_DENIED",
    "Permission denied: Consumer 'api_key:AIzaSyA...' has been suspended.",
    {
        "@type": TYPE + "ErrorInfo",
        "reason": "CONSUMER_SUSPENDED",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com", "consumer": "projects/5788"},
    },
)
UNREGISTERED_403 = body(
    403,
    "PERMISSION_DENIED",
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API.",
)
REGION_400 = body(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
NOT_FOUND_404 = body(
    404,
    "NOT_FOUND",
    "models/gemini-3.6-flahs is not found for API version v1beta, or is not supported for "
    "generateContent. Call ModelService.ListModels to see the list of available models and "
    "their supported methods.",
)
INTERNAL_500 = body(
    500,
    "INTERNAL",
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
)
OVERLOADED_503 = body(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def pacific(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=PACIFIC).timestamp()


# -- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "kind", "reason"),
    [
        (200, b"{}", OutcomeKind.SUCCESS, ""),
        (
            429,
            PER_MINUTE_429,
            OutcomeKind.RATE_LIMITED,
            "GenerateContentInputTokensPerModelPerMinute-FreeTier",
        ),
        (
            429,
            PER_DAY_429,
            OutcomeKind.QUOTA_EXHAUSTED,
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        ),
        (429, CAPACITY_429, OutcomeKind.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
        (429, CREDITS_429, OutcomeKind.QUOTA_EXHAUSTED, "prepayment_credits_depleted"),
        (429, INTERACTIONS_429, OutcomeKind.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
        (429, b"", OutcomeKind.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
        (400, BAD_KEY_400, OutcomeKind.INVALID_KEY, "API_KEY_INVALID"),
        (400, b"[" + BAD_KEY_400 + b"]", OutcomeKind.INVALID_KEY, "API_KEY_INVALID"),
        (400, REGION_400, OutcomeKind.FORBIDDEN, "FAILED_PRECONDITION"),
        (400, body(400, "INVALID_ARGUMENT", "bad"), OutcomeKind.REQUEST_ERROR, "INVALID_ARGUMENT"),
        (403, SUSPENDED_403, OutcomeKind.FORBIDDEN, "CONSUMER_SUSPENDED"),
        (403, UNREGISTERED_403, OutcomeKind.FORBIDDEN, "PERMISSION_DENIED"),
        (401, body(401, "UNAUTHENTICATED", "x"), OutcomeKind.INVALID_KEY, "UNAUTHENTICATED"),
        (404, NOT_FOUND_404, OutcomeKind.REQUEST_ERROR, "NOT_FOUND"),
        (500, INTERNAL_500, OutcomeKind.SERVER_ERROR, "INTERNAL"),
        (503, OVERLOADED_503, OutcomeKind.SERVER_ERROR, "UNAVAILABLE"),
        (504, body(504, "DEADLINE_EXCEEDED", "x"), OutcomeKind.SERVER_ERROR, "DEADLINE_EXCEEDED"),
        (502, b"<html>502</html>", OutcomeKind.SERVER_ERROR, "http_502"),
    ],
)
def test_classification(status: int, payload: bytes, kind: OutcomeKind, reason: str) -> None:
    outcome = WIRE.classify(status, {}, payload, NOW)
    assert outcome.kind is kind
    assert outcome.reason == reason


def test_per_minute_quota_waits_for_retry_delay() -> None:
    assert WIRE.classify(429, {}, PER_MINUTE_429, NOW).retry_at == pytest.approx(NOW + 26)
    half = body(429, "RESOURCE_EXHAUSTED", "m", quota_failure("XPerMinute"), retry_info("0.5s"))
    assert WIRE.classify(429, {}, half, NOW).retry_at == pytest.approx(NOW + 0.5)


def test_per_day_quota_ignores_retry_delay_and_waits_for_pacific_midnight() -> None:
    now = pacific("2025-07-10T15:30:00")
    outcome = WIRE.classify(429, {}, PER_DAY_429, now)
    assert outcome.retry_at == pacific("2025-07-11T00:00:00")


def test_a_429_without_details_has_no_known_end() -> None:
    assert WIRE.classify(429, {}, CAPACITY_429, NOW).retry_at is None
    assert WIRE.classify(429, {"retry-after": "3"}, CAPACITY_429, NOW).retry_at == NOW + 3


def test_credits_depleted_stops_the_key_until_someone_pays() -> None:
    outcome = WIRE.classify(429, {}, CREDITS_429, NOW)
    assert outcome.retry_at is None
    assert outcome.kind.fails_over


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        ("2025-07-10T15:30:00", "2025-07-11T00:00:00"),  # PDT
        ("2025-01-10T23:59:59", "2025-01-11T00:00:00"),  # PST
        ("2025-03-08T12:00:00", "2025-03-09T00:00:00"),  # the night before DST starts
        ("2025-11-02T00:00:00", "2025-11-03T00:00:00"),  # the day DST ends (25 h long)
    ],
)
def test_next_pacific_midnight(now: str, midnight: str) -> None:
    assert next_pacific_midnight(pacific(now)) == pacific(midnight)


def test_no_rate_limit_headers_ever() -> None:
    headers = {"x-ratelimit-limit-requests": "10", "retry-after": "5", "date": "x"}
    assert WIRE.observations(headers, NOW) == ()


# -- credentials ----------------------------------------------------------------------------


def test_credential_roundtrip() -> None:
    headers: dict[str, str] = {}
    WIRE.write_credential(headers, "AIza-new")
    assert headers == {"x-goog-api-key": "AIza-new"}
    assert WIRE.credential(headers) == "AIza-new"
    assert WIRE.credential({}) is None
    assert WIRE.credential({"x-goog-api-key": " "}) is None


def test_key_in_the_query_is_read_and_replaced_in_place() -> None:
    url = "https://generativelanguage.googleapis.com/v1beta/models/m:streamGenerateContent?alt=sse&key=AIza-old&x=1"
    assert credential_from_url(url) == "AIza-old"
    assert rewrite_url(url, "AIza/new+1") == url.replace("AIza-old", "AIza%2Fnew%2B1")
    assert credential_from_url(rewrite_url(url, "AIza/new+1") or "") == "AIza/new+1"
    start = "https://h/v1/models?key=a"
    assert rewrite_url(start, "b") == "https://h/v1/models?key=b"


@pytest.mark.parametrize(
    "url",
    ["https://h/v1/models", "https://h/v1/models?monkey=1", "https://h/p?alt=sse", "http://["],
)
def test_urls_without_a_key_are_left_alone(url: str) -> None:
    assert rewrite_url(url, "new") is None
    assert credential_from_url(url) is None


# -- demand ---------------------------------------------------------------------------------


def test_demand_counts_contents_system_instruction_and_output_cap() -> None:
    request = {
        "contents": [{"role": "user", "parts": [{"text": "x" * 400}]}],
        "systemInstruction": {"parts": [{"text": "s" * 40}], "role": "user"},
        "generationConfig": {"maxOutputTokens": 50},
    }
    demand = WIRE.estimate_demand(
        "POST", "/v1beta/models/gemini-2.5-flash:generateContent", json.dumps(request).encode()
    )
    assert demand.get("requests") == 1
    assert demand.get("tokens") == 160  # 440 chars / 4 + 50


def test_inline_media_costs_a_fixed_amount() -> None:
    part = {"inlineData": {"mimeType": "video/mp4", "data": "A" * 300_000}}
    request = {"contents": [{"role": "user", "parts": [{"text": "describe"}, part]}]}
    demand = WIRE.estimate_demand(
        "POST", "/v1/models/gemini-2.0-flash:generateContent", json.dumps(request).encode()
    )
    assert demand.get("tokens") == 260  # 258 for the media, 2 for "describe"


def test_other_calls_cost_a_request() -> None:
    assert dict(WIRE.estimate_demand("GET", "/v1beta/models", b"").units) == {"requests": 1.0}
    counted = WIRE.estimate_demand(
        "POST",
        "/v1beta/models/m:countTokens",
        b'{"contents": [{"parts": [{"text": "abcd"}]}],'
        b' "generationConfig": {"maxOutputTokens": 9}}',
    )
    assert counted.get("tokens") == 1  # no output cap: nothing is generated


# -- errors handed to the SDK ---------------------------------------------------------------


def test_no_key_error_for_bad_keys_is_the_400_the_sdk_knows() -> None:
    status, payload = WIRE.no_key_error(OutcomeKind.INVALID_KEY, "every key is invalid")
    assert status == 400
    error = errors.ClientError(status, json.loads(payload))
    assert (error.code, error.status, error.message) == (
        400,
        "INVALID_ARGUMENT",
        "every key is invalid",
    )
    assert WIRE.classify(status, {}, payload, NOW).kind is OutcomeKind.INVALID_KEY


def test_no_key_error_for_spent_keys_is_a_429_with_retry_info_when_known() -> None:
    status, payload = WIRE.no_key_error(OutcomeKind.RATE_LIMITED, "all cooling", retry_after=12.5)
    assert status == 429
    error = errors.ClientError(status, json.loads(payload))
    assert error.status == "RESOURCE_EXHAUSTED"
    assert WIRE.classify(status, {}, payload, NOW).retry_at == pytest.approx(NOW + 12.5)
    _, unknown = WIRE.no_key_error(OutcomeKind.QUOTA_EXHAUSTED, "all spent")
    assert json.loads(unknown)["error"]["details"] == []  # no invented delay


def test_annotate_error_keeps_details_and_the_array_form() -> None:
    annotated = WIRE.annotate_error(PER_MINUTE_429, "keyrouter: 2 keys cooling")
    assert annotated is not None
    error = json.loads(annotated)["error"]
    assert error["message"].endswith("[keyrouter: 2 keys cooling]")
    assert len(error["details"]) == 3
    wrapped = WIRE.annotate_error(b"[" + BAD_KEY_400 + b"]", "n")
    assert wrapped is not None
    assert json.loads(wrapped)[0]["error"]["message"].endswith("[n]")
    assert WIRE.annotate_error(b"<html>", "n") is None
    assert WIRE.annotate_error(b"[]", "n") is None


# -- nothing from the network makes the wire raise -------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=3),
    max_leaves=12,
)
_DETAIL = st.fixed_dictionaries(
    {
        "@type": st.sampled_from(
            [TYPE + "QuotaFailure", TYPE + "RetryInfo", TYPE + "ErrorInfo", TYPE + "Help"]
        )
    },
    optional={
        "violations": st.lists(
            st.fixed_dictionaries(
                {}, optional={"quotaId": st.sampled_from(["APerDay", "BPerMinute"]) | _JSON}
            )
            | _JSON,
            max_size=3,
        )
        | _JSON,
        "retryDelay": st.sampled_from(["22s", "0.5s", "-1s", "1e400s", "99999999999s"]) | _JSON,
        "reason": st.sampled_from(["API_KEY_INVALID"]) | _JSON,
    },
)
_ERROR = st.fixed_dictionaries(
    {},
    optional={
        "code": _JSON,
        "status": st.sampled_from(["RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"]) | _JSON,
        "message": st.sampled_from(["prepayment credits are depleted"]) | _JSON,
        "details": st.lists(_DETAIL | _JSON, max_size=4) | _JSON,
    },
)


@given(
    status=st.integers(100, 599),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "date", "x-goog-api-key"]),
        st.text(max_size=30) | st.integers(-(10**12), 10**12).map(str),
    ),
    payload=st.one_of(
        st.binary(max_size=200),
        _JSON.map(lambda v: json.dumps(v).encode()),
        _ERROR.map(lambda e: json.dumps({"error": e}).encode()),
        _ERROR.map(lambda e: json.dumps([{"error": e}]).encode()),
    ),
    now=st.floats(0, 4e9),
)
def test_nothing_from_the_network_makes_the_wire_raise(
    status: int, headers: dict[str, str], payload: bytes, now: float
) -> None:
    outcome = WIRE.classify(status, headers, payload, now)
    assert isinstance(outcome.kind, OutcomeKind)
    if outcome.retry_at is not None:
        assert outcome.retry_at >= now
    assert WIRE.observations(headers, now) == ()
    WIRE.estimate_demand("POST", "/v1beta/models/m:generateContent", payload)
    annotated = WIRE.annotate_error(payload, "note")
    assert annotated is None or b"note" in annotated


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1beta/models/gemini-2.0-flash:generateContent", "gemini-2.0-flash"),
        ("/v1beta/models/gemini-2.5-pro:streamGenerateContent", "gemini-2.5-pro"),
        ("/v1/models/text-embedding-004:embedContent", "text-embedding-004"),
        ("/v1beta/tunedModels/my-tune:generateContent", "tunedModels/my-tune"),
        ("/v1beta/files:upload", None),
    ],
)
def test_demand_names_the_model_in_the_path(path: str, model: str | None) -> None:
    assert WIRE.estimate_demand("POST", path, b'{"contents": []}').model == model
