"""Pointing a request at the server of the key it carries.

A pool entry may name its own `base_url` (an OpenAI-compatible server, another Azure resource):
requests sent with that key go there, with the path below the client's base URL kept (a
`base_url` with no path changes only the host). An Azure key's `deployment` replaces the
deployment named in the path. Every
other key's requests go to the client's own URL. The request is re-aimed on every attempt, so
failing over from one server to another works in both directions.
"""

from __future__ import annotations

import re
from typing import Any

from keyrouter.core.keys import Key

__all__ = ["aim"]

_DEPLOYMENT = re.compile(r"/deployments/[^/]+/")


def aim(request: Any, key: Key, original_url: Any, base_path: str) -> None:
    """Set `request.url` (and its Host header) for an attempt with `key`."""
    if key.base_url is None and key.deployment is None:
        if request.url is original_url:
            return  # the common case, kept cheap: URL equality parses a URL
        url = original_url
    else:
        url = _target(key, original_url, base_path)
    if request.url == url:
        return
    request.url = url
    request.headers["host"] = url.host if url.port is None else f"{url.host}:{url.port}"


def _target(key: Key, original_url: Any, base_path: str) -> Any:
    url = original_url if key.base_url is None else _rebase(original_url, key.base_url, base_path)
    if key.deployment is not None:
        path = _DEPLOYMENT.sub(f"/deployments/{key.deployment}/", url.path, count=1)
        url = url.copy_with(path=path)
    return url


def _rebase(original_url: Any, base_url: str, base_path: str) -> Any:
    target = type(original_url)(base_url)
    path = original_url.path
    if target.path.rstrip("/"):
        rest = path[len(base_path) :] if base_path and path.startswith(base_path) else path
        path = target.path.rstrip("/") + rest
    return original_url.copy_with(
        scheme=target.scheme, host=target.host, port=target.port, path=path
    )
