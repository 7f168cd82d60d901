"""What an interceptor knows about the client it serves: provider, hosts, credentials, pool."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyrouter.core.pool import KeyPool
from keyrouter.core.registry import current_scoped_pools, global_pool
from keyrouter.errors import ConfigError
from keyrouter.providers.base import Wire

__all__ = ["PLACEHOLDER_CREDENTIAL", "Route", "RouteSettings"]

PLACEHOLDER_CREDENTIAL = "keyrouter-pool-placeholder"
"""Handed to an SDK that insists on a key at construction when the pool will supply it.

If it ever reached a provider it would be refused as an invalid key; it is never a secret."""


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """Bounds on what the interceptor does for one request.

    `max_attempts`: upstream sends per request (default: the pool's size + 2, at most 25).
    `max_wait`: seconds a request may wait for capacity in total (default: the request's own
    read timeout, at most 60 s). `poll_interval`: how long a queued caller sleeps before
    looking again if nothing wakes it earlier (the pool wakes it on every change).
    """

    max_attempts: int | None = None
    max_wait: float | None = None
    poll_interval: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError("must be at least 1", field="max_attempts")
        if self.max_wait is not None and not self.max_wait >= 0:
            raise ConfigError("must be a number of seconds, 0 or more", field="max_wait")


@dataclass(slots=True)
class Route:
    """How one client's requests are routed.

    A request is routed only when it goes to one of `hosts` and carries a credential from
    `routable` (the placeholder, the key the client was built with) or a key of the pool in
    force. Anything else (another host, a credential the user set explicitly) passes through
    untouched and never receives a pool key.
    """

    wire: Wire
    hosts: frozenset[str]
    routable: frozenset[str] = field(default=frozenset({PLACEHOLDER_CREDENTIAL}), repr=False)
    """Credentials that mean "use the pool" (may be a real key: never shown in the repr)."""
    own_pool: KeyPool | None = None
    settings: RouteSettings = field(default_factory=RouteSettings)
    base_path: str = ""
    """The path of the client's base URL (`/v1`): kept below a key's own `base_url`."""
    clock: Callable[[], float] = time.time
    writer: Callable[[Any, str], None] | None = None
    """Writes the key into the whole request (a query parameter, a user's signing callable)
    after the wire's header write: for APIs whose credential is not only a header."""

    def pool(self) -> KeyPool | None:
        """The pool in force for this request: scoped, then the client's own, then global."""
        scoped = current_scoped_pools().get(self.wire.name)
        if scoped is not None:
            return scoped
        return self.own_pool or global_pool(self.wire.name)

    def claims(self, host: str, credential: str | None, pool: KeyPool | None) -> bool:
        """Whether a request to `host` carrying `credential` is ours to route (see the class
        docstring)."""
        if host not in self.hosts:
            return False
        if credential is None or credential in self.routable:
            return True
        return pool is not None and pool.owns(credential)
