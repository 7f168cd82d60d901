"""Header parsers: exact on what providers send, silent (None) on anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyrouter.providers._parse import (
    MAX_COOLDOWN_SECONDS,
    MAX_WAIT_SECONDS,
    parse_count,
    parse_go_duration,
    parse_retry_after,
    parse_rfc3339,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1h2m3.5s", 3723.5),
        ("21m36.001s", 1296.001),
        ("83h10m39.057s", 299439.057),
        ("115ms", 0.115),
        ("0", 0.0),
        ("0s", 0.0),
        ("500us", 0.0005),
    ],
)
def test_go_durations_as_openai_sends_them(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "s", "1", "1x", "-1s", "1s2", "abc", "1.2.3s", "9" * 80 + "s"]
)
def test_bad_go_durations_are_none(text: str) -> None:
    assert parse_go_duration(text) is None


def test_counts() -> None:
    assert parse_count("39923") == 39923
    assert parse_count(" 7 ") == 7
    for bad in ("-1", "nan", "inf", "", "x", None, "1" * 100):
        assert parse_count(bad) is None


def test_rfc3339_as_anthropic_sends_it() -> None:
    assert parse_rfc3339("2025-08-21T12:40:59Z") == 1755780059.0
    assert parse_rfc3339("2025-08-21T12:40:59.5+00:00") == 1755780059.5
    assert parse_rfc3339("yesterday") is None


def test_retry_after_prefers_milliseconds_then_seconds_then_http_date() -> None:
    assert parse_retry_after("20", "20000", 0.0) == 20.0
    assert parse_retry_after("20", "1500", 0.0) == 1.5
    assert parse_retry_after("7", None, 0.0) == 7.0
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", None, now) == pytest.approx(20.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", None, now) == 0.0
    assert parse_retry_after("soon", None, now) is None
    assert parse_retry_after(str(10**12), None, now) is None
    assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT", None, now) is None  # not a month


def test_a_rate_limit_cooldown_beyond_a_day_is_refused_as_nonsense() -> None:
    now = 1_700_000_000.0
    a_day = MAX_COOLDOWN_SECONDS
    assert parse_retry_after(str(int(a_day)), None, now) == a_day
    assert parse_retry_after(str(int(a_day) + 1), None, now) is None
    assert parse_retry_after(None, str(int(a_day * 1000) + 1000), now) is None
    assert parse_retry_after("Thu, 16 Nov 2023 22:13:20 GMT", None, now) is None  # in 2 days
    # A caller reading a spent quota's reset believes up to a month.
    assert parse_retry_after(str(int(a_day) * 10), None, now, MAX_WAIT_SECONDS) == a_day * 10


text = st.one_of(st.text(max_size=200), st.from_regex(r"[0-9hmsu.µ\-]{0,20}", fullmatch=True))


@given(text)
def test_no_parser_raises_on_any_text(value: str) -> None:
    for parse in (parse_count, parse_go_duration, parse_rfc3339):
        result = parse(value)
        assert result is None or isinstance(result, float)
    wait = parse_retry_after(value, value, 1_700_000_000.0)
    assert wait is None or 0 <= wait <= MAX_WAIT_SECONDS
    duration = parse_go_duration(value)
    assert duration is None or 0 <= duration <= MAX_WAIT_SECONDS
