"""The Redis store runs the shared-state steps in Lua; the memory and SQLite stores in Python.
The same random sequence of reservations and answers must leave both in the same state."""

from __future__ import annotations

import random

import pytest

from keyrouter.core.decision import Lease
from keyrouter.core.keys import Key
from keyrouter.core.outcome import Outcome, OutcomeKind
from keyrouter.core.quota import Demand, LimitObservation
from keyrouter.core.store import Grant
from keyrouter.stores.memory import MemoryStore
from keyrouter.stores.redis_store import RedisStore
from tests.stores.conftest import REDIS_URL

KEYS = [Key(f"sk-lua-{i}-000000000000000000000", scope=f"org-{i % 2}") for i in range(3)]
START = 1_900_000_000.0


def _script(seed: int) -> list[tuple[str, object]]:
    """A random but reproducible run: reservations, answers with headers, 429s, 401s."""
    rng = random.Random(seed)
    now, seq, ops, open_leases = START, 0, [], []
    for _ in range(80):
        now += rng.choice([0.0, 0.05, 0.5, 2.0])
        if open_leases and rng.random() < 0.5:
            lease = open_leases.pop(rng.randrange(len(open_leases)))
            roll = rng.random()
            if roll < 0.6:
                limit = rng.choice([10.0, 20.0])
                obs = [
                    LimitObservation("requests", limit, rng.randint(0, int(limit)), now + 30, now),
                    LimitObservation("tokens", 5000.0, rng.randint(0, 5000), now + 10, now),
                ]
                ops.append(("settle", (lease, Outcome.success(), obs, now)))
            elif roll < 0.85:
                retry = Outcome(OutcomeKind.RATE_LIMITED, 429, "rl", now + rng.choice([1, 5]))
                ops.append(("settle", (lease, retry, [], now)))
            elif roll < 0.95:
                ops.append(("settle", (lease, None, [], now)))
            else:
                ops.append(
                    ("settle", (lease, Outcome(OutcomeKind.INVALID_KEY, 401, "bad"), [], now))
                )
        else:
            seq += 1
            key = rng.choice(KEYS)
            units = {"requests": 1.0, "tokens": float(rng.choice([100, 900, 2500]))}
            lease = Lease(key, key.scope_id, seq, Demand(units), now)
            open_leases.append(lease)
            ops.append(("reserve", (lease, now)))
    return ops


def _agree(python: Grant | None, lua: Grant | None) -> None:
    """Same decision, same state; numbers equal to Lua's JSON precision (14 digits)."""
    assert python is not None
    assert lua is not None
    assert (python.granted, python.scope.state, python.key.state) == (
        lua.granted,
        lua.scope.state,
        lua.key.state,
    )
    assert (python.retry_at is None) == (lua.retry_at is None)
    if python.retry_at is not None:
        assert python.retry_at == pytest.approx(lua.retry_at, rel=1e-9, abs=1e-3)
    assert python.scope.until == pytest.approx(lua.scope.until, rel=1e-12)
    assert sorted(python.scope.dimensions) == sorted(lua.scope.dimensions)
    for name, mine in python.scope.dimensions.items():
        theirs = lua.scope.dimensions[name]
        assert mine.limit == theirs.limit
        assert (mine.rate is None) == (theirs.rate is None)
        assert (mine.rate or 0.0) == pytest.approx(theirs.rate or 0.0, rel=1e-9)
        assert mine.as_of == pytest.approx(theirs.as_of, rel=1e-12)
        assert mine.level == pytest.approx(theirs.level, rel=1e-6, abs=1e-3)


@pytest.mark.parametrize("seed", range(30))
def test_the_lua_script_and_the_python_steps_agree(seed: int, redis_prefix: str) -> None:
    memory = MemoryStore()
    redis = RedisStore(REDIS_URL, prefix=redis_prefix)
    try:
        for op, args in _script(seed):
            if op == "reserve":
                _agree(memory.reserve(*args), redis.reserve(*args))  # type: ignore[arg-type]
            else:
                memory.settle(*args)  # type: ignore[arg-type]
                redis.settle(*args)  # type: ignore[arg-type]
                memory.flush()
                redis.flush()
    finally:
        redis.close()
        memory.close()
