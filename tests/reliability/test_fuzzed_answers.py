"""Rate-limit headers, retry-after values and error bodies fuzzed through whole SDK calls.

The fake provider sends exactly the fuzzed bytes (huge, negative, non-numeric, past and future
dates, unicode sent as UTF-8) on one key's answer; the pool's other key is healthy. The call
must never raise anything but the SDK's own error for the status sent, and nonsense must not
park a key: the next call goes through at once.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyrouter import KeyState
from keyrouter.core.registry import default_book
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.reliability._sdks import ANTHROPIC, GEMINI, OPENAI, SDKS, Sdk, outcome

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
TIMEOUT = 5.0
HEADER_NAMES = [
    "retry-after",
    "retry-after-ms",
    "date",
    *(
        f"x-ratelimit-{f}-{d}"
        for f in ("limit", "remaining", "reset")
        for d in ("requests", "tokens")
    ),
    *(
        f"anthropic-ratelimit-{d}-{f}"
        for f in ("limit", "remaining", "reset")
        for d in ("requests", "tokens", "input-tokens", "output-tokens")
    ),
]
FAILOVER_STATUSES = [401, 403, 408, 429, 500, 502, 503, 504]  # 402: not a Gemini status
REQUEST_ERROR_STATUSES = [400, 404, 409, 422]
_FIELD_VALUE = re.compile(r"[\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?")


def _wire_text(text: str) -> str:
    """`text` as a header value on the wire: UTF-8 bytes, control characters replaced."""
    raw = text.encode("utf-8").decode("latin-1")
    cleaned = "".join(c if c == "\t" or " " <= c != "\x7f" else "?" for c in raw).strip()
    return cleaned if _FIELD_VALUE.fullmatch(cleaned) else "x"


def _http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


_moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1))
header_values = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.floats().map(str),
    st.text(max_size=80).map(_wire_text),
    _moments.map(_http_date),
    _moments.map(lambda m: m.isoformat() + "Z"),
    st.sampled_from(["1s", "6m0s", "-1s", "1e309s", "99999999h", "0", "nan", "-inf", "1h2m3.5s"]),
)
fuzzed_headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=6)
_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_detail = st.fixed_dictionaries(
    {
        "@type": st.sampled_from(
            [f"type.googleapis.com/google.rpc.{t}" for t in ("RetryInfo", "QuotaFailure")]
        ),
        "retryDelay": _json | st.sampled_from(["30s", "-1s", "1e400s", "0.5s"]),
        "violations": _json,
    }
)
error_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    _json.map(lambda v: json.dumps({"error": v}).encode()),
    st.fixed_dictionaries(
        {"type": _json, "code": _json, "message": _json, "details": st.lists(_detail, max_size=2)}
    ).map(lambda e: json.dumps({"error": e}).encode()),
)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with (
        FakeProvider([FakeKey(k, rpm=10**6, tpm=10**9) for k in OPENAI.keys]) as openai_fake,
        FakeProvider([FakeKey(k, rpm=10**6, tpm=10**9) for k in ANTHROPIC.keys]) as claude_fake,
        FakeProvider([FakeKey(k) for k in GEMINI.keys]) as gemini_fake,
    ):
        yield {"openai": openai_fake, "anthropic": claude_fake, "gemini": gemini_fake}


@pytest.fixture(scope="module")
def routed(fakes: dict[str, FakeProvider]) -> dict[str, Any]:
    """One routed client per SDK over both keys (building an SDK client is slow)."""
    return {s.name: s.routed(fakes[s.name], list(s.keys), TIMEOUT) for s in SDKS}


@pytest.fixture(scope="module")
def plain(fakes: dict[str, FakeProvider]) -> dict[str, Any]:
    return {s.name: s.plain(fakes[s.name], s.keys[0], TIMEOUT) for s in SDKS}


def fresh(fake: FakeProvider) -> None:
    fake.clear_faults()
    fake.reset_stats()
    default_book().reset()


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
@FUZZ
@given(
    status=st.sampled_from(FAILOVER_STATUSES), headers=fuzzed_headers, body=error_bodies | st.none()
)
def test_a_fuzzed_error_on_one_key_still_succeeds_on_the_other(
    fakes: dict[str, FakeProvider],
    routed: dict[str, Any],
    sdk: Sdk,
    status: int,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    fake = fakes[sdk.name]
    fresh(fake)
    bad, good = sdk.keys
    fake.inject(Fault.status(status, headers=headers, body=body), key=bad, times=1)
    client = routed[sdk.name]
    assert outcome(lambda: sdk.call(client, False)) is None
    assert fake.stats(good).count(200) == 1
    _assert_nothing_held(client)


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
@FUZZ
@given(
    status=st.sampled_from(REQUEST_ERROR_STATUSES),
    headers=fuzzed_headers,
    body=error_bodies | st.none(),
)
def test_a_fuzzed_request_error_reaches_the_caller_as_the_sdks_own_error(
    fakes: dict[str, FakeProvider],
    routed: dict[str, Any],
    plain: dict[str, Any],
    sdk: Sdk,
    status: int,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    fake = fakes[sdk.name]
    fault = Fault.status(status, headers=headers, body=body)
    fresh(fake)
    fake.inject(fault, times=1)
    alone = outcome(lambda: sdk.call(plain[sdk.name], False))
    fresh(fake)
    fake.inject(fault, times=1)
    client = routed[sdk.name]
    assert outcome(lambda: sdk.call(client, False)) is alone
    assert sum(fake.stats(k).requests for k in sdk.keys) == 1  # the request's fault: not resent
    _assert_nothing_held(client)


@pytest.mark.parametrize("sdk", SDKS, ids=[s.name for s in SDKS])
@FUZZ
@given(headers=fuzzed_headers)
def test_fuzzed_limit_headers_on_a_success_never_break_the_next_call(
    fakes: dict[str, FakeProvider], routed: dict[str, Any], sdk: Sdk, headers: dict[str, str]
) -> None:
    fake = fakes[sdk.name]
    fresh(fake)
    fake.inject(Fault.override_headers(headers), times=1)
    client = routed[sdk.name]
    assert outcome(lambda: sdk.call(client, False)) is None
    started = time.monotonic()
    assert outcome(lambda: sdk.call(client, False)) is None
    assert time.monotonic() - started < TIMEOUT  # not parked behind a nonsense reset
    _assert_nothing_held(client)


def _assert_nothing_held(client: Any) -> None:
    assert all(s.in_flight == 0 for s in client.key_pool.snapshot())


NONSENSE_RETRY_AFTER = [
    "soon",
    "-5",
    "1e999",
    "9" * 100,
    "Mon, 99 Foo 2025 25:61:61 GMT",
    "\u2603".encode().decode("latin-1"),
    _http_date(datetime.now(UTC) + timedelta(days=365 * 80)),
]


@pytest.mark.parametrize("value", NONSENSE_RETRY_AFTER)
def test_a_nonsense_retry_after_is_ignored_with_a_debug_log(
    fakes: dict[str, FakeProvider],
    routed: dict[str, Any],
    value: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fakes["openai"]
    fresh(fake)
    bad, _ = OPENAI.keys
    fake.inject(Fault.status(429, headers={"retry-after": value}), key=bad, times=1)
    client = routed["openai"]
    with caplog.at_level(logging.DEBUG, logger="keyrouter"):
        assert outcome(lambda: OPENAI.call(client, False)) is None
    assert any("ignoring" in r.getMessage() for r in caplog.records if r.name == "keyrouter")
    (cooled,) = [s for s in client.key_pool.snapshot() if s.state is KeyState.COOLING]
    assert cooled.until is not None
    assert cooled.until - time.time() <= default_book().settings.default_cooldown_seconds


def test_a_retry_after_date_in_the_past_means_now(
    fakes: dict[str, FakeProvider], routed: dict[str, Any]
) -> None:
    fake = fakes["openai"]
    fresh(fake)
    bad, _ = OPENAI.keys
    past = _http_date(datetime.now(UTC) - timedelta(days=3))
    fake.inject(Fault.status(429, headers={"retry-after": past}), key=bad, times=1)
    client = routed["openai"]
    assert outcome(lambda: OPENAI.call(client, False)) is None
    assert {s.state for s in client.key_pool.snapshot()} == {KeyState.AVAILABLE}
