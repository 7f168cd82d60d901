"""Comparing SDK results from a patched and a plain client, minus per-response ids/times."""

from __future__ import annotations

from typing import Any

VOLATILE = {
    "id",
    "created",
    "created_at",
    "system_fingerprint",
    "completed_at",
    "item_id",
    "response_id",
    "sdk_http_response",
}


def stable(value: Any) -> Any:
    """A dump without the fields a fake provider makes fresh for every response."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def dump(result: Any) -> Any:
    if isinstance(result, list):
        return [stable(item.model_dump(warnings=False)) for item in result]
    return stable(result.model_dump(warnings=False))
