"""Way in 2: KeyRoutedAsyncOpenAI — a real openai.AsyncOpenAI with its own key pool.

python examples/key_routed_client.py
"""

from __future__ import annotations

import asyncio

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

KEYS = ["sk-example-async-a-000000000000001", "sk-example-async-b-000000000000002"]


async def main() -> None:
    with FakeProvider([FakeKey(k, rpm=30) for k in KEYS], time_scale=30) as fake:
        client = keyrouter.KeyRoutedAsyncOpenAI(keys=KEYS, base_url=fake.base_url)
        # More calls than the two buckets hold at once: keyrouter paces them, none fails.
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}]
                )
                for i in range(80)
            )
        )
        print(
            f"{len(replies)} replies; upstream 429s: {sum(fake.stats(k).count(429) for k in KEYS)}"
        )
        for snap in client.key_pool.snapshot():
            limit = snap.dimensions["requests"].limit
            print(f"{snap.key}: served {snap.successes}, learned limit {limit:.0f}/min")


if __name__ == "__main__":
    asyncio.run(main())
