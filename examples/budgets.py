"""Cost and budgets: free credits first, then the cheapest key, and a hard stop at the budget.

python examples/budgets.py
"""

from __future__ import annotations

import openai

import keyrouter
from keyrouter.testing import FakeKey, FakeProvider

FREE = "sk-example-free-credits-000000000001"
DISCOUNTED = "sk-example-discounted-00000000000002"
LIST_PRICE = "sk-example-list-price-00000000000003"


def on_event(event: keyrouter.Event) -> None:
    if isinstance(event, keyrouter.BudgetThresholdCrossed):
        print(
            f"alert: {event.threshold:.0%} of the daily budget spent "
            f"({event.spent_usd:.4f} of {event.limit_usd:.2f} USD)"
        )


def main() -> None:
    keys = [
        keyrouter.Key(FREE, name="free", credits_usd=0.01),
        keyrouter.Key(DISCOUNTED, name="discounted", price_multiplier=0.8),
        keyrouter.Key(LIST_PRICE, name="list-price"),
    ]
    fakes = [FakeKey(FREE), FakeKey(DISCOUNTED), FakeKey(LIST_PRICE)]
    with FakeProvider(fakes, completion_tokens=500) as fake:
        keyrouter.patch(
            openai=keys,
            objective="cost",
            budgets=keyrouter.Budget(usd=0.05, period="day", thresholds=(0.5, 0.8, 1.0)),
        )
        stop = keyrouter.on_event(on_event)
        try:
            client = openai.OpenAI(base_url=fake.base_url)
            calls = 0
            for _ in range(30):  # bounded: the budget stops it well before
                try:
                    client.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": "write me a poem"}],
                        max_completion_tokens=500,
                    )
                    calls += 1
                except openai.RateLimitError as refused:
                    print(f"refused before sending: {refused.message}")
                    break
            totals = keyrouter.usage_totals("key")
            for key in keys:
                spent = totals.get(key.fingerprint)
                cost = spent.cost_usd if spent else 0.0
                print(f"{key.label}: {spent.calls if spent else 0} calls, {cost:.4f} USD")
            print(f"{calls} calls within the budget")
        finally:
            stop()
            keyrouter.unpatch()


if __name__ == "__main__":
    main()
