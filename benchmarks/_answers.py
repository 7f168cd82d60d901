"""What a roomy OpenAI answer reports, for benchmarks that drive the pool without a server."""

from __future__ import annotations

ROOMY_OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-limit-tokens": "30000000",
    "x-ratelimit-remaining-tokens": "29999000",
    "x-ratelimit-reset-tokens": "2ms",
}
"""Far from every limit: the pool's success path, with headers to parse on every answer."""
