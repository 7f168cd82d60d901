"""What keyrouter needs to know about each SDK's client classes, in one table.

An `SdkBinding` names a client class, the wire format its requests use, how its constructor
takes a key (and which other arguments mean "I authenticate some other way"), and where its
HTTP transports live. Adding a provider is adding rows here and a module under
`keyrouter.providers`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from keyrouter.providers.base import Wire

__all__ = [
    "BINDINGS",
    "SdkBinding",
    "bindings_for",
    "client_base_path",
    "client_host",
    "client_transports",
    "genai_async_through_one_transport",
    "transports_of",
]


@dataclass(frozen=True, slots=True)
class SdkBinding:
    provider: str
    module: str
    class_name: str
    is_async: bool | None
    """None: the client has both a sync and an async HTTP client (google-genai)."""
    env_vars: tuple[str, ...]
    """Where the SDK itself looks for a key when none is passed."""
    wire: Callable[[], Wire]
    key_kwarg: str = "api_key"
    foreign_credentials: tuple[str, ...] = ()
    """Constructor arguments that mean the user authenticates another way (OAuth, workload
    identity, Vertex AI): such a client is left alone."""
    prepare: Callable[[dict[str, Any]], None] | None = None
    """Adjusts the constructor's keyword arguments of a client that will be routed."""
    foreign_env: tuple[str, ...] = ()
    """Environment variables through which the SDK finds another kind of credential (an OAuth
    token, a profile): with no key given and no global pool, such a client is left alone."""
    vertex_env: str | None = None
    """google-genai: set to true, the client talks to Vertex AI, never to be given pool keys."""
    skipped_subclasses: tuple[str, ...] = ()
    """Subclasses with another wire format (Azure OpenAI): never routed as this binding."""

    def load(self) -> type[Any] | None:
        """The client class, or None if the SDK is not installed."""
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        cls = getattr(module, self.class_name, None)
        return cls if isinstance(cls, type) else None


def _wire(module: str) -> Callable[[], Wire]:
    def load() -> Wire:
        wire: Wire = importlib.import_module(f"keyrouter.providers.{module}").WIRE
        return wire

    return load


def genai_async_through_one_transport(kwargs: dict[str, Any]) -> None:
    """Make google-genai send async requests through one transport keyrouter can route.

    Left to itself the SDK uses aiohttp when installed, or builds an httpx client per event
    loop lazily; both are out of a transport's reach. Its public `async_client_args` take a
    transport: we give it one that keeps a transport per loop (see `per_loop_transport`).
    A user who chose an async client or transport keeps it.
    """
    from keyrouter.transports.per_loop import per_loop_transport

    sdk = importlib.import_module("google.genai._api_client")
    http = getattr(sdk, "httpx2", None) or sdk.httpx  # 3.x is built on httpx2, 2.x on httpx

    options = kwargs.get("http_options")
    chosen = (
        options
        if isinstance(options, dict)
        else (options.model_dump(exclude_none=True) if options is not None else {})
    )
    args = dict(chosen.get("async_client_args") or {})
    if chosen.get("httpx_async_client") is not None or chosen.get("aiohttp_client") is not None:
        return
    if "transport" in args or "mounts" in args:
        return
    args["transport"] = per_loop_transport(http)
    if isinstance(options, dict) or options is None:
        kwargs["http_options"] = {**(options or {}), "async_client_args": args}
    else:
        kwargs["http_options"] = options.model_copy(update={"async_client_args": args})


_OPENAI_FOREIGN = ("workload_identity", "provider")
_ANTHROPIC_FOREIGN = ("auth_token", "credentials", "config", "profile")
_GEMINI_FOREIGN = ("credentials", "vertexai")

_AZURE = ("AzureOpenAI", "AsyncAzureOpenAI")
_AZURE_FOREIGN = ("azure_ad_token", "azure_ad_token_provider")
_AZURE_FOREIGN_ENV = ("AZURE_OPENAI_AD_TOKEN",)
_ANTHROPIC_FOREIGN_ENV = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE")

