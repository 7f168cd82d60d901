"""Rough, cheap request-size estimates shared by the provider modules.

Rate limiters charge a request before it runs, on the prompt's size plus the most it may
generate. We mirror that: count the characters of the text in the body (about 4 per token),
count each inline image or file as a fixed number of tokens, and add the output cap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

__all__ = ["CHARS_PER_TOKEN", "json_object", "output_cap", "text_tokens"]

CHARS_PER_TOKEN = 4.0
_INLINE_MEDIA_TOKENS = 765.0
_MAX_PARSE_BYTES = 8 * 1024 * 1024
_SKIP_KEYS = frozenset({"model", "type", "role", "id", "name", "tool_call_id", "detail", "format"})


def json_object(body: bytes) -> dict[str, object] | None:
    """The body as a JSON object, or None if it is empty, too large or not an object."""
    if not body or len(body) > _MAX_PARSE_BYTES or body[:1] not in (b"{", b" ", b"\n"):
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def text_tokens(values: Iterable[object]) -> float:
    """Estimated tokens of every string under `values` (nested lists/dicts walked)."""
    chars = 0.0
    media = 0.0
    stack: list[object] = list(values)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith("data:") or (len(item) > 100_000 and " " not in item[:1000]):
                media += _INLINE_MEDIA_TOKENS
            else:
                chars += len(item)
        elif isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k not in _SKIP_KEYS)
        elif isinstance(item, list):
            stack.extend(item)
    return chars / CHARS_PER_TOKEN + media


def output_cap(body: dict[str, object], names: Iterable[str], default: float) -> float:
    """The first of the `names` fields that holds a positive number, else `default`."""
    for name in names:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return default
