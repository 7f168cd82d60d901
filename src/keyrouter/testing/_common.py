"""What the three emulations share: the request cycle, request parsing and the filler answer.

``_openai``, ``_anthropic`` and ``_gemini`` each subclass :class:`Emulator` and fill in
their provider's wire format.  What happens around that (latency, injected faults, charging
the ledger, the request log) is the same for every provider, so it is written once, here.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, TypeVar

from ._limits import Admission, DimensionState, FakeKey, Ledger, LimitState, RequestRecord
from ._server import Fault, FaultBook, Request, Response

__all__ = [
    "JSON",
    "Call",
    "Completion",
    "Emulator",
    "EmulatorOptions",
    "Headers",
    "async_iter",
    "bearer",
    "estimate_tokens",
    "filler",
    "json_body",
    "limit_headers",
    "prepend",
    "scope_of",
    "status_entry",
    "texts",
    "transport_fault",
]

JSON = Any  # a decoded JSON value; the emulations inspect request bodies defensively
Headers = list[tuple[str, str]]
_T = TypeVar("_T")

_FILLER_TEXT = (
    "This is a simulated answer from the keyrouter fake provider, served over real HTTP so "
    "client code runs unchanged."
)
_FILLER = _FILLER_TEXT.split()


@dataclass(frozen=True, slots=True)
class Call:
    """A validated request: what it costs and how to answer it."""

    model: str
    charge: int
    answer: Callable[[], Response]
    free: bool = False  # listing models and counting tokens do not draw on rate limits


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated answer: ``all_pieces`` cut to ``limit`` if the caller capped output."""

    model: str
    prompt_tokens: int
    all_pieces: list[str]
    limit: int | None

    @property
    def pieces(self) -> list[str]:
        return self.all_pieces if self.limit is None else self.all_pieces[: self.limit]

    @property
    def truncated(self) -> bool:
        return self.limit is not None and self.limit < len(self.all_pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class EmulatorOptions(TypedDict, total=False):
    """The :class:`Emulator` options, for a subclass that adds its own and passes these on."""

    latency: float
    completion_tokens: int
    models: Sequence[str] | None


class Emulator(ABC):
    """Answers one provider's API for the keys in a :class:`Ledger` (a ``_server.Handler``).

    Subclasses say how a request carries its key, how it is answered, and how faults and
    rate-limit refusals look on their wire.
    """

    default_models: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        ledger: Ledger,
        faults: FaultBook,
        *,
        latency: float = 0.0,
        completion_tokens: int = 16,
        models: Sequence[str] | None = None,
    ) -> None:
        if completion_tokens < 1:
            raise ValueError(f"completion_tokens must be at least 1, got {completion_tokens}")
        self._ledger = ledger
        self._faults = faults
        self._latency = latency
        self._completion_tokens = completion_tokens
        self._models = tuple(self.default_models if models is None else models)

    async def __call__(self, request: Request) -> Response:
        started = time.monotonic()
        if self._latency > 0:
            await asyncio.sleep(self._latency)
        secret = self._secret(request)
        body = self._body(request)
        streaming = self._streaming(request, body)
        fault = self._faults.take(secret, streaming=streaming)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.replaces_response:
            response = self._fault_response(fault, request, body, streaming)
        else:
            response = self._answer(request, secret, body, started)
            if fault is not None:
                _misbehave(response, fault)
        self._finish(request, response, streaming=streaming, started=started)
        if fault is not None:
            _override(response, fault)
        status = 0 if response.drop else response.status
        record = RequestRecord(request.method, request.path, secret, status, request.header("host"))
        self._ledger.record(record)
        return response

    # -- what each provider fills in -------------------------------------------------------

    @abstractmethod
    def _secret(self, request: Request) -> str | None:
        """The API key the request carries, if any."""

    @abstractmethod
    def _answer(self, request: Request, secret: str | None, body: JSON, started: float) -> Response:
        """The provider's answer when no fault replaces it."""

    @abstractmethod
    def _fault_response(
        self, fault: Fault, request: Request, body: JSON, streaming: bool
    ) -> Response:
        """What the provider sends instead of an answer when ``fault`` strikes."""

    @abstractmethod
    def _refuse(self, key: FakeKey, call: Call, admission: Admission, headers: Headers) -> Response:
        """The 429 for a call the ledger did not admit (``headers`` carry the limits)."""

    def _body(self, request: Request) -> JSON:
        """The decoded body, read once for every step that needs it."""
        return json_body(request)

    def _streaming(self, request: Request, body: JSON) -> bool:
        """Whether the client asked for a stream (stream faults strike only those)."""
        return isinstance(body, dict) and body.get("stream") is True

    def _limit_headers(self, state: LimitState) -> Headers:
        """The rate-limit headers the provider sends (none by default)."""
        return []

    def _finish(
        self, request: Request, response: Response, *, streaming: bool, started: float
    ) -> None:
        """Last touches every response gets (nothing by default)."""
        return None

    # -- shared steps ---------------------------------------------------------------------

    def _charge(self, key: FakeKey, call: Call, common: Headers) -> Response:
        """Charge the call to the key: its answer, or the refusal, with the limit headers."""
        admission = self._ledger.admit(key.secret, call.charge)
        headers = common + self._limit_headers(admission.state)
        if not admission.admitted:
            return self._refuse(key, call, admission, headers)
        return prepend(call.answer(), headers)

    def _filler(self) -> list[str]:
        """The plain-text answer, ``completion_tokens`` long."""
        return filler(self._completion_tokens)


