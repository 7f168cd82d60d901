"""Faults on one key or scope over a run of calls: ejected fast, traffic moves, nothing surfaced.

A run is a bounded loop of real SDK calls through keyrouter against the fake provider. The
figures (wasted calls, time to eject, time to re-admit) are recorded for docs/reliability.md;
only counts are asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

import keyrouter
from keyrouter import KeyState, KeyStateChanged
from keyrouter.core.health import BreakerSettings
from keyrouter.core.registry import default_book
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.reliability._sdks import MESSAGES, OPENAI_MODEL

A = "sk-rel-keyfault-000000000000000001"
B = "sk-rel-keyfault-000000000000000002"
C = "sk-rel-keyfault-000000000000000003"
OPEN_SECONDS = 0.5
RUN_SECONDS = 20.0  # every loop stops here at the latest


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    keys = [FakeKey(A, scope="org-a"), FakeKey(B, scope="org-a"), FakeKey(C, scope="org-c")]
    with FakeProvider(keys) as provider:
        yield provider


@pytest.fixture
def events() -> Iterator[list[KeyStateChanged]]:
    seen: list[KeyStateChanged] = []
    remove = keyrouter.on_event(
        lambda e: seen.append(e) if isinstance(e, KeyStateChanged) else None
    )
    yield seen
    remove()


@pytest.fixture
def short_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_book(), "settings", BreakerSettings(open_seconds=OPEN_SECONDS))


def client_for(fake: FakeProvider) -> openai.OpenAI:
    return keyrouter.KeyRoutedOpenAI(
        keys=[A, B, C], base_url=fake.base_url, max_retries=0, objective="round_robin"
    )


def call(client: openai.OpenAI) -> bool:
    """One call; True if it succeeded, False if an error reached the caller."""
    try:
        client.chat.completions.create(model=OPENAI_MODEL, messages=MESSAGES)
    except openai.OpenAIError:
        return False
    return True


def label(secret: str) -> str:
    return keyrouter.Key(secret).label


def test_a_key_revoked_mid_run_is_ejected_after_its_first_401(
    fake: FakeProvider, events: list[KeyStateChanged], figures: object
) -> None:
    client = client_for(fake)
    errors = 0
    for i in range(60):
        if i == 20:
            fake.set_key_status(A, "invalid")
        errors += not call(client)
    assert errors == 0
    assert fake.stats(A).count(401) == 1  # one wasted call, then never again
    assert fake.stats(B).count(200) + fake.stats(C).count(200) + fake.stats(A).count(200) == 60
    (ejected,) = [e for e in events if e.key == label(A)]
    assert ejected.new is KeyState.INVALID
    record = figures.record  # type: ignore[attr-defined]
    record("key revoked mid-run (401 from then on)", "errors surfaced", errors)
    record("key revoked mid-run (401 from then on)", "wasted calls", fake.stats(A).count(401))


def storm(
    fake: FakeProvider, client: openai.OpenAI, events: list[KeyStateChanged], secrets: list[str]
) -> dict[str, float]:
    """5xx on `secrets` until they are all ejected, then recovery until all are back.

    Calls go out back to back; returns the figures measured.
    """
    labels = {label(s) for s in secrets}
    deadline = time.monotonic() + RUN_SECONDS
    errors = calls = 0
    for secret in secrets:
        fake.inject(Fault.status(503), key=secret)
    started = time.monotonic()
    while time.monotonic() < deadline:
        errors += not call(client)
        calls += 1
        opened = {e.key for e in events if e.new is KeyState.CIRCUIT_OPEN}
        if labels <= opened:
            break
    ejected = time.monotonic() - started
    wasted = sum(fake.stats(s).count(503) for s in secrets)
    fake.clear_faults()
    recovered = time.monotonic()
    while time.monotonic() < deadline:
        errors += not call(client)
        calls += 1
        back = {
            e.key for e in events if e.new is KeyState.AVAILABLE and e.old is KeyState.HALF_OPEN
        }
        if labels <= back:
            break
    readmitted = time.monotonic() - recovered
    return {
        "calls": calls,
        "errors": errors,
        "wasted": wasted,
        "eject_s": ejected,
        "readmit_s": readmitted,
        "probes_failed": sum(fake.stats(s).count(503) for s in secrets) - wasted,
    }


@pytest.mark.usefixtures("short_breaker")
@pytest.mark.parametrize(
    ("what", "secrets"), [("one key", [A]), ("one scope (both keys)", [A, B])], ids=["key", "scope"]
)
def test_a_5xx_storm_opens_the_circuit_moves_traffic_and_a_probe_readmits(
    fake: FakeProvider,
    events: list[KeyStateChanged],
    figures: object,
    what: str,
    secrets: list[str],
) -> None:
    client = client_for(fake)
    found = storm(fake, client, events, secrets)
    assert found["errors"] == 0
    threshold = default_book().settings.failure_threshold
    assert found["wasted"] == threshold * len(secrets)  # ejected after exactly `threshold` 503s
    for secret in secrets:
        changes = [(e.old, e.new) for e in events if e.key == label(secret)]
        assert changes == [
            (KeyState.AVAILABLE, KeyState.CIRCUIT_OPEN),
            (KeyState.HALF_OPEN, KeyState.AVAILABLE),
        ]
    assert all(s.in_flight == 0 for s in client.key_pool.snapshot())
    scenario = f"5xx storm on {what} (503 until it recovers)"
    record = figures.record  # type: ignore[attr-defined]
    record(scenario, "calls / errors surfaced", f"{found['calls']} / {found['errors']}")
    record(scenario, "wasted calls (503s sent)", found["wasted"])
    record(scenario, "time to eject", f"{found['eject_s'] * 1000:.0f} ms")
    record(
        scenario,
        f"time to re-admit after recovery (open_seconds={OPEN_SECONDS})",
        f"{found['readmit_s'] * 1000:.0f} ms",
    )
