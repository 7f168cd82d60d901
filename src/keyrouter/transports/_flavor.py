"""What differs between httpx and httpx2 (nothing but the package): found from the objects.

The SDKs hand us requests of one package or the other. We never import either up front: the
package is the one the request's class comes from.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ERROR_CAP", "is_transport_error", "new_response", "package_of", "replace_response"]

ERROR_CAP = 256 * 1024
"""How much of an error body is read to classify it."""


def package_of(obj: object) -> Any:
    """The httpx-like package (`httpx` or `httpx2`) that `obj`'s class belongs to."""
    return sys.modules[type(obj).__module__.split(".", 1)[0]]


def is_transport_error(error: BaseException, request: object) -> bool:
    """Whether `error` is the request package's TransportError (connect, read, timeout...)."""
    transport_error = getattr(package_of(request), "TransportError", None)
    return transport_error is not None and isinstance(error, transport_error)


def replace_response(
    response: Any,
    request: Any,
    *,
    body: bytes,
    extra_headers: dict[str, str],
) -> Any:
    """A copy of `response` with a new (already decoded) body and some headers set."""
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"content-length", "content-encoding", "transfer-encoding"}
        and name.lower() not in extra_headers
    ]
    headers.extend(extra_headers.items())
    return type(response)(
        response.status_code,
        headers=headers,
        content=body,
        request=request,
        extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
    )


def new_response(request: Any, status: int, body: bytes, headers: dict[str, str]) -> Any:
    """A response of the request's own package, made up by keyrouter (no key could be tried)."""
    package = package_of(request)
    all_headers = {"content-type": "application/json", **headers}
    return package.Response(status, headers=all_headers, content=body, request=request)
