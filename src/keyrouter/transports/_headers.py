"""Reading the header lists httpx and httpx2 keep, without the work their `Headers` API does.

Both libraries store headers as `(raw name, lowercased name, value)` byte triples in
`Headers._list`. Their public lookups first work out the list's encoding (decoding every
header once per `Headers` object) and decode again on each call: on every routed request
that is work the SDK's own send never does. Each reader here falls back to the public API
when the list is not there or not plain ASCII.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["HeaderLookup", "as_built", "lookup", "plain", "put_back"]

_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 1024


def plain(headers: Any) -> dict[str, str]:
    """A response's headers as a dict with lowercase names (repeated names: the last), for
    a wire that reads a dozen of them."""
    triples = getattr(headers, "_list", None)
    if type(triples) is not list:
        return dict(headers.multi_items())
    names = _NAMES
    found = {}
    try:
        for _, lower, value in triples:
            name = names.get(lower)
            if name is None:
                name = lower.decode("ascii")
                if len(names) < _MAX_NAMES:  # the same few names come back on every answer
                    names[lower] = name
            found[name] = value.decode("ascii")
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError):
        return dict(headers.multi_items())  # not plain ASCII: let the library decode it
    return found


class HeaderLookup(Mapping[str, str]):
    """A request's headers for looking up a name or two (the credential): a scan of the
    triples, no encoding worked out. Repeated headers read as one, comma-joined, as in
    httpx."""

    __slots__ = ("_triples",)

    def __init__(self, triples: list[tuple[bytes, bytes, bytes]]) -> None:
        self._triples = triples

    def get(self, name: str, default: Any = None) -> Any:
        key = name.lower().encode("ascii", "replace")
        values = [value for _, lower, value in self._triples if lower == key]
        if not values:
            return default
        try:
            return ", ".join(value.decode("ascii") for value in values)
        except UnicodeDecodeError:
            return ", ".join(value.decode("utf-8", "replace") for value in values)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return (lower.decode("latin-1") for _, lower, _ in self._triples)

    def __len__(self) -> int:
        return len(self._triples)


def lookup(headers: Any) -> Mapping[str, str]:
    """`headers` to look a name up in: a `HeaderLookup` over its triples when it keeps them."""
    triples = getattr(headers, "_list", None)
    return HeaderLookup(triples) if type(triples) is list else headers


def as_built(request: Any) -> list[Any] | None:
    """A copy of the request's header triples, to put back once the attempts are over."""
    triples = getattr(request.headers, "_list", None)
    return list(triples) if type(triples) is list else None


def put_back(request: Any, built: list[Any]) -> None:
    """Give the request back the header triples `as_built` copied."""
    request.headers._list[:] = built
