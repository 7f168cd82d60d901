"""Reading and annotating JSON error bodies, which every provider nests under ``"error"``.

Error bodies come from the network: only their head is read, and a field that is not a
string reads as empty, so a malformed answer can never trip up classification.
"""

from __future__ import annotations

import json
from typing import Any, Final

from keyrouter.providers._estimate import json_object

__all__ = ["MAX_ERROR_BYTES", "add_note", "annotated", "error_object", "text"]

MAX_ERROR_BYTES: Final = 65536


def error_object(body: bytes) -> tuple[dict[str, object], dict[str, Any]] | None:
    """The decoded body and its ``error`` object, or None if it has none."""
    parsed = json_object(body[:MAX_ERROR_BYTES])
    error = parsed.get("error") if parsed else None
    if parsed is None or not isinstance(error, dict):
        return None
    return parsed, error


def text(value: object) -> str:
    """``value`` if it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def add_note(error: dict[str, Any], note: str) -> None:
    """Append ``[note]`` to the error's message (or make it the message if there is none)."""
    message = error.get("message")
    error["message"] = f"{message} [{note}]" if isinstance(message, str) and message else note


def annotated(body: bytes, note: str) -> bytes | None:
    """``body`` with ``note`` added to its error message; None if it carries no error."""
    found = error_object(body)
    if found is None:
        return None
    parsed, error = found
    add_note(error, note)
    return json.dumps(parsed).encode()
