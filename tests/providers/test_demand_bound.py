"""`demand_bound`: never below the estimate, and None whenever only a parse can price the body."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrouter.providers.azure import WIRE as AZURE
from keyrouter.providers.openai import WIRE

CHAT = "/v1/chat/completions"


def body_of(payload: object) -> bytes:
    # As httpx and httpx2 encode an SDK's JSON: compact, UTF-8.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


text = st.text(max_size=300)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "developer"]), "content": text}
) | st.fixed_dictionaries(
    {
        "role": st.just("user"),
        "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text})),
    }
)
extras = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2),
        "user": text,
        "max_tokens": st.integers(1, 100_000),
        "n": st.integers(1, 8),
        "stream": st.booleans(),
        "tools": st.lists(
            st.fixed_dictionaries(
                {"type": st.just("function"), "function": st.fixed_dictionaries({"name": text})}
            ),
            max_size=3,
        ),
    },
)


@given(
    st.lists(message, max_size=6),
    extras,
    st.sampled_from([CHAT, "/v1/embeddings", "/v1/responses"]),
)
def test_the_bound_is_never_below_the_estimate(
    messages: list[object], more: dict[str, object], path: str
) -> None:
    body = body_of({"model": "gpt-4o-mini", "messages": messages, **more})
    estimate = WIRE.estimate_demand("POST", path, body)
    bound = WIRE.demand_bound("POST", path, body)
    if bound is None:
        return
    assert bound.get("requests") == estimate.get("requests") == 1
    assert bound.get("tokens") >= estimate.get("tokens")
    assert bound.model == estimate.model == "gpt-4o-mini"


def test_a_small_plain_chat_gets_a_bound_close_to_its_estimate() -> None:
    body = body_of({"messages": [{"role": "user", "content": "Say hello"}], "model": "m"})
    bound = WIRE.demand_bound("POST", CHAT, body)
    assert bound is not None
    estimate = WIRE.estimate_demand("POST", CHAT, body).get("tokens")
    assert estimate <= bound.get("tokens") <= estimate + len(body) / 4


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "m", "max_tokens": 10, "messages": []},
        {"model": "m", "max_completion_tokens": 10, "messages": []},
        {"model": "m", "max_output_tokens": 10, "input": "hi"},
        {"model": "m", "n": 3, "messages": []},
        {"model": "m", "messages": [{"role": "user", "content": "data:image/png;base64,AAAA"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]},
    ],
    ids=["max_tokens", "max_completion_tokens", "max_output_tokens", "n", "media", "large"],
)
def test_only_a_parse_prices_output_caps_choices_media_and_large_bodies(
    payload: dict[str, object],
) -> None:
    assert WIRE.demand_bound("POST", CHAT, body_of(payload)) is None


def test_bodies_that_are_not_json_objects_are_left_to_the_estimate() -> None:
    assert WIRE.demand_bound("POST", "/v1/files", b"--boundary\r\n...") is None
    assert WIRE.demand_bound("POST", CHAT, b"[1, 2]") is None


def test_a_request_without_a_body_costs_one_request() -> None:
    bound = WIRE.demand_bound("GET", "/v1/models", b"")
    assert bound is not None
    assert dict(bound.units) == {"requests": 1.0}


def test_the_model_is_named_only_when_the_body_names_one_model() -> None:
    one = WIRE.demand_bound("POST", CHAT, body_of({"model": "gpt-4o", "messages": []}))
    assert one is not None
    assert one.model == "gpt-4o"
    none = WIRE.demand_bound("POST", CHAT, body_of({"messages": []}))
    assert none is not None
    assert none.model is None


def test_azure_bounds_name_the_deployment() -> None:
    body = body_of({"model": "ignored", "messages": []})
    bound = AZURE.demand_bound("POST", "/openai/deployments/my-gpt4o/chat/completions", body)
    assert bound is not None
    assert bound.model == "my-gpt4o"
