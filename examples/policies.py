"""Policies: tiers, model rules, labels and max in flight, each decision saying why.

python examples/policies.py
"""

from __future__ import annotations

import openai

import keyrouter
from keyrouter import Key
from keyrouter.testing import FakeKey, FakeProvider

FREE = "sk-example-free-00000000000000000001"
PAID = "sk-example-paid-00000000000000000002"
EU = "sk-example-eu-0000000000000000000003"


def ask(client: openai.OpenAI, model: str) -> None:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def main() -> None:
    keys = [
        # Spend the free tier first; it serves only the small model.
        Key(FREE, name="free", tier=0, allow_models=["gpt-4o-mini"]),
        # The paid tier takes over when no free key can serve; never the preview models.
        Key(PAID, name="paid", tier=1, deny_models=["*-preview"], max_in_flight=4),
    ]
    # EU traffic only: kept out of the global pool, chosen by label in a scoped pool.
    everything = [*keys, Key(EU, name="eu", labels=["eu"])]
    fakes = [FakeKey(FREE, rpm=5), FakeKey(PAID), FakeKey(EU)]
    with FakeProvider(fakes) as fake:
        keyrouter.patch(openai=keys)
        reasons: list[str] = []

        def note(event: keyrouter.Event) -> None:  # each decision says which policy refused
            if isinstance(event, keyrouter.RequestRouted):
                reasons.extend(f"{r.key}: {r.reason}" for r in event.decision.refused if r.policy)

        stop = keyrouter.on_event(note)
        try:
            client = openai.OpenAI(base_url=fake.base_url, max_retries=0)
            ask(client, "gpt-4o")  # the free key may not serve it
            for _ in range(8):
                ask(client, "gpt-4o-mini")  # free first; paid once free is out of requests
            print(
                f"tiers: free served {fake.stats(FREE).count(200)}, "
                f"paid served {fake.stats(PAID).count(200)}"
            )
            with keyrouter.pool(openai=everything, labels=["eu"]):
                ask(client, "gpt-4o")
            print(f"labels: the eu pool sent {fake.stats(EU).count(200)} call, on the eu key")
            try:
                ask(client, "o1-preview")  # free: not allowed; paid: denied
            except openai.PermissionDeniedError as error:
                print(f"refused before sending: {error.body['message']}")  # type: ignore[index]
            print("why keys were passed over:", *sorted(set(reasons)), sep="\n  ")
        finally:
            stop()
            keyrouter.unpatch()


if __name__ == "__main__":
    main()
