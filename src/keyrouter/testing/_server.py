"""A small HTTP/1.1 server (asyncio + h11) for the fake providers.

The server runs its own event loop in a daemon thread, so synchronous and
asynchronous client code can both talk to it from any thread.  It knows
nothing about any provider: a *handler* turns each :class:`Request` into a
:class:`Response`, and the response may ask the server to misbehave at the
transport level (drop the connection, truncate the body, stall a stream),
which is what client-side resilience code needs to be tested against.

Also here: :class:`Fault`, the catalogue of injectable misbehaviour, and
:class:`FaultBook`, the thread-safe queue of injected faults, because both
are shared by every provider emulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Literal, Protocol

import h11

__all__ = [
    "Fault",
    "FaultBook",
    "FaultKind",
    "Handler",
    "Request",
    "Response",
    "ServerThread",
]

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_BACKLOG = 4096  # 256 clients connecting at once must not overflow the accept queue
_STARTUP_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    """One complete HTTP request: header names are lower-case, duplicates joined by ``, ``."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header value by (case-insensitive) name."""
        return self.headers.get(name.lower())


@dataclass(slots=True)
class Response:
    """What a handler wants sent back.

    A response has either a ``body`` (sent with ``Content-Length``) or a
    ``stream`` of chunks (sent with chunked ``Transfer-Encoding``, one HTTP
    chunk per item, which is how SSE events reach the client as they are
    produced).  The last three fields ask for transport-level misbehaviour:

    - ``drop``: close the connection with a TCP reset and send nothing.
    - ``truncate``: announce the full body but send only half of it (or half
      of the stream's chunks), then close.
    - ``stall_after``: for a stream, send that many chunks and then go
      silent, holding the connection open until the client gives up.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    drop: bool = False
    truncate: bool = False
    stall_after: int | None = None
    chunk_delay: float = 0.0


class Handler(Protocol):
    """The seam between this server and a provider emulation."""

    async def __call__(self, request: Request, /) -> Response: ...


FaultKind = Literal[
    "status",
    "reset",
    "delay",
    "stall_stream",
    "slow_stream",
    "truncate",
    "garbage",
    "error_in_200",
    "headers",
    "redirect",
]
_STREAM_ONLY: frozenset[FaultKind] = frozenset({"stall_stream", "slow_stream"})


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour to inject into responses (see ``FakeProvider.inject``).

    Build one with the class methods; each provider renders status faults
    with its own error bodies.  ``headers`` (set or replace response headers)
    and ``body`` (replace the error body) let a test send exactly the bytes it
    wants to check a client against, e.g. a nonsensical ``retry-after``.
    """

    kind: FaultKind
    code: int = 0
    plain: bool = False
    seconds: float = 0.0
    after_chunks: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    @classmethod
    def status(
        cls,
        code: int,
        *,
        plain: bool = False,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Fault:
        """Answer with HTTP ``code`` and the provider's error body for it.

        ``plain=True`` sends what the provider's edge proxy sends instead of the
        API's JSON (OpenAI: envoy's ``text/plain`` 503, Cloudflare's HTML 502).
        ``headers`` are set on the answer (replacing ones of the same name);
        ``body`` replaces the error body.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx code, got {code}")
        return cls("status", code=code, plain=plain, headers=_pairs(headers), body=body)

    @classmethod
    def redirect(cls, location: str, *, code: int = 307) -> Fault:
        """Answer with a redirect (``code``: a 3xx) to ``location``, as a broken proxy might."""
        if not 300 <= code <= 399:
            raise ValueError(f"a redirect needs a 3xx code, got {code}")
        return cls("redirect", code=code, headers=(("location", location),))

    @classmethod
    def override_headers(cls, headers: Mapping[str, str]) -> Fault:
        """Answer normally (a success or the provider's own refusal) with ``headers`` set."""
        return cls("headers", headers=_pairs(headers))

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection (TCP reset) without sending a response."""
        return cls("reset")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before answering normally (latency before headers)."""
        if seconds < 0:
            raise ValueError(f"delay must be non-negative, got {seconds}")
        return cls("delay", seconds=seconds)

    @classmethod
    def stall_stream(cls, after_chunks: int = 1) -> Fault:
        """Streaming requests only: send ``after_chunks`` chunks, then stop sending."""
        if after_chunks < 0:
            raise ValueError(f"after_chunks must be non-negative, got {after_chunks}")
        return cls("stall_stream", after_chunks=after_chunks)

    @classmethod
    def slow_stream(cls, seconds: float) -> Fault:
        """Streaming requests only: wait ``seconds`` before each chunk of the stream."""
        if seconds < 0:
            raise ValueError(f"slow_stream needs a non-negative delay, got {seconds}")
        return cls("slow_stream", seconds=seconds)

    @classmethod
    def truncate(cls) -> Fault:
        """Announce a longer body (``Content-Length``) than is sent, then close."""
        return cls("truncate")

    @classmethod
    def garbage(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls("garbage")

    @classmethod
    def error_in_200(cls) -> Fault:
        """Answer 200 whose body (or first stream event) is an error object."""
        return cls("error_in_200")

    @property
    def replaces_response(self) -> bool:
        """Whether the fault answers instead of the provider (no auth, no rate limit)."""
        return self.kind in ("status", "reset", "garbage", "error_in_200", "redirect")

    @property
    def streams_only(self) -> bool:
        """Whether the fault only strikes streaming requests."""
        return self.kind in _STREAM_ONLY


def _pairs(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((name.lower(), value) for name, value in (headers or {}).items())


@dataclass(slots=True)
class _Injection:
    fault: Fault
    key: str | None
    remaining: int | None


class FaultBook:
    """Injected faults, consumed in injection order by matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._injections: list[_Injection] = []

    def inject(self, fault: Fault, *, key: str | None = None, times: int | None = None) -> None:
        """Queue ``fault`` for requests bearing ``key`` (any key if ``None``), ``times`` times."""
        if times is not None and times <= 0:
            raise ValueError(f"times must be positive or None, got {times}")
        with self._lock:
            self._injections.append(_Injection(fault, key, times))

    def take(self, key: str | None, *, streaming: bool) -> Fault | None:
        """The first fault that applies to this request, counted as used."""
        with self._lock:
            for injection in self._injections:
                if injection.key is not None and injection.key != key:
                    continue
                if injection.fault.streams_only and not streaming:
                    continue
                if injection.remaining is not None:
                    injection.remaining -= 1
                    if injection.remaining == 0:
                        self._injections.remove(injection)
                return injection.fault
            return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._injections.clear()


class ServerThread:
    """Serve ``handler`` on ``host:port`` from a background thread with its own event loop."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the server is not running")
        return self._port

    def start(self) -> None:
        """Bind and start serving; returns once the port is accepting connections."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run, args=(loop,), name="keyrouter-fake", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            future = asyncio.run_coroutine_threadsafe(self._open(), loop)
            self._port = future.result(timeout=_STARTUP_TIMEOUT)
        except BaseException:
            self._halt()
            raise

    def stop(self) -> None:
        """Close the listener and every open connection, then end the thread."""
        if self._loop is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
            future.result(timeout=_STARTUP_TIMEOUT)
        finally:
            self._halt()

    def _halt(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_STARTUP_TIMEOUT)
            if not thread.is_alive():
                loop.close()
        self._loop = self._thread = None
        self._port = None

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _open(self) -> int:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._requested_port, backlog=_BACKLOG, reuse_address=True
        )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        # Bounded: a connection whose peer never finishes closing must not hold up shutdown.
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), _CLOSE_TIMEOUT)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await _Connection(self._handler, reader, writer).serve()
        except asyncio.CancelledError:
            # Shutdown cancels connection tasks.  Ending normally keeps asyncio's
            # start_server callback (which calls task.exception()) from logging it.
            pass
        finally:
            self._connections.discard(task)


class _Connection:
    """One client connection: read requests, answer them, keep alive while both sides agree."""

    def __init__(
        self, handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._handler = handler
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.SERVER)

    async def serve(self) -> None:
        try:
            while True:
                request = await self._read_request()
                if request is None:
                    return
                keep_alive = await self._respond(await self._dispatch(request))
                if not keep_alive or self._h11.our_state is not h11.DONE:
                    return
                if self._h11.their_state is not h11.DONE:
                    return
                self._h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._reject(exc)
        except (ConnectionError, TimeoutError, h11.LocalProtocolError):
            pass
        finally:
            self._close()

    async def _read_request(self) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                self._h11.receive_data(await self._reader.read(_READ_SIZE))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return _to_request(head, bytes(body))
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _dispatch(self, request: Request) -> Response:
        try:
            return await self._handler(request)
        except Exception:
            log.exception("fake provider handler failed on %s %s", request.method, request.path)
            return Response(500, [("content-type", "text/plain")], b"fake provider handler failed")

    async def _respond(self, response: Response) -> bool:
        """Send ``response``; returns whether the connection may serve another request."""
        if response.drop:
            self._abort()
            return False
        if response.stream is not None:
            return await self._send_stream(response, response.stream)
        return await self._send_body(response)

    async def _send_body(self, response: Response) -> bool:
        headers = [*response.headers, ("content-length", str(len(response.body)))]
        body = response.body[: len(response.body) // 2] if response.truncate else response.body
        out = self._head(response.status, headers) + (self._h11.send(h11.Data(data=body)) or b"")
        if not response.truncate:
            out += self._h11.send(h11.EndOfMessage()) or b""
        self._writer.write(out)
        await self._writer.drain()
        return not response.truncate  # a truncated body can only end by closing

    async def _send_stream(self, response: Response, stream: AsyncIterator[bytes]) -> bool:
        self._writer.write(self._head(response.status, response.headers))
        if response.truncate:
            chunks = [chunk async for chunk in stream]
            await self._send_chunks(_replay(chunks[: len(chunks) // 2]))
            return False  # closing now leaves the chunked body unterminated
        await self._send_chunks(stream, limit=response.stall_after, delay=response.chunk_delay)
        if response.stall_after is not None:
            await self._hold_until_client_leaves()
            return False
        self._writer.write(self._h11.send(h11.EndOfMessage()) or b"")
        await self._writer.drain()
        return True

    async def _send_chunks(
        self, stream: AsyncIterator[bytes], limit: int | None = None, delay: float = 0.0
    ) -> None:
        """Send each non-empty item as one HTTP chunk (``delay`` s apart), at most ``limit``."""
        sent = 0
        async for chunk in stream:
            if limit is not None and sent >= limit:
                return
            if chunk:
                if delay > 0:
                    await asyncio.sleep(delay)
                self._writer.write(self._h11.send(h11.Data(data=chunk)) or b"")
                await self._writer.drain()
                sent += 1

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        full = [("date", formatdate(usegmt=True)), *headers]
        event = h11.Response(
            status_code=status,
            headers=[(name.encode("ascii"), value.encode("latin-1")) for name, value in full],
        )
        return self._h11.send(event) or b""

    async def _hold_until_client_leaves(self) -> None:
        """Keep the connection open and silent until the client closes it (or shutdown)."""
        while await self._reader.read(_READ_SIZE):
            pass

    async def _reject(self, exc: h11.RemoteProtocolError) -> None:
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint
        body = f"bad request: {exc}".encode()
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            headers = [("content-type", "text/plain"), ("content-length", str(len(body)))]
            self._writer.write(
                self._head(status, headers) + (self._h11.send(h11.Data(data=body)) or b"")
            )
            await self._writer.drain()

    def _abort(self) -> None:
        """Close with RST (SO_LINGER 0), which clients see as 'connection reset by peer'."""
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


async def _replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _to_request(head: h11.Request, body: bytes) -> Request:
    target = head.target.decode("latin-1")
    path, _, query = target.partition("?")
    headers: dict[str, str] = {}
    for raw_name, raw_value in head.headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(head.method.decode("ascii"), path, query, headers, body)
