"""Anthropic's wire format: headers, errors and demand, as the real API sends them.

Header and body literals copy the shapes of recorded real traffic (2024-06 429/529 with the
six-header set, 2025-11 200 with all twelve, 2025-12 429 with a request_id, 401, 500, 404).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types.shared import ErrorResponse
from hypothesis import given
from hypothesis import strategies as st

from keyrouter.core.outcome import OutcomeKind
from keyrouter.providers.anthropic import WIRE, AnthropicWire, prompt_tokens


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOW = 1_700_000_000.0

# A 200 from 2025-11: twelve limit headers, and a retry-after that means nothing on a 200.
REAL_200_HEADERS = {
    "date": "Tue, 04 Nov 2025 22:50:55 GMT",
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "400000",
    "anthropic-ratelimit-input-tokens-reset": "2025-11-04T22:50:55Z",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "80000",
    "anthropic-ratelimit-output-tokens-reset": "2025-11-04T22:50:55Z",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2025-11-04T22:50:54Z",
    "anthropic-ratelimit-tokens-limit": "480000",
    "anthropic-ratelimit-tokens-remaining": "480000",
    "anthropic-ratelimit-tokens-reset": "2025-11-04T22:50:55Z",
    "request-id": "req_011CUofgQ1jTrjQ2sveXU1cC",
    "retry-after": "5",
}

# The 2024-06 429 on the requests-per-minute limit (six headers then).
REAL_429_HEADERS = {
    "date": "Tue, 04 Jun 2024 18:39:50 GMT",
    "anthropic-ratelimit-requests-limit": "5",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2024-06-04T18:39:57Z",
    "anthropic-ratelimit-tokens-limit": "10000",
    "anthropic-ratelimit-tokens-remaining": "8000",
    "anthropic-ratelimit-tokens-reset": "2024-06-04T18:39:57Z",
    "request-id": "req_01VRXnTtDN7bkGVjXbQNgzcL",
    "retry-after": "7",
    "x-should-retry": "true",
}
REAL_429_BODY = (
    b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has '
    b"exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits); see "
    b'the response headers for current usage."}}'
)
REAL_429_ITPM_BODY = json.dumps(
    {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "This request would exceed the rate limit for your organization "
            "(f02248f8-ceba-4e6c-be70-20fd729ec8a1) of 50,000 input tokens per minute.",
        },
        "request_id": "req_011CWEaX9ijsLtnK4ufHFKTn",
    }
).encode()
REAL_529_BODY = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
REAL_500_BODY = (
    b'{"type":"error","error":{"type":"api_error","message":"Internal server error"},'
    b'"request_id":"req_011CVQuoGU1xeC7NMufKoeUy"}'
)
REAL_401_BODY = (
    b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
)
REAL_404_BODY = json.dumps(
    {
        "error": {"message": "model: claude-sonet-4-5", "type": "not_found_error"},
        "request_id": "req_011CdufXo8Y2LVfY2veyuQWG",
        "type": "error",
    }
).encode()


def error(kind: str, message: str = "m", code: str | None = None) -> bytes:
    body: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        body["details"] = {"error_code": code}
    return json.dumps({"type": "error", "error": body, "request_id": "req_011CX"}).encode()


# -- observations -------------------------------------------------------------------------


def test_observations_read_all_four_dimensions_of_a_real_200() -> None:
    found = {o.dimension: o for o in WIRE.observations(REAL_200_HEADERS, NOW)}
    assert set(found) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert (found["requests"].limit, found["requests"].remaining) == (4000, 3999)
    assert (found["input_tokens"].limit, found["output_tokens"].limit) == (400000, 80000)
    assert found["tokens"].remaining == 480000
    # Resets are measured from the server's Date: 0 s away (and 1 s in the past: now).
    assert found["tokens"].reset_at == pytest.approx(NOW)
    assert found["requests"].reset_at == pytest.approx(NOW)
    assert all(o.observed_at == NOW for o in found.values())


def test_resets_are_measured_from_the_servers_date_not_our_clock() -> None:
    # Our clock is far from 2024; the reset is 7 s after the response's Date.
    found = {o.dimension: o for o in WIRE.observations(REAL_429_HEADERS, NOW)}
    assert found["requests"].reset_at == pytest.approx(NOW + 7)
    assert set(found) == {"requests", "tokens"}


def test_without_a_date_resets_are_absolute_times() -> None:
    headers = {k: v for k, v in REAL_429_HEADERS.items() if k != "date"}
    now = at("2024-06-04T18:39:50")
    found = {o.dimension: o for o in WIRE.observations(headers, now)}
    assert found["requests"].reset_at == pytest.approx(now + 7)


def test_no_headers_no_observations() -> None:
    assert WIRE.observations({"retry-after": "5"}, NOW) == ()


# -- classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (200, b"", OutcomeKind.SUCCESS, ""),
        (429, REAL_429_BODY, OutcomeKind.RATE_LIMITED, "rate_limit_error"),
        (429, REAL_429_ITPM_BODY, OutcomeKind.RATE_LIMITED, "rate_limit_error"),
        (429, b"<html>", OutcomeKind.RATE_LIMITED, "rate_limited"),
        (
            429,
            error("rate_limit_error", code="enforced_spend_limit_reached"),
            OutcomeKind.QUOTA_EXHAUSTED,
            "enforced_spend_limit_reached",
        ),
        (
            429,
            error("rate_limit_error", code="contract_spend_limit_reached"),
            OutcomeKind.QUOTA_EXHAUSTED,
            "contract_spend_limit_reached",
        ),
        (
            429,
            error("rate_limit_error", code="ramp_limit_exceeded"),
            OutcomeKind.RATE_LIMITED,
            "ramp_limit_exceeded",
        ),
        (402, error("billing_error"), OutcomeKind.QUOTA_EXHAUSTED, "billing_error"),
        (401, REAL_401_BODY, OutcomeKind.INVALID_KEY, "authentication_error"),
        (403, error("permission_error"), OutcomeKind.FORBIDDEN, "permission_error"),
        (529, REAL_529_BODY, OutcomeKind.OVERLOADED, "overloaded_error"),
        (500, REAL_500_BODY, OutcomeKind.SERVER_ERROR, "api_error"),
        (503, b"upstream connect error", OutcomeKind.SERVER_ERROR, "http_503"),
        (504, error("timeout_error"), OutcomeKind.SERVER_ERROR, "timeout_error"),
        (502, b"<html>cloudflare</html>", OutcomeKind.SERVER_ERROR, "http_502"),
        (404, REAL_404_BODY, OutcomeKind.REQUEST_ERROR, "not_found_error"),
        (400, error("invalid_request_error"), OutcomeKind.REQUEST_ERROR, "invalid_request_error"),
        (413, error("request_too_large"), OutcomeKind.REQUEST_ERROR, "request_too_large"),
        (
            400,
            error(
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to "
                "Plans & Billing to upgrade or purchase credits.",
            ),
            OutcomeKind.QUOTA_EXHAUSTED,
            "credit_balance_too_low",
        ),
    ],
)
def test_classification(status: int, body: bytes, kind: OutcomeKind, reason: str) -> None:
    outcome = WIRE.classify(status, {}, body, NOW)
    assert outcome.kind is kind
    assert outcome.reason == reason
    assert outcome.status == status


def test_overloaded_does_not_fail_over_but_a_rate_limit_does() -> None:
    assert not WIRE.classify(529, {}, REAL_529_BODY, NOW).kind.fails_over
    assert WIRE.classify(429, REAL_429_HEADERS, REAL_429_BODY, NOW).kind.fails_over


def test_rate_limit_retry_at_comes_from_retry_after() -> None:
    outcome = WIRE.classify(429, REAL_429_HEADERS, REAL_429_BODY, NOW)
    assert outcome.retry_at == pytest.approx(NOW + 7)


def test_rate_limit_without_retry_after_waits_for_the_spent_dimension() -> None:
    headers = {k: v for k, v in REAL_429_HEADERS.items() if k != "retry-after"}
    headers["anthropic-ratelimit-tokens-reset"] = "2024-06-04T18:40:50Z"  # not spent: ignored
    outcome = WIRE.classify(429, headers, REAL_429_BODY, NOW)
    assert outcome.retry_at == pytest.approx(NOW + 7)


def test_retry_after_on_a_200_is_not_a_rate_limit() -> None:
    outcome = WIRE.classify(200, REAL_200_HEADERS, b"{}", NOW)
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.retry_at is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2025-11-04T22:50:55", "2025-12-01T00:00:00"),
        ("2025-12-31T23:59:59", "2026-01-01T00:00:00"),
        ("2026-02-01T00:00:00", "2026-03-01T00:00:00"),
    ],
)
def test_spend_limit_lasts_until_the_next_month_utc(now: str, expected: str) -> None:
    body = error("rate_limit_error", code="enforced_spend_limit_reached")
    outcome = WIRE.classify(429, {"retry-after": "3"}, body, at(now))
    assert outcome.retry_at == at(expected)


def test_workspace_usage_limit_400_is_quota_until_the_date_it_names() -> None:
    body = error(
        "invalid_request_error",
        "You have reached your specified API usage limits. You will regain access on "
        "2026-04-01 at 00:00 UTC.",
    )
    outcome = WIRE.classify(400, {}, body, at("2026-03-23T23:08:46"))
    assert outcome.kind is OutcomeKind.QUOTA_EXHAUSTED
    assert outcome.retry_at == at("2026-04-01T00:00:00")
    # A date in the past (or nonsense) falls back to the next month, never to "now".
    later = WIRE.classify(400, {}, body, at("2026-05-02T00:00:00"))
    assert later.retry_at == at("2026-06-01T00:00:00")


# -- credentials ----------------------------------------------------------------------------


def test_credential_from_either_header() -> None:
    assert WIRE.credential({"x-api-key": "sk-ant-a"}) == "sk-ant-a"
    assert WIRE.credential({"authorization": "Bearer sk-ant-b"}) == "sk-ant-b"
    assert WIRE.credential({"x-api-key": "sk-ant-a", "authorization": "Bearer oauth"}) == (
        "sk-ant-a"
    )
    assert WIRE.credential({}) is None
    assert WIRE.credential({"authorization": "Bearer   "}) is None


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"x-api-key": "old"}, {"x-api-key": "new"}),
        ({"authorization": "Bearer old"}, {"authorization": "Bearer new"}),
        ({}, {"x-api-key": "new"}),
        (
            {"x-api-key": "old", "authorization": "Bearer oauth"},
            {"x-api-key": "new", "authorization": "Bearer oauth"},
        ),
    ],
)
def test_write_credential_uses_the_header_the_request_used(
    before: dict[str, str], after: dict[str, str]
) -> None:
    headers = dict(before)
    WIRE.write_credential(headers, "new")
    assert headers == after


def test_the_installed_sdk_sends_a_bearer_token_that_the_wire_reads_and_replaces() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(401, json=json.loads(REAL_401_BODY))

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = anthropic.Anthropic(api_key="sk-ant-pool-1", http_client=http, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    headers = seen[0].headers
    assert headers.get("x-api-key") is None
    assert WIRE.credential(headers) == "sk-ant-pool-1"
    WIRE.write_credential(headers, "sk-ant-pool-2")
    assert headers["authorization"] == "Bearer sk-ant-pool-2"
    assert "x-api-key" not in headers


# -- demand ---------------------------------------------------------------------------------


def test_demand_counts_system_messages_tools_and_max_tokens() -> None:
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "s" * 40}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 400}]}],
            "tools": [{"name": "t", "description": "d" * 40, "input_schema": {}}],
        }
    ).encode()
    demand = WIRE.estimate_demand("POST", "/v1/messages", body)
    assert demand.get("requests") == 1
    assert demand.get("input_tokens") == pytest.approx(121, abs=1)  # 481 chars / 4
    assert demand.get("output_tokens") == 100
    assert demand.get("tokens") == pytest.approx(221, abs=1)


def test_images_cost_a_fixed_amount_not_their_base64_length() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 400_000},
    }
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": [image]}]}
    demand = WIRE.estimate_demand("POST", "/v1/messages", json.dumps(body).encode())
    assert 500 < demand.get("input_tokens") < 5000
    assert prompt_tokens([image]) == prompt_tokens([{**image, "source": {"data": "B"}}])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/messages/batches"),
    ],
)
def test_other_endpoints_cost_one_request(method: str, path: str) -> None:
    body = b'{"messages": [{"role": "user", "content": "xxxxxxxx"}], "max_tokens": 100}'
    assert dict(WIRE.estimate_demand(method, path, body).units) == {"requests": 1.0}


# -- errors handed to the SDK ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "err_type"),
    [
        (OutcomeKind.INVALID_KEY, 401, "authentication_error"),
        (OutcomeKind.FORBIDDEN, 401, "authentication_error"),
        (OutcomeKind.RATE_LIMITED, 429, "rate_limit_error"),
        (OutcomeKind.QUOTA_EXHAUSTED, 429, "rate_limit_error"),
        (OutcomeKind.OVERLOADED, 529, "overloaded_error"),
    ],
)
def test_no_key_error_has_anthropics_shape(kind: OutcomeKind, status: int, err_type: str) -> None:
    got_status, body = WIRE.no_key_error(kind, "no key left")
    assert got_status == status
    parsed = ErrorResponse.model_validate(json.loads(body))
    assert parsed.error.type == err_type
    assert parsed.error.message == "no key left"
    # The router reads its own error the same way it reads the provider's.
    assert WIRE.classify(status, {}, body, NOW).kind in {
        OutcomeKind.INVALID_KEY,
        OutcomeKind.RATE_LIMITED,
        OutcomeKind.OVERLOADED,
    }


def test_annotate_error_keeps_the_error_shape() -> None:
    body = error("rate_limit_error", "slow down", code="ramp_limit_exceeded")
    annotated = WIRE.annotate_error(body, "keyrouter: 3 keys cooling")
    assert annotated is not None
    parsed = json.loads(annotated)
    assert parsed["error"]["message"] == "slow down [keyrouter: 3 keys cooling]"
    assert parsed["error"]["details"] == {"error_code": "ramp_limit_exceeded"}
    assert parsed["request_id"] == "req_011CX"
    assert WIRE.annotate_error(b"<html>", "note") is None
    assert WIRE.annotate_error(b'{"type": "error"}', "note") is None


def test_the_wire_satisfies_the_protocol() -> None:
    wire: AnthropicWire = WIRE
    assert wire.name == "anthropic"
    assert wire.default_hosts == frozenset({"api.anthropic.com"})


# -- nothing from the network makes the wire raise -------------------------------------------

_HEADER_NAMES = [
    "date",
    "retry-after",
    "retry-after-ms",
    *(
        f"anthropic-ratelimit-{dim}-{part}"
        for dim in ("requests", "tokens", "input-tokens", "output-tokens")
        for part in ("limit", "remaining", "reset")
    ),
]
_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True).map(str),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT")),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=3),
    max_leaves=12,
)
_ERROR_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["rate_limit_error", "billing_error", "x"]) | _JSON,
        "message": st.sampled_from(
            ["credit balance is too low", "regain access on 2999-99-99 at 99:99 UTC"]
        )
        | _JSON,
        "details": st.fixed_dictionaries(
            {},
            optional={
                "error_code": st.sampled_from(sorted({"enforced_spend_limit_reached", "x"})) | _JSON
            },
        )
        | _JSON,
    },
)


@given(
    status=st.integers(100, 599),
    headers=st.dictionaries(st.sampled_from(_HEADER_NAMES), _VALUES),
    body=st.one_of(
        st.binary(max_size=200),
        _JSON.map(lambda v: json.dumps(v).encode()),
        _ERROR_VALUES.map(lambda e: json.dumps({"type": "error", "error": e}).encode()),
    ),
    now=st.floats(0, 4e9),
)
def test_nothing_from_the_network_makes_the_wire_raise(
    status: int, headers: dict[str, str], body: bytes, now: float
) -> None:
    outcome = WIRE.classify(status, headers, body, now)
    assert isinstance(outcome.kind, OutcomeKind)
    if outcome.retry_at is not None:
        assert outcome.retry_at >= now
    for obs in WIRE.observations(headers, now):
        assert obs.limit is None or obs.limit >= 0
        assert obs.reset_at is None or obs.reset_at >= now
    WIRE.estimate_demand("POST", "/v1/messages", body)
    annotated = WIRE.annotate_error(body, "note")
    assert annotated is None or b"note" in annotated


def test_demand_names_the_requests_model() -> None:
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []}).encode()
    assert WIRE.estimate_demand("POST", "/v1/messages", body).model == "claude-sonnet-4-5"
    assert WIRE.estimate_demand("GET", "/v1/models", b"").model is None
