"""Pointing a request at the server of the key it carries.

A pool entry may name its own `base_url` (an OpenAI-compatible server, another region):
requests sent with that key go there, with the path below the client's base URL kept. Every
other key's requests go to the client's own URL. The request is re-aimed on every attempt, so
failing over from one server to another works in both directions.
"""

from __future__ import annotations

from typing import Any

from keyrouter.core.keys import Key

__all__ = ["aim"]


def aim(request: Any, key: Key, original_url: Any, base_path: str) -> None:
    """Set `request.url` (and its Host header) for an attempt with `key`."""
    url = original_url if key.base_url is None else _rebase(original_url, key.base_url, base_path)
    if request.url == url:
        return
    request.url = url
    request.headers["host"] = url.host if url.port is None else f"{url.host}:{url.port}"


def _rebase(original_url: Any, base_url: str, base_path: str) -> Any:
    target = type(original_url)(base_url)
    path = original_url.path
    rest = path[len(base_path) :] if base_path and path.startswith(base_path) else path
    return original_url.copy_with(
        scheme=target.scheme,
        host=target.host,
        port=target.port,
        path=target.path.rstrip("/") + rest,
    )
