"""`keyrouter.route(client, keys=..., header=...)`: a key pool for any HTTP API the user calls.

The same machinery as the SDK routes: the interceptor goes on the transport instances of the
user's own `httpx` / `httpx2` client (sync or async), the pool is a `KeyPool` learning into
the process-wide state (events, failover, cooldowns from `retry-after`), and the wire is a
`GenericWire` told where the credential goes and what each status code means.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from keyrouter.core.pool import KeyPool
from keyrouter.entry._pools import PROVIDERS, new_pool, warm_pool
from keyrouter.entry._sdks import client_base_path, client_host, transports_of
from keyrouter.errors import ConfigError
from keyrouter.providers.generic import GenericWire, statuses_from
from keyrouter.transports import Route, RouteSettings, install

__all__ = ["route"]

Writer = Callable[[Any, str], None]
"""`writer(request, secret)`: put `secret` into the httpx request (its headers or URL)."""

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def route(
    client: Any,
    *,
    keys: object,
    header: str | None = None,
    query: str | None = None,
    writer: Writer | None = None,
    prefix: str = "",
    hosts: Iterable[str] | None = None,
    statuses: Mapping[int, str | None] | None = None,
    name: str | None = None,
    objective: str = "headroom",
    max_attempts: int | None = None,
    max_wait: float | None = None,
) -> KeyPool:
    """Route `client` (an `httpx`/`httpx2` `Client` or `AsyncClient`) over a pool of `keys`.

    Say where the key goes with exactly one of `header="X-API-Key"` (with `prefix="Bearer "`
    if the API wants one), `query="key"`, or `writer=lambda request, secret: ...`. Only
    requests to the client's `base_url` host (or to `hosts`) get a key; anything else passes
    through untouched. 401/403/429/402/408/5xx fail over to another key; remap a status with
    `statuses={403: "rate_limited", 503: None}` (None: hand it to the caller). Returns the
    pool (`pool.snapshot()` shows what it learned). Routing the same client again replaces
    its pool.
    """
    given = [v for v in (header, query, writer) if v is not None]
    if len(given) != 1:
        raise ConfigError(
            "say where the key goes with exactly one of header=, query= or writer=",
            field="route",
        )
    if header is not None and not _TOKEN.fullmatch(header):
        raise ConfigError(f"{header!r} is not an HTTP header name", field="header")
    if query is not None and not (isinstance(query, str) and query and query.isprintable()):
        raise ConfigError("must be a non-empty query parameter name", field="query")
    if writer is not None and not callable(writer):
        raise ConfigError("must be a callable writer(request, secret)", field="writer")
    if prefix and header is None:
        raise ConfigError("only applies with header=", field="prefix")
    transports = list(transports_of(client))
    if not transports or not hasattr(client, "base_url"):
        raise ConfigError(
            f"expected an httpx or httpx2 Client/AsyncClient, got {type(client).__name__}",
            field="client",
        )
    allowed = _hosts(client, hosts)
    label = name or sorted(allowed)[0]
    if label in PROVIDERS:
        raise ConfigError(f"{label!r} names an SDK provider; pick another name", field="name")
    pool = new_pool(keys, field_name="keys", objective=objective, name=label)
    warm_pool(pool)  # a shared store (patch(store=...)) already knows these keys' state
    wire = GenericWire(label, header, prefix, statuses_from(statuses), allowed)
    the_route = Route(
        wire,
        allowed,
        own_pool=pool,
        settings=RouteSettings(max_attempts, max_wait),
        base_path=client_base_path(client),
        writer=_query_writer(query) if query is not None else writer,
    )
    is_async = hasattr(client, "__aenter__")
    for transport in transports:
        install(transport, the_route, is_async=is_async)
    return pool


def _hosts(client: Any, hosts: Iterable[str] | None) -> frozenset[str]:
    if isinstance(hosts, str):
        hosts = [hosts]
    if hosts is not None:
        allowed = frozenset(h.strip().lower() for h in hosts if h and h.strip())
        if not allowed:
            raise ConfigError("name at least one host", field="hosts")
        return allowed
    host = client_host(client)
    if not host:
        raise ConfigError(
            "the client has no base_url: pass hosts=['api.example.com'] (the hosts that may "
            "receive a key)",
            field="hosts",
        )
    return frozenset({host.lower()})


def _query_writer(param: str) -> Writer:
    def write(request: Any, secret: str) -> None:
        request.url = request.url.copy_set_param(param, secret)

    return write
