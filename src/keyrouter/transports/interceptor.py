"""Failover inside the SDK's transport: the SDK sees one response, success or its own error.

For each request that is ours to route (see `Route.claims`): buffer the body so it can be
resent, estimate its demand, then loop: take a key from the pool (or wait for one), write it
into the request, send through the transport the SDK chose, classify the answer, and either
hand the response back or try another key. When no key can serve, the SDK gets the last
upstream failure (or a made-up one in the provider's format) marked `x-should-retry: false`,
with a message naming the keys tried and the earliest recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from keyrouter.core.decision import Lease
from keyrouter.core.keys import Key
from keyrouter.core.pool import KeyPool
from keyrouter.providers._resources import creates_resource, named_resources
from keyrouter.transports._aim import aim
from keyrouter.transports._flavor import (
    ERROR_CAP,
    is_transport_error,
    new_response,
    replace_response,
)
from keyrouter.transports._headers import as_built, lookup, plain, put_back
from keyrouter.transports._plan import Plan, Sleep, Waker
from keyrouter.transports._waiters import AsyncWaiter, SyncWaiter
from keyrouter.transports.route import PLACEHOLDER_CREDENTIAL, Route

__all__ = ["install", "installed_route", "uninstall"]

_log = logging.getLogger("keyrouter")
_MAX_REPLAY_BYTES = 32 * 1024 * 1024
_MARK = "_keyrouter_route"


def _read_timeout(request: Any) -> float | None:
    timeout = request.extensions.get("timeout")
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _sdk_body(request: Any) -> bytes | None:
    """The body as the SDK built it, if it is already in memory (None: a streamed body).

    An SDK builds its requests from bytes, which httpx and httpx2 keep on the request
    (`_content`): taken as is, with no header lookup and no call into the HTTP library.
    """
    content = getattr(request, "_content", None)
    return content if isinstance(content, bytes) else None


def _too_large_to_replay(request: Any) -> bool:
    length = request.headers.get("content-length")
    return bool(length and length.isdigit() and int(length) > _MAX_REPLAY_BYTES)


def _read_for_replay(request: Any) -> bytes | None:
    """A streamed body, read into memory once so it can be resent, or None if it is too large
    to hold for a resend."""
    return None if _too_large_to_replay(request) else bytes(request.read())


async def _aread_for_replay(request: Any) -> bytes | None:
    """`_read_for_replay` for an async request."""
    return None if _too_large_to_replay(request) else bytes(await request.aread())


def _start(
    route: Route, request: Any, credential: str | None, body: bytes | None, waker: Waker
) -> Plan | _Refused | None:
    """A plan for `request`, a refusal to answer before sending, or None if the request is
    not ours to route. `credential` is what the request carries as the SDK built it."""
    pool = route.pool()
    if not route.claims(request.url.host, credential, pool):
        _drop_pool_credentials(request, pool)
        return None
    if pool is None:
        # An ambient key the SDK found by itself serves when no pool is in force.
        return _NO_POOL if credential in (None, PLACEHOLDER_CREDENTIAL) else None
    path = request.url.path
    sent = b"" if body is None else body
    method = request.method
    demand = None
    if pool.takes_bounds():
        demand = route.wire.demand_bound(method, path, sent)
    if demand is None:
        demand = route.wire.estimate_demand(method, path, sent)
    if pool.spending is not None:
        from keyrouter.transports._metering import before_sending  # only metered pools

        over_budget = before_sending(pool.spending, request, sent, demand, route.clock())
        if over_budget is not None:
            return _Refused(over_budget)
    plan = Plan(route, pool, demand, _read_timeout(request), waker)
    if pool.book.has_pins:  # nothing was created through keyrouter: nothing to pin to
        resources = named_resources(path, sent)
        if resources:
            plan.pin_to_owner(resources)
    plan.creates_resource = creates_resource(method, path)
    if body is None:
        plan.max_attempts = 1
    return plan


def _write_key(route: Route, request: Any, key: Key, original_url: Any) -> None:
    """Put `key` into the request and aim it at the key's server, for one attempt."""
    route.wire.write_credential(request.headers, key.secret)
    aim(request, key, original_url, route.base_path)
    if route.writer is not None:
        route.writer(request, key.secret)


def _unwrite_key(
    route: Route,
    request: Any,
    original_url: Any,
    original: str | None,
    sent: Key | None,
    built: list[Any] | None,
) -> None:
    """Once the attempts are over, the request shows what the SDK built, not the pool key.

    httpx logs `request.url`, `response.url` is the request's, and `response.request` (also
    on the SDK's exceptions and raw responses) is this request: a key a writer put into the
    URL (`?key=`) is taken out, and the credential header gets its original value back.
    `built` is the header list as the SDK built it (httpx's and httpx2's raw triples), put
    back whole when the request still goes to the SDK's own URL: one list copy instead of
    a header lookup and a header write.
    """
    if route.writer is not None:
        request.url = original_url
    if sent is None:
        return
    if built is not None and request.url is original_url:
        put_back(request, built)
    elif original is not None:
        route.wire.write_credential(request.headers, original)
    else:
        _drop_pool_credentials(request, None, sent.secret)


