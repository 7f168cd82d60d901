"""The generic wire: credential placement, status classes, rate-limit header families."""

from __future__ import annotations

import pytest

from keyrouter.core.outcome import OutcomeKind
from keyrouter.errors import ConfigError
from keyrouter.providers.generic import GenericWire, statuses_from

NOW = 1_760_000_000.0


def test_header_credential_round_trip_with_prefix() -> None:
    wire = GenericWire("wx", header="Authorization", prefix="Token ")
    headers: dict[str, str] = {}
    wire.write_credential(headers, "abc123")
    assert headers == {"Authorization": "Token abc123"}
    assert wire.credential({"Authorization": "token abc123"}) == "abc123"
    assert GenericWire("wx").credential({"x-api-key": "k"}) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.SUCCESS),
        (304, OutcomeKind.SUCCESS),
        (400, OutcomeKind.REQUEST_ERROR),
        (401, OutcomeKind.INVALID_KEY),
        (402, OutcomeKind.QUOTA_EXHAUSTED),
        (403, OutcomeKind.FORBIDDEN),
        (404, OutcomeKind.REQUEST_ERROR),
        (408, OutcomeKind.SERVER_ERROR),
        (429, OutcomeKind.RATE_LIMITED),
        (503, OutcomeKind.SERVER_ERROR),
    ],
)
def test_default_status_classes(status: int, kind: OutcomeKind) -> None:
    assert GenericWire("wx").classify(status, {}, b"", NOW).kind is kind


def test_overrides() -> None:
    wire = GenericWire("wx", statuses=statuses_from({403: "rate_limited", 500: None}))
    assert wire.classify(403, {}, b"", NOW).kind is OutcomeKind.RATE_LIMITED
    assert wire.classify(500, {}, b"", NOW).kind is OutcomeKind.REQUEST_ERROR
    assert wire.classify(502, {}, b"", NOW).kind is OutcomeKind.SERVER_ERROR


@pytest.mark.parametrize("bad", [{200: "rate_limited"}, {429: "soon"}, {"429": None}])
def test_bad_overrides(bad: dict[int, str | None]) -> None:
    with pytest.raises(ConfigError, match="statuses"):
        statuses_from(bad)


@pytest.mark.parametrize(
    ("headers", "retry_in"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"ratelimit-remaining": "0", "ratelimit-reset": "12"}, 12.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}, 30.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW + 20) * 1000)}, 20.0),
        ({"ratelimit": '"default";r=0;t=9'}, 9.0),
        ({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "30"}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_when_a_429_may_come_back(headers: dict[str, str], retry_in: float | None) -> None:
    outcome = GenericWire("wx").classify(429, headers, b"", NOW)
    if retry_in is None:
        assert outcome.retry_at is None
    else:
        assert outcome.retry_at == pytest.approx(NOW + retry_in)


def test_observations_from_each_header_family() -> None:
    wire = GenericWire("wx")
    (ietf,) = wire.observations(
        {"ratelimit-limit": "100, 100;w=60", "ratelimit-remaining": "42", "ratelimit-reset": "5"},
        NOW,
    )
    assert (ietf.limit, ietf.remaining, ietf.reset_at) == (100.0, 42.0, NOW + 5)
    (structured,) = wire.observations(
        {"ratelimit": '"default";r=50;t=30', "ratelimit-policy": '"default";q=100;w=60'}, NOW
    )
    assert (structured.limit, structured.remaining, structured.reset_at) == (100, 50, NOW + 30)
    (github,) = wire.observations(
        {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}, NOW
    )
    assert (github.limit, github.remaining, github.reset_at) == (5000, 4999, None)
    assert wire.observations({"ratelimit-remaining": "lots"}, NOW) == ()
    assert wire.observations({}, NOW) == ()


def test_no_key_error_is_json_with_the_message() -> None:
    status, body = GenericWire("wx").no_key_error(OutcomeKind.INVALID_KEY, "keyrouter: none")
    assert status == 401
    assert b"keyrouter: none" in body
    assert GenericWire("wx").no_key_error(OutcomeKind.RATE_LIMITED, "x")[0] == 429


def test_a_spent_quota_may_say_weeks_where_a_rate_limit_may_not() -> None:
    wire = GenericWire("wx", statuses=statuses_from({402: "quota_exhausted"}))
    ten_days = {"retry-after": str(10 * 86_400)}
    assert wire.classify(402, ten_days, b"", NOW).retry_at == pytest.approx(NOW + 10 * 86_400)
    assert wire.classify(429, ten_days, b"", NOW).retry_at is None, "no 10-day cooldown"
