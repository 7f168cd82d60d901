"""Transport-level faults: the call succeeds on another key or the SDK raises its own error.

Each fault is sent twice on the same key: once to the plain SDK (what it raises without
keyrouter), once through keyrouter with a second, healthy key in the pool. keyrouter may turn
the failure into a success (the fault came before the response headers, so another key
served) or hand it over unchanged; it may never raise a type the plain SDK would not.
"""

from __future__ import annotations

import pytest

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider, Fault
from tests.reliability._sdks import SDKS, Sdk, outcome

TIMEOUT = 0.5

FAULTS = {
    "connection reset": Fault.reset(),
    "read timeout": Fault.delay(TIMEOUT * 2),
    "stalled stream": Fault.stall_stream(after_chunks=1),
    "slow stream": Fault.slow_stream(0.01),
    "truncated body": Fault.truncate(),
    "garbage JSON": Fault.garbage(),
    "200 with an error body": Fault.error_in_200(),
    "500": Fault.status(500),
    "proxy 502 (HTML)": Fault.status(502, plain=True),
}


CASES = [
    pytest.param(sdk, name, stream, id=f"{sdk.name}-{name}-{'stream' if stream else 'json'}")
    for sdk in SDKS
    for name, fault in FAULTS.items()
    for stream in (False, True)
    if stream or not fault.streams_only
]


@pytest.mark.parametrize(("sdk", "fault_name", "stream"), CASES)
def test_a_fault_becomes_a_success_or_the_sdks_own_error(
    sdk: Sdk, fault_name: str, stream: bool, figures: object
) -> None:
    fault = FAULTS[fault_name]
    faulty, healthy = sdk.keys
    with FakeProvider([FakeKey(faulty), FakeKey(healthy)]) as fake:
        fake.inject(fault, key=faulty)
        plain = outcome(lambda: sdk.call(sdk.plain(fake, faulty, TIMEOUT), stream))
        fake.reset_stats()
        client = sdk.routed(fake, [faulty, healthy], TIMEOUT)
        routed = outcome(lambda: sdk.call(client, stream))
        assert routed is None or routed is plain, (plain, routed)
        assert not issubclass(routed or Exception, keyrouter.KeyrouterError)
        assert [s.in_flight for s in client.key_pool.snapshot()] == [0, 0]
        figures.record(  # type: ignore[attr-defined]
            f"{sdk.name} {fault_name} ({'stream' if stream else 'json'})",
            "plain SDK -> keyrouter",
            f"{_name(plain)} -> {_name(routed)}; faulty key hit {fake.stats(faulty).requests}x",
        )


def _name(error: type[BaseException] | None) -> str:
    return "ok" if error is None else f"{error.__module__.split('.')[0]}.{error.__name__}"
