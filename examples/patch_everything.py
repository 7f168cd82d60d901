"""Way in 1: keyrouter.patch() — every openai client created afterwards routes.

Runs against the built-in fake provider: one revoked key, one out of credit, two good ones.
    python examples/patch_everything.py
"""

from __future__ import annotations

import openai

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

KEYS = [
    "sk-example-revoked-000000000000001",
    "sk-example-no-credit-0000000000002",
    "sk-example-good-one-0000000000003",
    "sk-example-good-two-0000000000004",
]


def main() -> None:
    fake_keys = [
        FakeKey(KEYS[0], status="invalid"),
        FakeKey(KEYS[1], status="insufficient_quota"),
        FakeKey(KEYS[2], rpm=100),
        FakeKey(KEYS[3], rpm=100),
    ]
    with FakeProvider(fake_keys) as fake:
        keyrouter.patch(openai=KEYS)
        try:
            client = openai.OpenAI(base_url=fake.base_url)  # no api_key: the pool supplies it
            for i in range(6):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello {i}"}]
                )
                print(type(reply).__name__, reply.choices[0].message.content[:40])
            for snap in keyrouter.snapshot()["openai"]:
                print(f"{snap.key}: {snap.state.value:<10} served {snap.successes}")
        finally:
            keyrouter.unpatch()


if __name__ == "__main__":
    main()
