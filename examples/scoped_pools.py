"""Way in 3: keyrouter.pool(...) — each tenant's calls use that tenant's keys.

python examples/scoped_pools.py
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

TENANTS = {
    "acme": ["sk-example-acme-1-000000000000001", "sk-example-acme-2-000000000000002"],
    "globex": ["sk-example-globex-0000000000000003"],
}


def handle_request(client: openai.OpenAI, tenant: str) -> str:
    with keyrouter.pool(openai=TENANTS[tenant]):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"for {tenant}"}]
        )
    return reply.id


def main() -> None:
    keys = [FakeKey(k) for keys in TENANTS.values() for k in keys]
    with FakeProvider(keys) as fake:
        keyrouter.patch()  # no global keys: only scoped pools route
        try:
            client = openai.OpenAI(base_url=fake.base_url)
            work = ["acme", "globex"] * 10
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda t: handle_request(client, t), work))
            for tenant, tenant_keys in TENANTS.items():
                served = sum(fake.stats(k).count(200) for k in tenant_keys)
                print(f"{tenant}: {served} calls on its own keys")
        finally:
            keyrouter.unpatch()


if __name__ == "__main__":
    main()
