"""What keyrouter needs to know about each SDK's client classes, in one table.

An `SdkBinding` names a client class, the wire format its requests use, how its constructor
takes a key, and where its HTTP transports live. Adding a provider is adding rows here and a
module under `keyrouter.providers`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from keyrouter.providers.base import Wire

__all__ = ["SdkBinding", "bindings_for", "http_transports"]


@dataclass(frozen=True, slots=True)
class SdkBinding:
    provider: str
    module: str
    class_name: str
    is_async: bool
    env_var: str
    wire: Callable[[], Wire]
    key_kwarg: str = "api_key"

    def load(self) -> type[Any] | None:
        """The client class, or None if the SDK is not installed."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        cls = getattr(module, self.class_name, None)
        return cls if isinstance(cls, type) else None


def _openai_wire() -> Wire:
    from keyrouter.providers.openai import WIRE

    return WIRE


BINDINGS: tuple[SdkBinding, ...] = (
    SdkBinding("openai", "openai", "OpenAI", False, "OPENAI_API_KEY", _openai_wire),
    SdkBinding("openai", "openai", "AsyncOpenAI", True, "OPENAI_API_KEY", _openai_wire),
)


def bindings_for(provider: str) -> tuple[SdkBinding, ...]:
    return tuple(b for b in BINDINGS if b.provider == provider)


def http_transports(client: Any) -> Iterator[Any]:
    """Every transport instance the SDK client's HTTP client may send through."""
    http = getattr(client, "_client", None)
    transport = getattr(http, "_transport", None)
    if transport is not None:
        yield transport
    mounts = getattr(http, "_mounts", None) or {}
    for mounted in mounts.values():
        if mounted is not None and mounted is not transport:
            yield mounted
