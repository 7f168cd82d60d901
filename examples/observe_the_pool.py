"""See what the pool is doing: events, structured logs and the snapshot.

A burst of calls over three keys against the fake provider: one key is revoked and one has a
tiny rate limit. The caller sees every call succeed; the log and the events say why.

python examples/observe_the_pool.py
"""

from __future__ import annotations

import logging
from collections import Counter

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

KEYS = {
    "main": FakeKey("sk-example-observe-main-00000000001", rpm=600),
    "small": FakeKey("sk-example-observe-small-0000000002", rpm=2),
    "revoked": FakeKey("sk-example-observe-revoked-00000003", status="invalid"),
}


def main() -> None:
    # Quiet by default: show keyrouter's INFO and up (failovers, state changes) on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("keyrouter").setLevel(logging.INFO)

    seen: Counter[str] = Counter()

    def on_event(event: keyrouter.Event) -> None:
        seen[type(event).__name__] += 1
        if isinstance(event, keyrouter.Failover):
            print(f"event: failover {event.from_key} -> {event.to_key} ({event.kind})")

    stop = keyrouter.on_event(on_event)
    with FakeProvider(KEYS.values()) as fake:
        keys = [keyrouter.Key(k.secret, name=name) for name, k in KEYS.items()]
        client = keyrouter.KeyRoutedOpenAI(
            keys=keys, base_url=fake.base_url, objective="round_robin", max_retries=0
        )
        for i in range(12):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}]
            )
        stop()
        print("events:", dict(sorted(seen.items())))
        for snap in client.key_pool.snapshot():
            print(
                f"{snap.key:8} {snap.state.value:10} attempts={snap.attempts:2} "
                f"successes={snap.successes:2} rate_limited={snap.rate_limited}"
            )
        print("12/12 calls succeeded")


if __name__ == "__main__":
    main()
