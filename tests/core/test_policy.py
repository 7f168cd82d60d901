"""Key and pool policies: each one as a filter or preference of `KeyPool.select`."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyrouter import ConfigError, Key
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.policy import PoolPolicy
from keyrouter.core.pool import KeyPool
from keyrouter.core.quota import Demand
from keyrouter.core.rules import Schedule
from keyrouter.core.state import StateBook

MONDAY_NOON = float(calendar.timegm((2026, 11, 30, 12, 0, 0)))  # a Monday, 12:00 UTC


def key(n: int, **policy: object) -> Key:
    return Key(f"sk-policy-{n:020d}", name=f"k{n}", **policy)  # type: ignore[arg-type]


def make_pool(*keys: Key, policy: PoolPolicy | None = None) -> KeyPool:
    return KeyPool(keys, book=StateBook(), policy=policy)


def ask(model: str | None = None) -> Demand:
    return Demand({"requests": 1.0}, model)


def warm(pool: KeyPool, now: float = 0.0) -> None:
    """One answered request per key: the scopes stop probing one request at a time."""
    for k in pool.keys:
        decision = pool.select(ask(), now, exclude=[o.id for o in pool.keys if o != k])
        assert decision.lease is not None
        pool.settle(decision.lease, Outcome.success(), now)


# -- schedules ---------------------------------------------------------------------------------


def test_schedule_hours_wrap_midnight_and_days_limit_them() -> None:
    night = Schedule(hours="22-06")
    assert not night.is_open(MONDAY_NOON)
    assert night.is_open(MONDAY_NOON + 11 * 3600)  # 23:00
    assert night.is_open(MONDAY_NOON + 17 * 3600)  # Tuesday 05:00
    assert night.opens_at(MONDAY_NOON) == MONDAY_NOON + 10 * 3600
    weekend = Schedule(days="sat-sun")
    assert not weekend.is_open(MONDAY_NOON)
    assert weekend.opens_at(MONDAY_NOON) == MONDAY_NOON - 12 * 3600 + 5 * 86400
    office = Schedule(hours=["9-17"], days=["mon", "tue", "wed", "thu", "fri"])
    assert office.is_open(MONDAY_NOON)
    assert not office.is_open(MONDAY_NOON + 5 * 86400)
    assert Schedule(hours="0-24").is_open(MONDAY_NOON)


@pytest.mark.parametrize(
    ("hours", "days", "field"),
    [
        ("25-3", "", "schedule.hours"),
        ("9-9", "", "schedule.hours"),
        ("", "someday", "schedule.days"),
    ],
)
def test_bad_schedules_name_the_field(hours: str, days: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Schedule(hours=hours, days=days)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [("tier", "1"), ("max_in_flight", 0), ("labels", [""]), ("allow_models", [3])],
)
def test_bad_key_policies_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        key(1, **{field: value})
    assert str(caught.value.field).endswith(field)


def test_key_policies_are_normalised() -> None:
    k = key(1, labels="team-a", allow_models="GPT-4o*", deny_models=["*-preview"])
    assert k.labels == frozenset({"team-a"})
    assert k.allow_models == ("gpt-4o*",)
    assert k.deny_models == ("*-preview",)
    assert "secret" not in repr(k)
    assert "policy-0" not in repr(k)


# -- labels ------------------------------------------------------------------------------------


def test_a_pool_uses_only_keys_with_its_labels_and_says_so() -> None:
    pool = make_pool(
        key(1, labels=["team-b"]),
        key(2, labels=["team-a", "eu"]),
        policy=PoolPolicy(labels=frozenset({"team-a"})),
    )
    for _ in range(4):
        decision = pool.select(ask(), 0.0)
        assert decision.key is not None
        assert decision.key.name == "k2"
        refusal = next(r for r in decision.refused if r.key == "k1")
        assert refusal.policy == "labels"
        assert refusal.permanent
        assert "team-a" in refusal.reason
        pool.settle(decision.lease, Outcome.success(), 0.0)  # type: ignore[arg-type]


def test_labels_no_key_carries_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no key carries"):
        make_pool(key(1), policy=PoolPolicy(labels=frozenset({"x"})))


# -- tiers -------------------------------------------------------------------------------------


def test_a_higher_tier_serves_only_when_no_lower_tier_key_can() -> None:
    free, paid = key(1, tier=0), key(2, tier=1)
    pool = make_pool(paid, free)
    warm(pool)
    chosen = []
    for _ in range(6):
        decision = pool.select(ask(), 1.0)
        assert decision.lease is not None
        chosen.append(decision.key)
        pool.settle(decision.lease, Outcome.success(), 1.0)
    assert chosen == [free] * 6
    # The free key is rate limited: the paid tier takes over, then gives way again.
    decision = pool.select(ask(), 2.0)
    assert decision.lease is not None
    pool.settle(decision.lease, Outcome(OutcomeKind.RATE_LIMITED, 429, retry_at=10.0), 2.0)
    decision = pool.select(ask(), 3.0)
    assert decision.key == paid
    pool.settle(decision.lease, Outcome.success(), 3.0)  # type: ignore[arg-type]
    assert pool.select(ask(), 11.0).key == free


# -- models ------------------------------------------------------------------------------------


def test_model_rules_refuse_for_this_request_only() -> None:
    mini_only = key(1, allow_models=["gpt-4o-mini"])
    no_preview = key(2, deny_models=["*-preview"])
    pool = make_pool(mini_only, no_preview)
    warm(pool)
    decision = pool.select(ask("gpt-4o"), 1.0)
    assert decision.key == no_preview
    refusal = next(r for r in decision.refused if r.key == "k1")
    assert refusal.policy == "models"
    assert refusal.for_this_request
    assert "gpt-4o-mini" in refusal.reason
    pool.settle(decision.lease, Outcome.success(), 1.0)  # type: ignore[arg-type]
    # The same key serves the next request at once when its model is allowed.
    seen = set()
    for _ in range(4):
        decision = pool.select(ask("GPT-4o-mini"), 1.0)
        assert decision.lease is not None
        seen.add(decision.key)
        pool.settle(decision.lease, Outcome.success(), 1.0)
    assert seen == {mini_only, no_preview}
    decision = pool.select(ask("o1-preview"), 1.0)
    assert decision.key is None
    assert decision.retry_at is None


def test_forbids_names_each_keys_policy_when_no_key_may_serve_the_model() -> None:
    pool = make_pool(key(1, allow_models=["claude-*"]), key(2, deny_models=["gpt-*"]))
    assert pool.forbids(ask("claude-sonnet-4-5")) is None
    assert pool.forbids(ask(None)) is None
    message = pool.forbids(ask("gpt-4o"))
    assert message is not None
    assert "k1: policy allow_models" in message
    assert "k2: policy deny_models 'gpt-*'" in message


def test_requests_without_a_model_are_not_held_to_model_rules() -> None:
    pool = make_pool(key(1, allow_models=["gpt-4o-mini"]))
    assert pool.select(ask(None), 0.0).key is not None


# -- max in flight -----------------------------------------------------------------------------


def test_a_key_at_its_max_in_flight_is_out_until_one_of_its_requests_settles() -> None:
    narrow, wide = key(1, max_in_flight=1, weight=100.0), key(2)
    pool = make_pool(narrow, wide)
    warm(pool)
    first = pool.select(ask(), 1.0)
    assert first.key == narrow
    second = pool.select(ask(), 1.0)
    assert second.key == wide
    refusal = next(r for r in second.refused if r.key == "k1")
    assert refusal.policy == "max_in_flight"
    assert "1 of 1" in refusal.reason
    pool.settle(first.lease, Outcome.success(), 1.01)  # type: ignore[arg-type]
    assert pool.select(ask(), 1.01).key == narrow


def test_when_every_key_is_at_its_limit_the_decision_says_when_to_look_again() -> None:
    pool = make_pool(key(1, max_in_flight=1))
    warm(pool)
    held = pool.select(ask(), 1.0)
    decision = pool.select(ask(), 1.0)
    assert decision.lease is None
    assert decision.retry_at is not None
    assert decision.retry_at - 1.0 < 1.0
    pool.settle(held.lease, Outcome.success(), 1.0)  # type: ignore[arg-type]
    assert pool.select(ask(), 1.0).lease is not None


# -- schedules in the pool ---------------------------------------------------------------------


def test_a_key_outside_its_schedule_is_parked_until_its_window_opens() -> None:
    night = key(1, schedule=Schedule(hours="22-06"))
    pool = make_pool(night)
    decision = pool.select(ask(), MONDAY_NOON)
    assert decision.lease is None
    assert decision.retry_at == MONDAY_NOON + 10 * 3600
    assert decision.refused[0].policy == "schedule"
    assert pool.select(ask(), MONDAY_NOON + 9 * 3600).lease is None
    assert pool.select(ask(), MONDAY_NOON + 10 * 3600).key == night


# -- pool limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("max_attempts", 0), ("max_wait", -1.0)])
def test_bad_pool_limits_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        PoolPolicy(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field


@settings(max_examples=200, deadline=None)
@given(
    hours=st.lists(
        st.tuples(st.integers(0, 23), st.integers(1, 24)).filter(lambda r: r[0] % 24 != r[1] % 24),
        max_size=3,
    ),
    days=st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), max_size=3),
    now=st.floats(min_value=MONDAY_NOON, max_value=MONDAY_NOON + 30 * 86400),
)
def test_a_schedule_opens_at_the_first_open_hour(
    hours: list[tuple[int, int]], days: list[str], now: float
) -> None:
    schedule = Schedule(hours=[f"{a}-{b}" for a, b in hours], days=days)
    opens = schedule.opens_at(now)
    assert schedule.is_open(opens)
    assert opens >= now
    # No open hour is skipped between now and the opening.
    hour = 3600.0 * (now // 3600.0 + 1)
    while hour < opens:
        assert not schedule.is_open(hour)
        hour += 3600.0