BINDINGS: tuple[SdkBinding, ...] = (
    SdkBinding(
        "openai",
        "openai",
        "OpenAI",
        False,
        ("OPENAI_API_KEY",),
        _wire("openai"),
        foreign_credentials=_OPENAI_FOREIGN,
        skipped_subclasses=_AZURE,
    ),
    SdkBinding(
        "openai",
        "openai",
        "AsyncOpenAI",
        True,
        ("OPENAI_API_KEY",),
        _wire("openai"),
        foreign_credentials=_OPENAI_FOREIGN,
        skipped_subclasses=_AZURE,
    ),
    SdkBinding(
        "anthropic",
        "anthropic",
        "Anthropic",
        False,
        ("ANTHROPIC_API_KEY",),
        _wire("anthropic"),
        foreign_credentials=_ANTHROPIC_FOREIGN,
        foreign_env=_ANTHROPIC_FOREIGN_ENV,
    ),
    SdkBinding(
        "anthropic",
        "anthropic",
        "AsyncAnthropic",
        True,
        ("ANTHROPIC_API_KEY",),
        _wire("anthropic"),
        foreign_credentials=_ANTHROPIC_FOREIGN,
        foreign_env=_ANTHROPIC_FOREIGN_ENV,
    ),
    SdkBinding(
        "azure",
        "openai",
        "AzureOpenAI",
        False,
        ("AZURE_OPENAI_API_KEY",),
        _wire("azure"),
        foreign_credentials=_AZURE_FOREIGN,
        foreign_env=_AZURE_FOREIGN_ENV,
    ),
    SdkBinding(
        "azure",
        "openai",
        "AsyncAzureOpenAI",
        True,
        ("AZURE_OPENAI_API_KEY",),
        _wire("azure"),
        foreign_credentials=_AZURE_FOREIGN,
        foreign_env=_AZURE_FOREIGN_ENV,
    ),
    SdkBinding(
        "gemini",
        "google.genai._api_client",
        "BaseApiClient",
        None,
        ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        _wire("gemini"),
        foreign_credentials=_GEMINI_FOREIGN,
        prepare=genai_async_through_one_transport,
        vertex_env="GOOGLE_GENAI_USE_VERTEXAI",
    ),
)


def bindings_for(provider: str) -> tuple[SdkBinding, ...]:
    return tuple(b for b in BINDINGS if b.provider == provider)


def client_transports(client: Any, binding: SdkBinding) -> Iterator[tuple[Any, bool]]:
    """Every (transport instance, is_async) the SDK client may send through."""
    if binding.is_async is None:  # google-genai: one sync and one async httpx client
        for attr, is_async in (("_httpx_client", False), ("_async_httpx_client", True)):
            for transport in transports_of(getattr(client, attr, None)):
                yield transport, is_async
        return
    for transport in transports_of(getattr(client, "_client", None)):
        yield transport, binding.is_async


def transports_of(http: Any) -> Iterator[Any]:
    """The transport instances of an httpx/httpx2 client: its own and every mounted one."""
    transport = getattr(http, "_transport", None)
    if transport is not None:
        yield transport
    mounts = getattr(http, "_mounts", None) or {}
    for mounted in mounts.values():
        if mounted is not None and mounted is not transport:
            yield mounted


def client_host(client: Any) -> str | None:
    """The host the client sends to (its base URL's), where pool keys may go."""
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    if isinstance(host, str) and host:
        return host
    options = getattr(client, "_http_options", None)  # google-genai
    url = getattr(options, "base_url", None)
    return urlsplit(url).hostname if isinstance(url, str) else None


def client_base_path(client: Any) -> str:
    """The path part of the client's base URL, without a trailing slash (`/v1`)."""
    base_url = getattr(client, "base_url", None)
    path = getattr(base_url, "path", None)
    if not isinstance(path, str):
        options = getattr(client, "_http_options", None)  # google-genai
        url = getattr(options, "base_url", None)
        path = urlsplit(url).path if isinstance(url, str) else ""
    return path.rstrip("/")
