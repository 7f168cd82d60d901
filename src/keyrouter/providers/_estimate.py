"""Rough, cheap request-size estimates shared by the provider modules.

Rate limiters charge a request before it runs, on the prompt's size plus the most it may
generate. We mirror that: count the characters of the text in the body (about 4 per token),
count each inline image or file as a fixed number of tokens, and add the output cap. The walk
over the body is shared; each provider says, through a `Split`, what its media cost and which
values of a JSON object may hold text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

__all__ = [
    "CHARS_PER_TOKEN",
    "Split",
    "count_tokens",
    "json_object",
    "model_name",
    "output_cap",
    "text_tokens",
]

CHARS_PER_TOKEN = 4.0
_INLINE_MEDIA_TOKENS = 765.0
_MAX_PARSE_BYTES = 8 * 1024 * 1024
_MAX_MODEL_CHARS = 256
_SKIP_KEYS = frozenset({"model", "type", "role", "id", "name", "tool_call_id", "detail", "format"})

Split = Callable[[dict[str, object]], tuple[float, Iterable[object]]]
"""A JSON object's media cost in tokens, and the values under it to read on for text."""


def json_object(body: bytes) -> dict[str, object] | None:
    """The body as a JSON object, or None if it is empty, too large or not an object."""
    if not body or len(body) > _MAX_PARSE_BYTES or body[:1] not in (b"{", b" ", b"\n"):
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def count_tokens(values: Iterable[object], split: Split, *, inline_media: bool = False) -> float:
    """Estimated tokens of every string under `values`, nested lists and objects walked.

    `split` prices each object's media and picks what to read on; with `inline_media`, a
    `data:` URL or a huge unbroken string counts as one inline image, not as text.
    """
    chars = 0
    media = 0.0
    stack: list[object] = list(values)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if inline_media and _is_inline_media(item):
                media += _INLINE_MEDIA_TOKENS
            else:
                chars += len(item)
        elif isinstance(item, dict):
            cost, children = split(item)
            media += cost
            stack.extend(children)
        elif isinstance(item, list):
            stack.extend(item)
    return chars / CHARS_PER_TOKEN + media


def text_tokens(values: Iterable[object]) -> float:
    """Estimated tokens of every string under `values`; inline data URLs at a fixed cost.

    The walk of `count_tokens` with a split that reads every value but a few structural ones
    (`_SKIP_KEYS`), written out: it runs on every OpenAI request, and the strings met inside
    an object are counted there, without a trip through the stack.
    """
    chars = 0
    media = 0.0
    skip = _SKIP_KEYS
    stack: list[object] = [v for v in values if v is not None]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _is_inline_media(item):
                media += _INLINE_MEDIA_TOKENS
            else:
                chars += len(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if key in skip:
                    continue
                if isinstance(value, str) and not _is_inline_media(value):
                    chars += len(value)
                elif value is not None:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return chars / CHARS_PER_TOKEN + media


def _is_inline_media(text: str) -> bool:
    return text.startswith("data:") or (len(text) > 100_000 and " " not in text[:1000])


def output_cap(body: dict[str, object], names: Iterable[str], default: float) -> float:
    """The first of the `names` fields that holds a positive number, else `default`."""
    for name in names:
        value = body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return default


def model_name(value: object) -> str | None:
    """`value` as a model name: a non-empty string of sane length, else None."""
    if isinstance(value, str) and 0 < len(value) <= _MAX_MODEL_CHARS:
        return value
    return None