def _drop_pool_credentials(request: Any, pool: KeyPool | None, secret: str = "") -> None:
    """A request we do not route (another host: a redirect, say) never carries a pool key.

    Every header is checked, not only the usual credential headers: a route for any HTTP
    API (`keyrouter.route(header=...)`) writes its key into a header of the user's choosing,
    and httpx copies custom headers onto a redirect to another host. The SDKs mostly guard
    their own headers (Azure strips `api-key` on a redirect off-origin in openai 3.x, not in
    2.x); keyrouter does not rely on it.
    """
    headers = request.headers
    for name, value in list(headers.items()):
        token = value.rsplit(" ", 1)[-1].strip()
        if (
            token == PLACEHOLDER_CREDENTIAL
            or (secret and token == secret)
            or (pool is not None and pool.owns(token))
        ):
            del headers[name]


class _Refused:
    """Marker: the request is ours but is answered before sending: no pool is active
    (placeholder credential; `message` None) or a pool budget is spent (`message` says which)."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message


_NO_POOL = _Refused()


def _refused_response(route: Route, request: Any, refused: _Refused) -> Any:
    from keyrouter.core.outcome import OutcomeKind

    if refused.message is not None:
        status, body = route.wire.no_key_error(OutcomeKind.QUOTA_EXHAUSTED, refused.message)
        return new_response(request, status, body, {"x-should-retry": "false"})
    message = (
        f"keyrouter: no {route.wire.name} key pool is active for this client; "
        f"pass keys to keyrouter.patch({route.wire.name}=[...]) or use "
        f"keyrouter.pool({route.wire.name}=[...])"
    )
    status, body = route.wire.no_key_error(OutcomeKind.INVALID_KEY, message)
    return new_response(request, status, body, {"x-should-retry": "false"})


def _final_response(plan: Plan, request: Any, last: Any | None, last_body: bytes) -> Any:
    """What the SDK gets when no key could serve: one error, no SDK retries.

    The exception: a single attempt that met a transient server error goes back unchanged, so
    the SDK's own retry policy still applies to a one-key pool.
    """
    if last is not None and plan.single_transient_failure():
        return last
    note = plan.explanation()
    headers = {"x-should-retry": "false"}
    wait = plan.retry_after()
    if wait is not None:
        headers["retry-after"] = str(max(1, round(wait)))
    if last is not None:
        body = plan.route.wire.annotate_error(last_body, note) or last_body
        return replace_response(last, request, body=body, extra_headers=headers)
    status, body = plan.route.wire.no_key_error(plan.no_key_kind(), note)
    return new_response(request, status, body, headers)


class _Interceptor:
    """Sits in a transport instance's `__dict__`, in front of its send method.

    The send method is looked up on the transport's class at every call, not captured once,
    so a class-level patch applied later (vcrpy, respx) still sees each attempt. A method the
    instance already had of its own (someone else's patch) is kept and called instead.
    """

    attr = ""

    def __init__(self, route: Route, transport: Any) -> None:
        self.route = route
        self.transport = transport
        self.own_method: Callable[[Any], Any] | None = transport.__dict__.get(self.attr)

    @property
    def __wrapped__(self) -> Callable[[Any], Any]:
        if self.own_method is not None:
            return self.own_method
        return getattr(type(self.transport), self.attr).__get__(self.transport)  # type: ignore[no-any-return]


class SyncInterceptor(_Interceptor):
    """Stands in for a sync transport's `handle_request`."""

    attr = "handle_request"

    def __call__(self, request: Any) -> Any:
        route = self.route
        original = route.wire.credential(lookup(request.headers))
        body = _sdk_body(request)
        if body is None:
            body = _read_for_replay(request)
        waiter = SyncWaiter()
        plan = _start(route, request, original, body, waiter)
        if plan is None:
            return self.__wrapped__(request)
        if isinstance(plan, _Refused):
            return _refused_response(route, request, plan)
        original_url = request.url
        built = as_built(request)
        sent: Key | None = None
        last: Any = None
        last_body = b""
        last_error: BaseException | None = None
        try:
            while (step := plan.next_step()) is not None:
                if isinstance(step, Sleep):
                    waiter.wait(step.seconds)
                    continue
                _write_key(route, request, step.key, original_url)
                sent = step.key
                try:
                    response = self._send(plan, step, request)
                except _AttemptFailedError as retry:
                    last_error = retry.error
                    continue
                status = response.status_code
                error_body = _read_error_sync(response) if status >= 400 else b""
                headers = plain(response.headers) if plan.reads_headers(step, status) else None
                if plan.record_response(step, status, headers, error_body):
                    if last is not None:
                        last.close()
                    if plan.creates_resource and status < 300 and _is_json(response):
                        plan.learn_resource(step, response.read())
                    return _metered(plan, step, response, is_async=False)
                if last is not None:
                    last.close()
                last, last_body, last_error = response, error_body, None
        finally:
            plan.close()
            _unwrite_key(route, request, original_url, original, sent, built)
        if last is None and last_error is not None:
            raise last_error
        return _final_response(plan, request, last, last_body)

    def _send(self, plan: Plan, lease: Lease, request: Any) -> Any:
        try:
            return self.__wrapped__(request)
        except BaseException as error:
            if isinstance(error, Exception) and is_transport_error(error, request):
                plan.record_error(lease, error)
                raise _AttemptFailedError(error) from error
            plan.abandon(lease)
            raise


class AsyncInterceptor(_Interceptor):
    """Stands in for an async transport's `handle_async_request`."""

    attr = "handle_async_request"

    async def __call__(self, request: Any) -> Any:
        route = self.route
        original = route.wire.credential(lookup(request.headers))
        body = _sdk_body(request)
        if body is None:
            body = await _aread_for_replay(request)
        waiter = AsyncWaiter()
        plan = _start(route, request, original, body, waiter)
        if plan is None:
            return await self.__wrapped__(request)
        if isinstance(plan, _Refused):
            return _refused_response(route, request, plan)
        original_url = request.url
        built = as_built(request)
        sent: Key | None = None
        last: Any = None
        last_body = b""
        last_error: BaseException | None = None
        try:
            while (step := plan.next_step()) is not None:
                if isinstance(step, Sleep):
                    await waiter.wait(step.seconds)
                    continue
                _write_key(route, request, step.key, original_url)
                sent = step.key
                try:
                    response = await self._send(plan, step, request)
                except _AttemptFailedError as retry:
                    last_error = retry.error
                    continue
                status = response.status_code
                error_body = await _read_error_async(response) if status >= 400 else b""
                headers = plain(response.headers) if plan.reads_headers(step, status) else None
                if plan.record_response(step, status, headers, error_body):
                    if last is not None:
                        await last.aclose()
                    if plan.creates_resource and status < 300 and _is_json(response):
                        plan.learn_resource(step, await response.aread())
                    return _metered(plan, step, response, is_async=True)
                if last is not None:
                    await last.aclose()
                last, last_body, last_error = response, error_body, None
        finally:
            plan.close()
            _unwrite_key(route, request, original_url, original, sent, built)
        if last is None and last_error is not None:
            raise last_error
        return _final_response(plan, request, last, last_body)

    async def _send(self, plan: Plan, lease: Lease, request: Any) -> Any:
        try:
            return await self.__wrapped__(request)
        except BaseException as error:
            if isinstance(error, Exception) and is_transport_error(error, request):
                plan.record_error(lease, error)
                raise _AttemptFailedError(error) from error
            plan.abandon(lease)
            raise


class _AttemptFailedError(Exception):
    """Internal: the attempt failed at the connection level; try the next key."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _is_json(response: Any) -> bool:
    """A JSON answer (not a stream, not a download): safe and cheap to read in full."""
    return str(response.headers.get("content-type", "")).startswith("application/json")


def _read_error_sync(response: Any) -> bytes:
    try:
        return bytes(response.read()[:ERROR_CAP])
    except Exception:
        _log.debug("could not read an error body", exc_info=True)
        return b""


async def _read_error_async(response: Any) -> bytes:
    try:
        return bytes((await response.aread())[:ERROR_CAP])
    except Exception:
        _log.debug("could not read an error body", exc_info=True)
        return b""


# -- installing on a transport instance ------------------------------------------------------


def install(transport: Any, route: Route, *, is_async: bool) -> None:
    """Route every request `transport` sends. Installing twice only updates the route."""
    current = installed_route(transport)
    if current is not None:
        attr = "handle_async_request" if is_async else "handle_request"
        getattr(transport, attr).route = route
        setattr(transport, _MARK, route)
        return
    interceptor = (
        AsyncInterceptor(route, transport) if is_async else SyncInterceptor(route, transport)
    )
    transport.__dict__[interceptor.attr] = interceptor
    transport.__dict__[_MARK] = route


def installed_route(transport: Any) -> Route | None:
    route = transport.__dict__.get(_MARK) if hasattr(transport, "__dict__") else None
    return route if isinstance(route, Route) else None


def uninstall(transport: Any) -> None:
    """Restore `transport` exactly as it was before `install`."""
    if installed_route(transport) is None:
        return
    for attr in ("handle_request", "handle_async_request"):
        interceptor = transport.__dict__.get(attr)
        if isinstance(interceptor, _Interceptor):
            if interceptor.own_method is not None:
                transport.__dict__[attr] = interceptor.own_method
            else:
                del transport.__dict__[attr]
    del transport.__dict__[_MARK]


def _metered(plan: Plan, lease: Lease, response: Any, *, is_async: bool) -> Any:
    """`response` as the SDK gets it: metered when the pool keeps usage (`_metering` and the
    usage readers load only then)."""
    if plan.pool.spending is None:
        return response
    from keyrouter.transports._metering import metered

    return metered(plan, lease, response, is_async=is_async)
