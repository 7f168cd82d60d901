"""The shared state as plain JSON documents, and the two atomic steps on them.

A scope document holds one bucket per dimension, the cooldown or exhaustion, and the leases in
flight; a key document holds an invalid/disabled flag. `reserve` and `settle` here are what the
memory and SQLite stores run inside one lock or transaction; the Redis store runs the same steps
in Lua (`_script.lua`) on the same documents. The bucket arithmetic is the core's own
`Dimension`, so a shared estimate and a local one never disagree.

Documents never hold `null` or infinities (Lua's JSON cannot): an absent field means unknown.
"""

from __future__ import annotations

import math
from typing import Any

from keyrouter.core.health import KeyState
from keyrouter.core.quota import Dimension, LimitObservation
from keyrouter.core.store import Grant, SharedDimension, SharedKey, SharedScope

__all__ = ["Doc", "grant_of", "key_of", "new_scope", "reserve", "scope_of", "settle"]

Doc = dict[str, Any]

_AVAILABLE = KeyState.AVAILABLE.value
_COOLING = KeyState.COOLING.value
_EXHAUSTED = KeyState.EXHAUSTED.value
_FOR_GOOD = (KeyState.INVALID.value, KeyState.DISABLED.value)
_SAME_MOMENT = 1e-3
"""Answers this close together count as simultaneous (Lua's JSON keeps 14 digits of a time)."""
KEY_FLAG_SECONDS = 30 * 86_400
"""How long a key found invalid or disabled stays so for every process (Redis: the key's
TTL): long enough that nobody retries a revoked key, short enough that a key re-enabled
upstream comes back by itself."""


def new_scope() -> Doc:
    return {"dims": {}, "state": _AVAILABLE, "until": 0.0, "reason": "", "leases": {}}


def _dimension(doc: Doc) -> Dimension:
    return Dimension(
        limit=doc.get("limit"),
        level=doc["level"],
        as_of=doc["as_of"],
        rate=doc.get("rate"),
        known=True,
        limit_announced=bool(doc.get("announced")),
    )


def _write(dim: Dimension, seen: float) -> Doc:
    doc: Doc = {"level": dim.level, "as_of": dim.as_of, "announced": dim.limit_announced}
    doc["seen"] = seen
    if dim.limit is not None:
        doc["limit"] = dim.limit
    if dim.rate is not None:
        doc["rate"] = dim.rate
    return doc


def _purge(scope: Doc, now: float) -> None:
    """Leases past their expiry belong to a process that died: forget them (no refund, the
    request may well have reached the provider)."""
    leases = scope["leases"]
    for lease_id in [k for k, v in leases.items() if v["expires"] < now]:
        del leases[lease_id]


def reserve(scope: Doc, key: Doc | None, request: Doc) -> Doc:
    """Debit `request["units"]` from every known bucket if all of them can take it now.

    Returns the reply (`granted`, `retry_at`, and the scope and key as they stand).
    """
    now = request["at"]
    _purge(scope, now)
    if key is not None and key.get("state") in _FOR_GOOD and key.get("until", math.inf) > now:
        return _reply(scope, key, False, None)
    if scope["state"] != _AVAILABLE and now < scope["until"]:
        return _reply(scope, key, False, scope["until"])
    units: dict[str, float] = request["units"]
    dims = scope["dims"]
    wait = 0.0
    for name, amount in units.items():
        if name in dims:
            wait = max(wait, _dimension(dims[name]).seconds_until(amount, now))
    if wait > 0:
        return _reply(scope, key, False, now + wait if math.isfinite(wait) else None)
    for name, amount in units.items():
        if name in dims:
            dim = _dimension(dims[name])
            dim.debit(amount, now)
            dims[name] = _write(dim, dims[name].get("seen", 0.0))
    scope["leases"][request["lease"]] = {"units": units, "expires": request["expires"]}
    return _reply(scope, key, True, None)


def settle(scope: Doc, key: Doc | None, report: Doc) -> Doc | None:
    """Close a lease and adopt what its answer said; returns the key's new document."""
    now = report["at"]
    _purge(scope, now)
    lease = scope["leases"].pop(report["lease"], None)
    dims = scope["dims"]
    observations = report.get("obs", [])
    for name, limit, remaining, reset_at, observed_at in observations:
        current = dims.get(name)
        if current is not None and observed_at < current.get("seen", 0.0) - _SAME_MOMENT:
            continue  # an older answer than one already adopted (answers overtake each other)
        unsettled = sum(other["units"].get(name, 0.0) for other in scope["leases"].values())
        dim = _dimension(current) if current is not None else Dimension()
        dim.observe(LimitObservation(name, limit, remaining, reset_at, observed_at), unsettled, now)
        if dim.known:
            dims[name] = _write(dim, observed_at)
    if not observations and report.get("refund") and lease is not None:
        for name, amount in lease["units"].items():
            if name in dims:
                dim = _dimension(dims[name])
                dim.credit(amount, now)
                dims[name] = _write(dim, dims[name].get("seen", 0.0))
    cool = report.get("cool")
    if cool is not None:
        _cool(scope, cool[0], cool[1], cool[2])
    flag = report.get("flag")
    if flag is not None:
        return {"state": flag[0], "reason": flag[1], "until": now + KEY_FLAG_SECONDS}
    return key


def _cool(scope: Doc, state: str, until: float, reason: str) -> None:
    """Cooldowns only ever get longer (a late, stale 429 must not reopen a scope early);
    exhaustion replaces whatever was there."""
    if state == _COOLING:
        if scope["state"] == _EXHAUSTED and scope["until"] > until:
            return
        if scope["state"] == _COOLING and scope["until"] >= until:
            return
    scope["state"], scope["until"], scope["reason"] = state, until, reason


def _reply(scope: Doc, key: Doc | None, granted: bool, retry_at: float | None) -> Doc:
    reply: Doc = {
        "granted": granted,
        "dims": scope["dims"],
        "state": scope["state"],
        "until": scope["until"],
        "reason": scope["reason"],
    }
    if retry_at is not None:
        reply["retry_at"] = retry_at
    if key is not None:
        reply["key"] = key
    return reply


def scope_of(doc: Doc) -> SharedScope:
    dims = {
        name: SharedDimension(d.get("limit"), d["level"], d["as_of"], d.get("rate"))
        for name, d in doc.get("dims", {}).items()
    }
    return SharedScope(
        dims, KeyState(doc.get("state", _AVAILABLE)), doc.get("until", 0.0), doc.get("reason", "")
    )


def key_of(doc: Doc | None, now: float) -> SharedKey:
    """A key's flag as of `now` (a lapsed one is no flag)."""
    if not doc or doc.get("until", math.inf) <= now:
        return SharedKey()
    return SharedKey(KeyState(doc.get("state", _AVAILABLE)), doc.get("reason", ""))


def grant_of(reply: Doc, now: float) -> Grant:
    return Grant(
        bool(reply["granted"]),
        scope_of(reply),
        key_of(reply.get("key"), now),
        reply.get("retry_at"),
    )