def _misbehave(response: Response, fault: Fault) -> None:
    """Faults that keep the answer but break its delivery (cut short, stalled, slowed)."""
    response.truncate = fault.kind == "truncate"
    if fault.kind == "stall_stream" and response.stream is not None:
        response.stall_after = fault.after_chunks
    if fault.kind == "slow_stream" and response.stream is not None:
        response.chunk_delay = fault.seconds


def _override(response: Response, fault: Fault) -> None:
    """A fault's own headers and error body, put over what the provider would send."""
    if fault.headers:
        names = {name for name, _ in fault.headers}
        kept = [(name, value) for name, value in response.headers if name.lower() not in names]
        response.headers[:] = [*kept, *fault.headers]
    if fault.body is not None and response.stream is None:
        response.body = fault.body


# -- helpers --------------------------------------------------------------------------------


def estimate_tokens(texts: Sequence[str]) -> int:
    """The fake's token estimate for prompt text: ``max(1, ceil(characters / 4))``."""
    return max(1, math.ceil(sum(len(text) for text in texts) / 4))


def filler(count: int) -> list[str]:
    """A plain-text answer of ``count`` one-token words (each after the first has its space)."""
    words = [_FILLER[i % len(_FILLER)] for i in range(count)]
    return [word if i == 0 else f" {word}" for i, word in enumerate(words)]


def json_body(request: Request) -> JSON:
    """The decoded body, or ``None`` if absent or not JSON (answered with 400 later)."""
    if not request.body:
        return None
    try:
        return json.loads(request.body)
    except ValueError:
        return None


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if the request has one."""
    value = request.header("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def texts(value: JSON, fields: tuple[str, ...]) -> list[str]:
    """Every string in ``value``, read through lists and the given fields of objects."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in texts(item, fields)]
    if isinstance(value, dict):
        return [text for name in fields for text in texts(value.get(name), fields)]
    return []


def scope_of(key: FakeKey) -> str:
    """The key's scope (organization, project), or its secret when it has none."""
    return key.scope if key.scope is not None else key.secret


def limit_headers(
    state: LimitState,
    token_families: tuple[str, ...],
    name: Callable[[str, str], str],
    reset: Callable[[float], str],
) -> Headers:
    """Rate-limit headers: requests, then the token bucket under each of ``token_families``.

    ``name(family, field)`` spells a header (``field`` is limit, remaining or reset) and
    ``reset`` writes the seconds until the bucket refills, both as the provider does.
    """
    dimensions: list[tuple[str, DimensionState | None]] = [("requests", state.requests)]
    dimensions += [(family, state.tokens) for family in token_families]
    headers: Headers = []
    for family, dimension in dimensions:
        if dimension is not None:
            headers += [
                (name(family, "limit"), str(dimension.limit)),
                (name(family, "remaining"), str(dimension.remaining)),
                (name(family, "reset"), reset(dimension.reset_seconds)),
            ]
    return headers


def prepend(response: Response, headers: Headers) -> Response:
    """``response`` with ``headers`` put before its own."""
    response.headers[:0] = headers
    return response


def transport_fault(fault: Fault, content_type: str, garbage: bytes) -> Response | None:
    """The answer to a ``reset``, ``garbage`` or ``redirect`` fault (the same on every wire)."""
    if fault.kind == "reset":
        return Response(0, drop=True)
    if fault.kind == "redirect":
        return Response(fault.code)  # its `location` header is the fault's own (`_override`)
    if fault.kind == "garbage":
        return Response(200, [("content-type", content_type)], garbage)
    return None


def status_entry(table: Mapping[int, _T], code: int) -> _T:
    """``table``'s entry for a status, else its 500 or 400 one (server or client error)."""
    return table.get(code, table[500] if code >= 500 else table[400])


async def async_iter(events: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A response stream sending ``events`` one chunk each."""
    for event in events:
        yield event
