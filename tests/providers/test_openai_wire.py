"""OpenAI's wire format: headers, errors and demand, as the real API sends them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrouter.core.outcome import OutcomeKind
from keyrouter.providers.openai import WIRE

NOW = 1_700_000_000.0

# Shapes taken from real recorded traffic (a 429 on the requests-per-minute limit).
REAL_429_HEADERS = {
    "retry-after": "20",
    "retry-after-ms": "20000",
    "x-ratelimit-limit-requests": "200",
    "x-ratelimit-limit-tokens": "40000",
    "x-ratelimit-remaining-requests": "196",
    "x-ratelimit-remaining-tokens": "39923",
    "x-ratelimit-reset-requests": "21m36.001s",
    "x-ratelimit-reset-tokens": "115ms",
}


def error(code: str | None, kind: str, message: str = "m") -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()


def test_observations_from_real_headers() -> None:
    found = {o.dimension: o for o in WIRE.observations(REAL_429_HEADERS, NOW)}
    assert found["requests"].limit == 200
    assert found["requests"].remaining == 196
    assert found["requests"].reset_at == pytest.approx(NOW + 1296.001)
    assert found["tokens"].reset_at == pytest.approx(NOW + 0.115)


def test_no_headers_no_observations() -> None:
    assert WIRE.observations({}, NOW) == ()


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, b"", OutcomeKind.SUCCESS),
        (429, error("rate_limit_exceeded", "requests"), OutcomeKind.RATE_LIMITED),
        (429, error("insufficient_quota", "insufficient_quota"), OutcomeKind.QUOTA_EXHAUSTED),
        (429, error("project_spend_limit_exceeded", "x"), OutcomeKind.QUOTA_EXHAUSTED),
        (429, b"not json", OutcomeKind.RATE_LIMITED),
        (401, error("invalid_api_key", "invalid_request_error"), OutcomeKind.INVALID_KEY),
        (403, error("unsupported_country_region_territory", "x"), OutcomeKind.FORBIDDEN),
        (500, error(None, "server_error"), OutcomeKind.SERVER_ERROR),
        (
            503,
            b"upstream connect error or disconnect/reset before headers",
            OutcomeKind.SERVER_ERROR,
        ),
        (404, error("model_not_found", "invalid_request_error"), OutcomeKind.REQUEST_ERROR),
        (400, error(None, "invalid_request_error"), OutcomeKind.REQUEST_ERROR),
    ],
)
def test_classification(status: int, body: bytes, kind: OutcomeKind) -> None:
    assert WIRE.classify(status, {}, body, NOW).kind is kind


def test_rate_limit_retry_at_comes_from_retry_after() -> None:
    outcome = WIRE.classify(429, REAL_429_HEADERS, error("rate_limit_exceeded", "requests"), NOW)
    assert outcome.retry_at == pytest.approx(NOW + 20)
    assert outcome.reason == "rate_limit_exceeded"


def test_rate_limit_without_retry_after_uses_the_spent_dimensions_reset() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2.5s",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "1m",
    }
    outcome = WIRE.classify(429, headers, b"", NOW)
    assert outcome.retry_at == pytest.approx(NOW + 2.5)


def test_credential_roundtrip() -> None:
    headers: dict[str, str] = {}
    WIRE.write_credential(headers, "sk-x")
    assert headers == {"authorization": "Bearer sk-x"}
    assert WIRE.credential({"authorization": "Bearer sk-x"}) == "sk-x"
    assert WIRE.credential({}) is None


def test_demand_counts_prompt_text_and_output_cap() -> None:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x" * 400}],
            "max_completion_tokens": 50,
        }
    ).encode()
    demand = WIRE.estimate_demand("POST", "/v1/chat/completions", body)
    assert demand.get("requests") == 1
    assert demand.get("tokens") == 150


def test_demand_counts_images_as_a_fixed_cost_not_their_bytes() -> None:
    image = "data:image/png;base64," + "A" * 500_000
    body = json.dumps(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}
            ],
        }
    ).encode()
    assert WIRE.estimate_demand("POST", "/v1/chat/completions", body).get("tokens") < 2000


def test_get_requests_cost_one_request_only() -> None:
    assert dict(WIRE.estimate_demand("GET", "/v1/models", b"").units) == {"requests": 1.0}


def test_annotate_error_keeps_the_error_shape() -> None:
    annotated = WIRE.annotate_error(error("rate_limit_exceeded", "requests", "slow"), "note")
    assert annotated is not None
    parsed = json.loads(annotated)["error"]
    assert parsed["message"] == "slow [note]"
    assert parsed["code"] == "rate_limit_exceeded"
    assert WIRE.annotate_error(b"<html>", "note") is None


headers = st.dictionaries(
    st.sampled_from(
        [
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ]
    ),
    st.one_of(
        st.text(max_size=40),
        st.integers(-(10**20), 10**20).map(str),
        st.floats(allow_nan=True).map(str),
    ),
)


@given(
    status=st.integers(100, 599),
    headers=headers,
    body=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
            max_leaves=10,
        ).map(lambda v: json.dumps({"error": v}).encode()),
    ),
)
def test_nothing_from_the_network_makes_the_wire_raise(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    outcome = WIRE.classify(status, headers, body, NOW)
    assert isinstance(outcome.kind, OutcomeKind)
    if outcome.retry_at is not None:
        assert outcome.retry_at >= NOW
    for obs in WIRE.observations(headers, NOW):
        assert obs.limit is None or obs.limit >= 0
    WIRE.estimate_demand("POST", "/v1/chat/completions", body)


def test_demand_names_the_requests_model() -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()
    assert WIRE.estimate_demand("POST", "/v1/chat/completions", body).model == "gpt-4o-mini"
    assert WIRE.estimate_demand("POST", "/v1/embeddings", b'{"input": "x"}').model is None
    assert WIRE.estimate_demand("GET", "/v1/models", b"").model is None
    assert WIRE.estimate_demand("POST", "/v1/responses", b'{"model": 7}').model is None


def test_azure_demand_names_the_deployment_or_the_body_model() -> None:
    from keyrouter.providers.azure import WIRE as AZURE

    body = json.dumps({"model": "ignored", "messages": []}).encode()
    path = "/openai/deployments/my-gpt4o/chat/completions"
    assert AZURE.estimate_demand("POST", path, body).model == "my-gpt4o"
    v1 = json.dumps({"model": "gpt-4o", "input": "hi"}).encode()
    assert AZURE.estimate_demand("POST", "/openai/v1/responses", v1).model == "gpt-4o"
    assert AZURE.estimate_demand("GET", "/openai/deployments/d%2Dx/models", b"").model == "d-x"
